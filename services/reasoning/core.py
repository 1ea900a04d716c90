"""Reasoning core: runs the configured backend in a worker thread and turns its pieces into EcotDeltas.

The backend is synchronous (model runtimes are); the core bridges it to asyncio so the service keeps
serving other messages while a turn generates.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator

from emoomni.core.aio import iterate_in_thread
from emoomni.core.config import StackConfig
from emoomni.services.reasoning.backends import build_backend
from emoomni.services.reasoning.backends.interface import EMOTION, INTENT, RESPONSE, STRATEGY, MediaSource, Piece
from emoomni.v1 import perception_pb2, reasoning_pb2

_FIELD = {EMOTION: "emotion_analysis", INTENT: "intent", STRATEGY: "strategy", RESPONSE: "response"}


# The turn a service reasons once before it reports ready (with a transcript, so that the text-emotion
# classifier's prompt is cached too).
WARMUP = perception_pb2.PerceptionResult(transcript=perception_pb2.Transcript(text="Hello.", language="en"),
                                         cues=[perception_pb2.Cue(modality="speech", text="Hello.")])


class ReasoningCore:
    def __init__(self, cfg: StackConfig):
        self.cfg = cfg
        self.backend = build_backend(cfg.reasoning, cfg.limits)
        # One generation at a time per model instance: llama.cpp contexts are not re-entrant.
        self._lock = threading.Lock()

    def warmup(self) -> None:
        if self.cfg.reasoning.backend == "llama_cpp":
            with self._lock:
                for _ in self.backend.stream(WARMUP, ""):
                    pass

    @property
    def needs_media(self) -> bool:
        return self.backend.needs_media

    async def reason(self, perception: perception_pb2.PerceptionResult, context: str,
                     ecot: reasoning_pb2.Ecot | None = None, media: MediaSource | None = None,
                     ) -> AsyncIterator[reasoning_pb2.EcotDelta]:
        """Stream deltas; if `ecot` is given it is filled with the complete parts as they arrive. `media` (a
        path or the bytes of the clip) reaches backends that read the clip."""
        def pieces() -> Iterator[Piece]:
            with self._lock:
                yield from self.backend.stream(perception, context, media)

        async for piece in iterate_in_thread(pieces):
            if ecot is not None and piece.text:
                field = _FIELD[piece.part]
                setattr(ecot, field, getattr(ecot, field) + piece.text)
            yield reasoning_pb2.EcotDelta(part=piece.part, text=piece.text, part_done=piece.part_done)
        if ecot is not None:
            for field in _FIELD.values():
                setattr(ecot, field, getattr(ecot, field).strip())
