"""The thinker trainer's config (training/configs/thinker_stage1.yaml and thinker_stage2.yaml set every key)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from training.common.config import Strict
from training.common.hf import HFRunConfig, LoraSection


class ModelSection(Strict):
    base: str = ""
    # Module prefixes that never learn: the vision and audio encoders, their projectors included.
    freeze: list[str] = Field(default_factory=lambda: ["audio_tower", "visual"])
    tune: Literal["full", "lora"] = "full"
    gradient_checkpointing: bool = True


class DataSection(Strict):
    train: list[str] = Field(default_factory=list)
    eval: str = ""
    # "ecot": every answer must parse into the four tagged parts; "free": any text (stage-1 descriptions).
    target: Literal["ecot", "free"] = "ecot"
    max_length: int = 8192
    # Keep each encoded sample in memory after its first use (small sets: a 5 s clip is 5-25 MB of tensors).
    cache: bool = False


class MediaSection(Strict):
    fps: float = 2.0
    max_frames: int = 40
    max_pixels: int = 50176
    min_pixels: int = 3136
    audio_in_video: bool = True
    max_clip_s: float = 600.0


class EvalSection(Strict):
    # Held-out samples whose answers are generated (greedy) to measure the share that parses into four parts.
    generate_samples: int = 8
    max_new_tokens: int = 768


class ExportSection(Strict):
    merged: bool = False


class ThinkerConfig(HFRunConfig):
    kind: Literal["thinker"] = "thinker"
    stage: Literal[1, 2]
    model: ModelSection = ModelSection()
    lora: LoraSection = LoraSection()
    data: DataSection = DataSection()
    media: MediaSection = MediaSection()
    eval: EvalSection = EvalSection()
    export: ExportSection = ExportSection()

    @model_validator(mode="after")
    def _consistent(self):
        if self.export.merged and self.model.tune != "lora":
            raise ValueError("export.merged only applies to model.tune: lora")
        if self.optim.per_device_batch_size != 1:
            raise ValueError("optim.per_device_batch_size must be 1: one clip per forward pass, the batch comes "
                             "from gradient accumulation")
        return self
