"""`run_bus_test`: put messages on a turn's subjects, expect messages back, fail with what did arrive.

In the spirit of Pipecat's `run_test` (send these frames, expect these frames): the stage under test runs for real
(see `RunningStage`) on a real nats-server; the test states the conversation on the bus, not its plumbing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from google.protobuf.message import Message

from emoomni.core.bus import Bus, Kind, subject
from emoomni.core.contract import decode
from emoomni.core.natsserver import NatsServer


@dataclass
class Send:
    """A work item for `stage`, dispatched on the turn's `kind` subject (the stage must have a replica on the bus)."""

    kind: str
    message: Message
    stage: str


async def run_bus_test(bus: Bus, turn_id: str, send: list[Send], expect: list[str], *,
                       timeout_s: float = 30.0) -> list[tuple[str, Message]]:
    """Dispatch `send` in order, then collect the turn's messages until the kinds in `expect` have arrived in that
    order (others may come in between). Returns every (kind, message) seen. An ERROR event that `expect` does not
    name fails at once, with the error; a timeout fails with the kinds that did arrive."""
    seen: list[tuple[str, Message]] = []
    arrived = asyncio.Event()

    async def on_message(msg) -> None:
        kind = msg.subject.rsplit(".", 1)[1]
        message = decode(kind, msg.data)
        seen.append((kind, msg.data if message is None else message))
        arrived.set()

    sub = await bus.subscribe(subject(turn_id, ">"), on_message)
    await bus.flush()
    try:
        for item in send:
            await bus.dispatch(subject(turn_id, item.kind), item.message, item.stage)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            kinds = [kind for kind, _ in seen]
            unexpected_error = next((m for k, m in seen if k == Kind.ERROR), None) if Kind.ERROR not in expect else None
            if unexpected_error is not None:
                raise AssertionError(f"turn {turn_id}: unexpected error {unexpected_error.error}")
            if _in_order(kinds, expect):
                return seen
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"turn {turn_id}: expected {expect} within {timeout_s:.0f} s, got {kinds}")
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), timeout=left)
    finally:
        await sub.unsubscribe()


def _in_order(kinds: list[str], expect: list[str]) -> bool:
    rest = iter(kinds)
    return all(any(kind == wanted for kind in rest) for wanted in expect)


def run_on_bus(scenario: Callable[[NatsServer, Bus], Awaitable[None]], name: str = "gateway") -> None:
    """Run `scenario(nats, bus)` on a fresh real nats-server with one connected `Bus` (closed afterwards): for tests
    that change the server's state (its streams, a restart), which a shared server must not see."""

    async def main() -> None:
        with NatsServer() as nats:
            bus = await Bus.connect(nats.url, name)
            try:
                await scenario(nats, bus)
            finally:
                await bus.close()

    asyncio.run(main())
