"""The delivery head: a small network on top of a sentence embedding that predicts the normalized acoustic
controls for a strategy. Weights live in a folder (head.safetensors + head.json) so that training/ can
fine-tune and replace them; the packaged folder is services/instruction/weights/delivery-head."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from pydantic import BaseModel
from safetensors.torch import load_file, save_file
from torch import nn

PACKAGED_HEAD = Path(__file__).resolve().parent / "weights" / "delivery-head"

EMOTIONS = ("neutral", "happy", "excited", "calm", "tender", "sad", "angry", "serious", "anxious", "fearful",
            "amused", "hopeful")
VOICE_QUALITIES = ("modal", "breathy", "whisper", "tense")
AGES = ("", "child", "elderly")
GENDERS = ("", "female", "male")
# Order of the regression outputs: log pitch, log rate and log energy scales, then intensity (0..1, sigmoid).
SCALES = ("pitch", "rate", "energy")


class HeadConfig(BaseModel):
    embedding_dim: int = 384
    hidden_dim: int = 128
    dropout: float = 0.3
    emotions: tuple[str, ...] = EMOTIONS
    voice_qualities: tuple[str, ...] = VOICE_QUALITIES
    ages: tuple[str, ...] = AGES
    genders: tuple[str, ...] = GENDERS
    # A strategy whose best cosine similarity to every training phrase is under this says nothing about
    # delivery (set by training from the off-topic calibration sentences).
    relevance_threshold: float = 0.3


class DeliveryOutputs(BaseModel):
    pitch: float
    rate: float
    energy: float
    intensity: float
    emotion: str
    voice_quality: str
    age: str
    gender: str
    relevance: float


class DeliveryHead(nn.Module):
    def __init__(self, config: HeadConfig):
        super().__init__()
        self.config = config
        self.trunk = nn.Sequential(nn.Linear(config.embedding_dim, config.hidden_dim), nn.GELU(),
                                   nn.Dropout(config.dropout))
        self.scales = nn.Linear(config.hidden_dim, len(SCALES) + 1)
        self.emotion = nn.Linear(config.hidden_dim, len(config.emotions))
        self.voice_quality = nn.Linear(config.hidden_dim, len(config.voice_qualities))
        self.age = nn.Linear(config.hidden_dim, len(config.ages))
        self.gender = nn.Linear(config.hidden_dim, len(config.genders))
        # Embeddings of the training phrases, for the relevance check (not trained).
        self.register_buffer("anchors", torch.zeros(0, config.embedding_dim))

    def forward(self, embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.trunk(embeddings)
        return {"scales": self.scales(hidden), "emotion": self.emotion(hidden),
                "voice_quality": self.voice_quality(hidden), "age": self.age(hidden), "gender": self.gender(hidden)}

    @torch.no_grad()
    def predict(self, embedding: torch.Tensor) -> DeliveryOutputs:
        """Controls for one L2-normalized embedding."""
        self.eval()
        out = self.forward(embedding[None])
        raw = out["scales"][0]
        relevance = float((self.anchors @ embedding).max()) if len(self.anchors) else 1.0
        cfg = self.config

        def label(name: str, labels: tuple[str, ...]) -> str:
            return labels[int(out[name][0].argmax())]

        return DeliveryOutputs(pitch=float(raw[0].exp()), rate=float(raw[1].exp()), energy=float(raw[2].exp()),
                               intensity=float(torch.sigmoid(raw[3])), emotion=label("emotion", cfg.emotions),
                               voice_quality=label("voice_quality", cfg.voice_qualities),
                               age=label("age", cfg.ages), gender=label("gender", cfg.genders), relevance=relevance)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        tensors["anchors"] = tensors["anchors"].half()
        save_file(tensors, str(folder / "head.safetensors"))
        (folder / "head.json").write_text(self.config.model_dump_json(indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> DeliveryHead:
        folder = Path(folder)
        if not (folder / "head.json").is_file() or not (folder / "head.safetensors").is_file():
            raise FileNotFoundError(f"{folder} has no delivery head (head.json + head.safetensors); "
                                    "train one with training/instruction/train_head.py")
        config = HeadConfig(**json.loads((folder / "head.json").read_text(encoding="utf-8")))
        head = cls(config)
        tensors = load_file(str(folder / "head.safetensors"))
        head.anchors = tensors.pop("anchors").float()
        head.load_state_dict(tensors, strict=False)
        head.eval()
        return head
