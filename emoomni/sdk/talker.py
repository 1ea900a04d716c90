"""The talker plugin interface. A plugin is one small class registered under the entry-point group
``emoomni.talkers``; a third-party package adds an engine without touching this repository."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from emoomni.v1 import instruction_pb2

ENTRY_POINT_GROUP = "emoomni.talkers"


# The AcousticControls fields a plugin may list as honoured in its capabilities.
CONTROL_NAMES = ("emotion", "intensity", "pitch_scale", "rate_scale", "energy_scale", "voice_quality",
                 "age_hint", "gender_hint")


class TalkerCapabilities(BaseModel):
    # ISO 639-1 codes the engine can speak ("en", "zh", ...).
    languages: list[str]
    # True when audio comes out in pieces before the whole text is synthesised.
    streaming: bool
    # Which AcousticControls fields the engine honours (names from CONTROL_NAMES).
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
    """One TTS engine. The registry constructs it with its options from config (`talker.plugins.<name>`, e.g.
    `model_path`), calls `load()` once, warms it, and then calls `synthesize` from worker threads (one call at
    a time per engine unless the plugin says otherwise)."""

    name: ClassVar[str]
    capabilities: ClassVar[TalkerCapabilities]

    def __init__(self, options: dict[str, Any] | None = None):
        self.options = dict(options or {})

    @abstractmethod
    def load(self) -> None:
        """Load weights; called once before the engine serves."""

    def warm(self) -> None:
        """Run one short synthesis so the first real request does not pay for lazy initialisation."""
        for _ in self.synthesize("Hello there.", instruction_pb2.AcousticInstruction(), self.capabilities.languages[0]):
            pass

    @abstractmethod
    def synthesize(self, text: str, instruction: instruction_pb2.AcousticInstruction,
                   language: str) -> Iterator[SpokenAudio]:
        """Speak `text` (one sentence or a few) as the instruction asks, yielding audio as it is made."""

    def ignored(self, controls: instruction_pb2.AcousticControls) -> list[str]:
        """Controls set away from neutral that this engine does not honour."""
        honoured = set(self.capabilities.controls)
        scales = [name for name in ("pitch_scale", "rate_scale", "energy_scale")
                  if getattr(controls, name) not in (0.0, 1.0) and abs(getattr(controls, name) - 1.0) > 1e-3]
        labels = [name for name, neutral in (("emotion", "neutral"), ("voice_quality", "modal"),
                                             ("age_hint", ""), ("gender_hint", ""))
                  if getattr(controls, name) not in ("", neutral)]
        return [name for name in scales + labels if name not in honoured]
