"""The reasoner trainer's config (training/configs/reasoner_lora.yaml sets every key)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from training.common.config import Strict
from training.common.hf import HFRunConfig, LoraSection


class ModelSection(Strict):
    base: str = ""  # a GGUF model file; empty: the packaged Qwen2.5-Coder-0.5B-Instruct the cascade serves by default


class ReasonerLora(LoraSection):
    # The language model's linear layers (peft module names); lm_head and the embedding stay as they are.
    target: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                       "up_proj", "down_proj"])


class DataSection(Strict):
    train: list[str] = Field(default_factory=list)
    eval: str = ""
    max_length: int = 1024  # tokens per sample (the short prompt, the earlier turns, and the four lines)
    # Perception of a line's clip (the cascade's own perception backends); its cues are kept in OUT/perception.json.
    perception_threads: int = 2


class PromptSection(Strict):
    # true: the intent and strategy lines start with the backend's fixed openers ("The user wants", "I will
    # respond"), and a target must begin with them; false: the model writes each line whole (serve.yaml then says
    # reasoning.llama_cpp.openers: false).
    openers: bool = False


class ReasonerConfig(HFRunConfig):
    kind: Literal["reasoner"] = "reasoner"
    model: ModelSection = ModelSection()
    lora: ReasonerLora = ReasonerLora()
    data: DataSection = DataSection()
    prompt: PromptSection = PromptSection()
