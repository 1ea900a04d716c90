"""The talker plugin interface. A plugin is one small class registered under the entry-point group
``emoomni.talkers``; a third-party package adds an engine without touching this repository."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from emoomni.v1 import instruction_pb2

ENTRY_POINT_GROUP = "emoomni.talkers"


class TalkerCapabilities(BaseModel):
    languages: list[str]
    streaming: bool
    # Which AcousticControls fields the engine honours ("rate_scale", "pitch_scale", ...).
    controls: list[str]
    reads_instruction_text: bool = False
    license: str


class SpokenAudio(BaseModel):
    """Mono PCM16 audio for one sentence (or part of one), with what the engine could not honour."""

    model_config = {"arbitrary_types_allowed": True}
    pcm16: np.ndarray
    sample_rate: int
    ignored_controls: list[str] = []


class TalkerPlugin(ABC):
    name: ClassVar[str]
    capabilities: ClassVar[TalkerCapabilities]

    @abstractmethod
    def load(self) -> None:
        """Load weights; called once before the engine serves."""

    @abstractmethod
    def synthesize(self, text: str, instruction: instruction_pb2.AcousticInstruction,
                   language: str) -> Iterator[SpokenAudio]:
        """Speak `text` (one sentence or a few) as the instruction asks, yielding audio as it is made."""

    def ignored(self, controls: instruction_pb2.AcousticControls) -> list[str]:
        """Controls set away from neutral that this engine does not honour."""
        neutral = {"pitch_scale": 1.0, "rate_scale": 1.0, "energy_scale": 1.0}
        out = [name for name, value in neutral.items()
               if abs(getattr(controls, name) - value) > 1e-3 and getattr(controls, name) != 0
               and name not in self.capabilities.controls]
        if controls.voice_quality not in ("", "modal") and "voice_quality" not in self.capabilities.controls:
            out.append("voice_quality")
        return out
