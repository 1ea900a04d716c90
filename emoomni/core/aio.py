"""Bridging synchronous model code (which yields results as it makes them) into asyncio."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator

_END = object()


async def iterate_in_thread(make: Callable[[], Iterator], item_timeout_s: float | None = None,
                            on_timeout: Callable[[], Exception] | None = None) -> AsyncIterator:
    """Run `make()` in a worker thread and yield its items here as they are produced.

    The event loop stays free while the model works. When the consumer stops early (or an item takes longer
    than `item_timeout_s`, raising `on_timeout()`), the thread stops at its next item.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in make():
                if stop.is_set():
                    return
                loop.call_soon_threadsafe(queue.put_nowait, item)
        except BaseException as exc:  # handed to the consumer below
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    loop.run_in_executor(None, produce)
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=item_timeout_s)
            except TimeoutError:
                raise (on_timeout() if on_timeout else TimeoutError("no result in time")) from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
