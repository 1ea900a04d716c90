"""The talker plugin interface. A plugin is one small class registered under the entry-point group
``emoomni.talkers``; a third-party package adds an engine without touching this repository.

A plugin declares its options as a pydantic model (`Options`, unknown keys are errors), yields audio from
`synthesize` as the engine makes it, and may check a `CancelToken` between pieces of work. Callers use
`stream`, which checks the input, hands each piece on the moment it exists and stops when the token is
cancelled (a turn cut off stops its synthesis). The conformance suite in emoomni.testing checks every plugin."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

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


class TalkerOptions(BaseModel):
    """A plugin's options from config (`talker.plugins.<name>`); a plugin subclasses this with its own fields.
    Unknown keys are errors, so a typo fails at start-up instead of being ignored."""

    model_config = ConfigDict(extra="forbid")


class TalkerCancelled(Exception):
    """Raised inside a plugin that checks its token mid-piece; `stream` ends quietly on it."""


class CancelToken:
    """Set by whoever cut the turn off (a client that went away, barge-in); read by the synthesis thread."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """For plugins with long inner loops: stop here when the turn was cut off."""
        if self._event.is_set():
            raise TalkerCancelled()


class TalkerPlugin(ABC):
    """One TTS engine. The registry constructs it with its options from config (`talker.plugins.<name>`, e.g.
    `model_path`), calls `load()` once, warms it, and then calls `stream` from worker threads (one call at
    a time per engine unless the plugin says otherwise)."""

    name: ClassVar[str]
    capabilities: ClassVar[TalkerCapabilities]
    Options: ClassVar[type[TalkerOptions]] = TalkerOptions

    def __init__(self, options: dict[str, Any] | TalkerOptions | None = None):
        self.options = options if isinstance(options, self.Options) else self.Options.model_validate(options or {})

    @classmethod
    def test_options(cls, workdir: Path) -> dict[str, Any]:
        """Options under which a test machine can load this engine (the conformance suite uses them): a plugin
        whose weights are not packaged writes a tiny checkpoint into `workdir` here. Default: no options."""
        return {}

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
        """Speak `text` (one sentence or a few) as the instruction asks, yielding audio as it is made. A plugin
        that wants to stop mid-piece reads `self.cancel_token` (set for the duration of a `stream` call)."""

    cancel_token: CancelToken | None = None

    def stream(self, text: str, instruction: instruction_pb2.AcousticInstruction, language: str,
               cancel: CancelToken | None = None) -> Iterator[SpokenAudio]:
        """`synthesize` with the checks every caller needs: empty text and unspoken languages are refused with a
        ValueError, each piece leaves as soon as the engine made it, and a cancelled token ends the stream at
        the next piece (or inside one, for plugins that call `cancel_token.check()`)."""
        if not text or not text.strip():
            raise ValueError("the text to speak is empty")
        lang = (language or "en").replace("_", "-").split("-")[0].lower()
        if lang not in self.capabilities.languages:
            raise ValueError(f"talker {self.name!r} speaks {', '.join(self.capabilities.languages)}, not {lang!r}")
        self.cancel_token = cancel
        try:
            for audio in self.synthesize(text, instruction, lang):
                if cancel is not None and cancel.cancelled:
                    return
                yield audio
        except TalkerCancelled:
            return
        finally:
            self.cancel_token = None

    def ignored(self, controls: instruction_pb2.AcousticControls) -> list[str]:
        """Controls set away from neutral that this engine does not honour."""
        honoured = set(self.capabilities.controls)
        scales = [name for name in ("pitch_scale", "rate_scale", "energy_scale")
                  if getattr(controls, name) not in (0.0, 1.0) and abs(getattr(controls, name) - 1.0) > 1e-3]
        labels = [name for name, neutral in (("emotion", "neutral"), ("voice_quality", "modal"),
                                             ("age_hint", ""), ("gender_hint", ""))
                  if getattr(controls, name) not in ("", neutral)]
        return [name for name in scales + labels if name not in honoured]
