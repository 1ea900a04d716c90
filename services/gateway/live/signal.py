"""Wake-ups instead of polls: whoever changes the floor fires; whoever waits for a condition sleeps until the next
fire or until a time it computed (playback advances with the clock, so a pacer knows when to look again)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class Changes:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(self, wait_s: Callable[[], float | None]) -> None:
        """Return once `wait_s()` says 0; it gives the seconds to sleep before asking again, or None to sleep until
        the next fire. Single-threaded asyncio: no fire can slip between the question and the sleep."""
        while (delay := wait_s()) != 0:
            event = self._event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=delay)
