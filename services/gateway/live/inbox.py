"""The client's messages as they arrive: stamped with their arrival (latency counts from there), bounded (past
~40 s of 20 ms frames the stream is back-pressured), and silence by the wall clock reported as idleness."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import AsyncIterator, Callable

from emoomni.v1 import agent_pb2

Item = tuple[agent_pb2.SessionInput, float]


class Inbox:
    def __init__(self, quiet_limit_s: float, close_grace_s: float):
        self.quiet_limit_s, self.close_grace_s = quiet_limit_s, close_grace_s
        self.queue: asyncio.Queue[Item | None] = asyncio.Queue(maxsize=2000)
        self._arrivals: list[tuple[float, float]] = []  # (audio ms at a frame's end, wall arrival)

    async def receive(self, messages: AsyncIterator[agent_pb2.SessionInput]) -> None:
        """Take messages off the stream as they come (the reader may lag while the turn model runs)."""
        try:
            async for message in messages:
                await self.queue.put((message, time.monotonic()))
        finally:
            await self.queue.put(None)

    async def next(self, quiet: Callable[[], bool]) -> Item | str | None:
        """The next message; "idle" once nothing came for the quiet limit while `quiet()`; None at the end."""
        while True:
            try:
                return await asyncio.wait_for(self.queue.get(), timeout=self.quiet_limit_s)
            except TimeoutError:
                if quiet():
                    return "idle"

    async def drain(self, receiver: asyncio.Task) -> None:
        """After `ended`, give the client a moment to stop sending before the status goes out: a client still
        writing when the RPC closes sees its next write fail (gRPC reports INTERNAL) instead of a clean end."""
        async def discard() -> None:
            while await self.queue.get() is not None:
                pass

        discarding = asyncio.create_task(discard())
        try:
            await asyncio.wait({receiver}, timeout=self.close_grace_s)
        finally:
            discarding.cancel()

    def audio_arrived(self, audio_ms: float, arrived: float) -> None:
        self._arrivals.append((audio_ms, arrived))
        if len(self._arrivals) > 20000:
            del self._arrivals[:10000]

    def wall_at(self, audio_ms: float) -> float:
        """When the audio at this position on the session's clock arrived."""
        index = bisect.bisect_left(self._arrivals, (audio_ms, 0.0))
        if index >= len(self._arrivals):
            return self._arrivals[-1][1] if self._arrivals else time.monotonic()
        return self._arrivals[index][1]
