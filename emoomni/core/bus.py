"""The NATS event bus: subject names, protobuf publishing with trace context, queue-group workers.

Every turn lives under ``emoomni.v1.turn.<turn_id>.<kind>``. A stage queue-subscribes to
``emoomni.v1.turn.*.<kind>`` for its input, so a second replica anywhere on the bus shares the work.
The gateway subscribes to ``emoomni.v1.turn.<turn_id>.>`` and streams what it sees to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

import nats
from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.js.api import ObjectStoreConfig
from opentelemetry import trace

from emoomni.core.telemetry import context_from, headers_with_trace

log = logging.getLogger(__name__)

PREFIX = "emoomni.v1.turn"
# Control messages that every replica of a stage receives (plain subscriptions, no queue group).
TALKER_CONTROL = "emoomni.v1.control.talker"  # TalkerControl
TALKER_STATUS = "emoomni.v1.control.talker.status"  # TalkerStatus, one per replica per control message
_TURN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Kind:
    """The last token of a turn subject: what the message is."""

    REQUEST = "request"  # TurnRequest, gateway -> perception
    PERCEPTION = "perception"  # ReasonJob, perception -> reasoning
    ECOT = "ecot"  # TurnEvent(ecot_delta), reasoning -> gateway
    STRATEGY = "strategy"  # MapJob, reasoning -> instruction
    INSTRUCTION = "instruction"  # TurnEvent(instruction), instruction -> reasoning, gateway
    SPEAK = "speak"  # SpeakJob, reasoning -> talker
    AUDIO = "audio"  # TurnEvent(audio), talker -> gateway
    TIMING = "timing"  # TurnEvent(timing), every stage -> gateway
    ERROR = "error"  # TurnEvent(error), any stage -> gateway


def new_turn_id() -> str:
    return uuid.uuid4().hex


def valid_turn_id(turn_id: str) -> bool:
    """Turn ids become subject tokens, so dots, spaces and wildcards are not allowed."""
    return bool(_TURN_ID.match(turn_id))


def subject(turn_id: str, kind: str) -> str:
    return f"{PREFIX}.{turn_id}.{kind}"


def work_subject(kind: str) -> str:
    return f"{PREFIX}.*.{kind}"


def turn_id_of(subject_name: str) -> str:
    return subject_name.split(".")[3]


def deadline_in(seconds: float) -> int:
    return time.time_ns() + int(seconds * 1e9)


def seconds_left(deadline_unix_ns: int) -> float:
    """Seconds until an absolute deadline; a large number when no deadline was set."""
    if not deadline_unix_ns:
        return 3600.0
    return (deadline_unix_ns - time.time_ns()) / 1e9


Handler = Callable[[Msg], Awaitable[None]]


class StageUnavailable(Exception):
    """No replica of the next stage took the work item."""


class Bus:
    """One NATS connection with helpers for protobuf messages and trace context."""

    def __init__(self, nc: NatsClient):
        self.nc = nc
        self._media_store = None

    @classmethod
    async def connect(cls, url: str, name: str) -> Bus:
        nc = await nats.connect(url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                connect_timeout=5)
        return cls(nc)

    async def close(self) -> None:
        if not self.nc.is_closed:
            await self.nc.drain()

    async def publish(self, subj: str, msg: Message) -> None:
        """Publish with the current span's trace context in the headers."""
        await self.nc.publish(subj, msg.SerializeToString(), headers=headers_with_trace())

    async def dispatch(self, subj: str, msg: Message, stage: str, timeout_s: float = 5.0) -> None:
        """Hand a work item to a stage and wait for a replica's acknowledgement (not for the work).

        With no replica subscribed NATS answers "no responders" at once, so a missing stage ends the turn
        with a clear error instead of a silent wait until the deadline.
        """
        try:
            await self.nc.request(subj, msg.SerializeToString(), timeout=timeout_s, headers=headers_with_trace())
        except NoRespondersError as exc:
            raise StageUnavailable(f"no {stage} service is running on the bus") from exc
        except TimeoutError as exc:
            raise StageUnavailable(f"no {stage} replica acknowledged the work within {timeout_s:.0f} s") from exc

    async def worker(self, kind: str, queue: str, handler: Handler, *, concurrent: int = 1) -> None:
        """Queue-subscribe to a work kind; acknowledge each item the moment it arrives (see `dispatch`), then
        handle up to `concurrent` items at once, the rest waiting in arrival order.

        The acknowledgement must not wait for earlier items: NATS runs a subscription's callbacks one after
        another, so acking inside a handler that is still busy would leave later dispatchers without an
        answer and report the stage unavailable while it is only busy."""
        gate = asyncio.Semaphore(max(1, concurrent))
        tasks: set[asyncio.Task] = set()

        async def run(msg: Msg) -> None:
            async with gate:
                await handler(msg)

        async def take(msg: Msg) -> None:
            if msg.reply:
                await msg.respond(b"")
            task = asyncio.create_task(run(msg))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        await self.nc.subscribe(work_subject(kind), queue=queue, cb=take)
        await self.nc.flush()  # the server knows the subscription before the stage reports itself ready

    async def media_store(self, bucket: str, ttl_s: int):
        """The JetStream object store where uploaded clips wait for perception (created on first use)."""
        if self._media_store is None:
            js = self.nc.jetstream()
            try:
                self._media_store = await js.object_store(bucket)
            except Exception:
                self._media_store = await js.create_object_store(
                    bucket, config=ObjectStoreConfig(ttl=float(ttl_s)))
        return self._media_store


def span_from_msg(tracer: trace.Tracer, name: str, msg: Msg, **attrs):
    """A span that continues the trace carried in a NATS message's headers."""
    span = tracer.start_as_current_span(name, context=context_from(msg.headers),
                                        kind=trace.SpanKind.CONSUMER)
    return _with_attrs(span, {"messaging.system": "nats", "messaging.destination.name": msg.subject,
                              **attrs})


class _with_attrs:
    def __init__(self, cm, attrs):
        self.cm, self.attrs = cm, attrs

    def __enter__(self):
        span = self.cm.__enter__()
        for key, value in self.attrs.items():
            span.set_attribute(key, value)
        return span

    def __exit__(self, *exc):
        return self.cm.__exit__(*exc)
