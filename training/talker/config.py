"""The talker trainer's config (training/configs/talker_lora.yaml sets every key)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from training.common.config import Strict
from training.common.hf import HFRunConfig, LoraSection


class ModelSection(Strict):
    base: str = ""  # a Qwen3-TTS 12 Hz VoiceDesign checkpoint folder (the plugin's model_path)
    plugin: str = "qwen3-tts"  # the talker plugin that knows the model (entry point in emoomni.talkers)


class DataSection(Strict):
    train: list[str] = Field(default_factory=list)
    eval: str = ""
    max_audio_s: float = 30.0  # longer target audio is skipped


class TalkerTrainConfig(HFRunConfig):
    kind: Literal["talker"] = "talker"
    model: ModelSection = ModelSection()
    lora: LoraSection = LoraSection()
    data: DataSection = DataSection()
