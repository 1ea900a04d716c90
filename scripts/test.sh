#!/usr/bin/env bash
# Installs EmoOmni with its test tools into .venv, then lints and runs the whole test suite on real components.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/ruff check .
# Layers, imports one way: import-linter checks the contracts in pyproject.toml ([tool.importlinter]).
.venv/bin/python scripts/lint_imports.py
.venv/bin/python -m pytest "$@"
