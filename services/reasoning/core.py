"""Reasoning core: runs the configured backend in a worker thread and turns its pieces into EcotDeltas.

The backend is synchronous (model runtimes are); the core bridges it to asyncio so the service keeps
serving other messages while a turn generates.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

from emoomni.services.reasoning.backends import build_backend
from emoomni.services.reasoning.backends.interface import EMOTION, INTENT, RESPONSE, STRATEGY, Piece

from emoomni.config import StackConfig
from emoomni.v1 import perception_pb2, reasoning_pb2

_FIELD = {EMOTION: "emotion_analysis", INTENT: "intent", STRATEGY: "strategy", RESPONSE: "response"}
_DONE = object()


class ReasoningCore:
    def __init__(self, cfg: StackConfig):
        self.cfg = cfg
        self.backend = build_backend(cfg.reasoning)
        # One generation at a time per model instance: llama.cpp contexts are not re-entrant.
        self._lock = threading.Lock()

    def warmup(self) -> None:
        fake = perception_pb2.PerceptionResult(cues=[perception_pb2.Cue(modality="speech", text="Hello.")])
        if self.cfg.reasoning.backend == "llama_cpp":
            with self._lock:
                for _ in self.backend.stream(fake, ""):
                    pass

    async def reason(self, perception: perception_pb2.PerceptionResult, context: str,
                     ecot: reasoning_pb2.Ecot | None = None) -> AsyncIterator[reasoning_pb2.EcotDelta]:
        """Stream deltas; if `ecot` is given it is filled with the complete parts as they arrive."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancelled = threading.Event()

        def produce() -> None:
            try:
                with self._lock:
                    for piece in self.backend.stream(perception, context):
                        if cancelled.is_set():
                            break
                        loop.call_soon_threadsafe(queue.put_nowait, piece)
            except BaseException as exc:  # surfaced to the awaiting side below
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        worker = loop.run_in_executor(None, produce)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                piece: Piece = item
                if ecot is not None and piece.text:
                    field = _FIELD[piece.part]
                    setattr(ecot, field, getattr(ecot, field) + piece.text)
                yield reasoning_pb2.EcotDelta(part=piece.part, text=piece.text, part_done=piece.part_done)
        finally:
            cancelled.set()
            await worker
        if ecot is not None:
            for field in _FIELD.values():
                setattr(ecot, field, getattr(ecot, field).strip())
