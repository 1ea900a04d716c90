#!/usr/bin/env bash
# Puts the pinned uv (requirements/uv.lock, hash-checked) into .venv-tools: the resolver of scripts/lock.sh and
# the installer of scripts/setup.sh. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(sha1sum requirements/uv.lock | cut -c1-16)
[ "$(cat .venv-tools/.stamp 2>/dev/null)" = "$want" ] && [ -x .venv-tools/bin/uv ] && exit 0
PY=${PYTHON:-python3}
[ -x .venv-tools/bin/python ] || "$PY" -m venv .venv-tools
echo '*' > .venv-tools/.gitignore
.venv-tools/bin/python -m pip -q --disable-pip-version-check install --require-hashes -r requirements/uv.lock
echo "$want" > .venv-tools/.stamp
