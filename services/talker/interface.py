"""What the talker service needs from the thing that speaks: `TalkerCore` (engines in this process) and
`TritonTalkerCore` (the talker model in Triton) both implement `SpeechEngine`, so the server, its bus worker and
ListTalkers / SetActiveTalker work the same on either."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from emoomni.sdk.talker import CancelToken, TalkerPlugin
from emoomni.v1 import instruction_pb2, media_pb2


class Activation(BaseModel):
    previous: str
    active: str
    load_ms: float


class EngineRegistry(Protocol):
    """The engines a core can speak with, by name (installed here, or served by Triton)."""

    available: dict[str, type[TalkerPlugin]]

    def plugin_class(self, name: str) -> type[TalkerPlugin]: ...

    def is_loaded(self, name: str) -> bool: ...


@runtime_checkable
class SpeechEngine(Protocol):
    registry: EngineRegistry
    active: str

    def warmup(self) -> None:
        """Load and warm the active engine before the service reports SERVING."""

    def activate(self, name: str) -> Activation:
        """Load and warm `name`, then make it the engine for new turns (turns already speaking keep theirs)."""

    def speak(self, text: str, instruction: instruction_pb2.AcousticInstruction, language: str = "en",
              talker: str = "", sentence_index: int = 0, turn_id: str = "",
              cancel: CancelToken | None = None) -> Iterator[media_pb2.AudioChunk]:
        """Audio chunks for `text` as they are made; `last` marks the final one; a cancelled token stops it."""
