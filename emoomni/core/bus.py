"""The NATS event bus: subject names, protobuf publishing with trace context, queue-group workers.

Every turn lives under ``emoomni.v1.turn.<turn_id>.<kind>``; the kinds, their messages, senders and readers are the
turn contract (`emoomni.core.contract`). Work items (``request``, ``perception``,
``strategy``, ``speak``) go through a JetStream work queue (see `emoomni.core.workqueue`): every replica of a stage
pulls from the stage's one consumer, so a second replica anywhere on the bus shares the work, and an item whose
replica died is handed to another. Events (E-CoT text, audio, timings, errors) are plain messages. The gateway
subscribes to ``emoomni.v1.turn.<turn_id>.<kind>`` and streams what it sees to the caller.

Cancelling: the gateway publishes ``emoomni.v1.turn.<turn_id>.cancel`` and purges the turn's waiting work; every
replica stops its work items of that turn (the asyncio task is cancelled, which stops the model thread at its next
token or audio piece) and drops any item of that turn that arrives later.

Liveness: a work item carries an id (header ``Emoomni-Work``); the replica that took it publishes a `Heartbeat`
(stage, work id, replica, delivery) on ``emoomni.v1.turn.<turn_id>.alive`` every second while it works and one with
``done`` when it is finished, so the gateway sees when the replica holding a turn's
work has died. Each replica also answers ``emoomni.v1.presence.<stage>``, which tells the gateway whether a stage
is up at all.

Poison: an item delivered for the `max_deliver`-th time was taken by replicas that vanished without a word
`max_deliver - 1` times (killed, or crashed by the item itself). It is not run again: it goes to
``emoomni.v1.deadletter.<stage>`` (a bounded stream) with why, the turn gets an error event, and the stage goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable

import nats
from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.js.api import KeyValueConfig, ObjectStoreConfig
from nats.js.errors import BucketNotFoundError, NoStreamResponseError, NotFoundError
from opentelemetry import trace

from emoomni.core import workqueue
from emoomni.core.contract import WORK_KINDS, Kind
from emoomni.core.telemetry import context_from, headers_with_trace
from emoomni.core.workqueue import (
    DEAD_LETTER_PREFIX,
    MSG_ID_HEADER,
    NOTES_STREAM,
    WORK_STREAM,
    child_work_id,
    current_delivery,
    current_work,
)
from emoomni.v1 import bus_pb2

log = logging.getLogger(__name__)

PREFIX = "emoomni.v1.turn"
# Control messages that every replica of a stage receives (plain subscriptions, no queue group).
TALKER_CONTROL = "emoomni.v1.control.talker"  # TalkerControl
TALKER_STATUS = "emoomni.v1.control.talker.status"  # TalkerStatus, one per replica per control message
PRESENCE = "emoomni.v1.presence"  # + .<stage>: answered by every ready replica (readiness)
TRANSCRIBE = "emoomni.v1.perception.transcribe"  # TranscribeRequest -> TranscribeReply (provisional ASR)
WORK_HEADER = "Emoomni-Work"
# Every store on the bus is bounded (a full one refuses what comes next; the caller gets an error).
KV_MAX_BYTES = 256 * 1024 * 1024  # session memories and locks
KV_MAX_VALUE = 1024 * 1024  # one session's memory
MEDIA_STORE_MAX_BYTES = 2 * 1024 * 1024 * 1024  # uploaded clips waiting for perception (kept media_ttl_s at most)
HEARTBEAT_S = 1.0
FETCH_WAIT_S = 5.0  # how long one pull request for work waits on the server
_TURN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def new_turn_id() -> str:
    return os.urandom(16).hex()


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

    def __init__(self, nc: NatsClient | None, *, ack_wait_s: float = 4.0, max_deliver: int = 3):
        self.nc = nc
        self._media_store = None
        # Bumped on every lost connection: a turn started before a bus outage cannot trust its subscriptions.
        self.outages = 0
        self.ack_wait_s, self.max_deliver = ack_wait_s, max_deliver
        # Named in heartbeats: which process holds a turn's work (for operators, and the fault tests).
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        self._pullers: list[asyncio.Task] = []
        self._stages: list[_StageItems] = []
        self._pulls: list = []  # the pull subscriptions of this bus's workers

    @property
    def js(self):
        return self.nc.jetstream()

    @classmethod
    async def connect(cls, url: str, name: str, *, user: str = "", password: str = "", tls_ca: str = "",
                      ack_wait_s: float = 4.0, max_deliver: int = 3) -> Bus:
        """Connect, and keep reconnecting forever: after a nats-server restart every subscription comes back.
        `ack_wait_s` and `max_deliver` set this bus's work consumers (see `emoomni.core.workqueue`)."""
        bus = cls(None, ack_wait_s=ack_wait_s, max_deliver=max_deliver)

        async def on_disconnect() -> None:
            if bus.nc is not None and (bus.nc.is_closed or bus.nc.is_draining):
                return  # our own close, not an outage
            bus.outages += 1
            log.warning("%s lost the bus connection; reconnecting", name)

        async def on_reconnect() -> None:
            bus._media_store = None  # JetStream contexts are per connection state
            log.warning("%s reconnected to the bus", name)

        options = {}
        if user:
            options.update(user=user, password=password)
        if tls_ca:
            import ssl

            options["tls"] = ssl.create_default_context(cafile=tls_ca)
        nc = await nats.connect(url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                connect_timeout=5, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect,
                                **options)
        bus.nc = nc
        return bus

    async def close(self) -> None:
        """Stop taking work, hand the items in progress back to the queue (another replica takes them at once),
        then drain the connection."""
        for puller in self._pullers:
            puller.cancel()
        for pull in self._pulls:
            # Not drained: a pull request's expiry notice may sit in its queue with no fetch left to read it,
            # and draining would wait for it (30 s).
            with contextlib.suppress(Exception):
                await pull.unsubscribe()
        running = [task for stage in self._stages for task in stage.tasks]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=0.5)
        if self.nc.is_connected:
            await self.nc.drain()
        elif not self.nc.is_closed:  # reconnecting: there is nothing to drain to
            await self.nc.close()

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    @property
    def max_payload(self) -> int:
        """The largest message the server takes (bytes)."""
        return self.nc.max_payload

    async def subscribe(self, subj: str, cb: Callable[[Msg], Awaitable[None]]):
        """A plain subscription (events of a turn, control messages); returns it, to `unsubscribe()`. What this
        connection publishes afterwards reaches the server after it; `flush()` waits until the server has it."""
        return await self.nc.subscribe(subj, cb=cb)

    async def flush(self) -> None:
        await self.nc.flush()

    async def publish(self, subj: str, msg: Message) -> None:
        """Publish with the current span's trace context in the headers."""
        await self.nc.publish(subj, msg.SerializeToString(), headers=headers_with_trace())

    async def dispatch(self, subj: str, msg: Message, stage: str, timeout_s: float = 5.0, key: str | int = "") -> str:
        """Hand a work item to a stage: stored in the work queue once this returns (not yet worked on). Returns
        the item's id, which the heartbeats of the replica working on it name. `key` tells apart the items of
        one kind that one handler hands on (a sentence index).

        A turn's first item to a stage with no replica on the bus is refused at once, so the caller hears of it
        instead of waiting. Items handed on mid-turn wait in the queue: a replica that is restarting takes them
        when it is back, and the gateway ends the turn if none is within `deadlines.stall_s`."""
        if not current_work.get() and not await self.stage_alive(stage, timeout_s):
            raise StageUnavailable(f"no {stage} service is running on the bus")
        work_id = child_work_id(subj.rsplit(".", 1)[-1], key)
        headers = {**headers_with_trace(), WORK_HEADER: work_id, MSG_ID_HEADER: work_id}
        try:
            await self.js.publish(subj, msg.SerializeToString(), timeout=timeout_s, headers=headers)
        except NoStreamResponseError as exc:
            raise StageUnavailable(f"the bus has no work queue for {stage} (no replica has started one)") from exc
        except TimeoutError as exc:
            raise StageUnavailable(f"the bus did not store the work for {stage} within {timeout_s:.0f} s") from exc
        return work_id

    async def kept_note(self, subj: str) -> bytes | None:
        """The last message on a subject the notes stream keeps (the turn's acoustic instruction), if any."""
        try:
            return (await self.js.get_last_msg(NOTES_STREAM, subj)).data
        except NotFoundError:
            return None

    async def ask(self, subj: str, msg: Message, reply_type: type[Message], timeout_s: float) -> Message:
        """Request-reply for small best-effort calls outside a turn's work chain (no redelivery, no liveness)."""
        reply = await self.nc.request(subj, msg.SerializeToString(), timeout=timeout_s, headers=headers_with_trace())
        return reply_type.FromString(reply.data)

    async def answer(self, subj: str, queue: str, request_type: type[Message],
                     handler: Callable[[Message], Awaitable[Message]]) -> None:
        """Serve `ask` calls on `subj`, one replica of the queue group per call."""

        async def on_request(msg: Msg) -> None:
            reply = await handler(request_type.FromString(msg.data))
            with contextlib.suppress(Exception):  # the asker gave up: nothing to answer
                await msg.respond(reply.SerializeToString())

        await self.nc.subscribe(subj, queue=queue, cb=on_request)

    async def worker(self, kind: str, stage: str, handler: Handler, *, concurrent: int = 1) -> None:
        """Work the stage's items of `kind` from the work queue, up to `concurrent` at once; the rest wait in the
        queue, where any free replica of the stage can take them."""
        consumer = workqueue.stage_consumer_config(stage, work_subject(kind), self.ack_wait_s, self.max_deliver)
        await self._ensure_queue(consumer)
        items = _StageItems(self, stage, handler)
        self._stages.append(items)
        await self.nc.subscribe(work_subject(Kind.CANCEL), cb=items.cancel)
        pull = await self.js.pull_subscribe_bind(stage, WORK_STREAM)
        self._pulls.append(pull)
        self._pullers.append(asyncio.create_task(self._pull(pull, consumer, items, max(1, concurrent))))
        await self.nc.flush()  # the server knows the subscriptions before the stage reports itself ready

    async def _pull(self, pull, consumer, items: _StageItems, concurrent: int) -> None:
        """Fetch one item whenever a slot is free; survive bus outages (a lost consumer is made again)."""
        slots = asyncio.Semaphore(concurrent)
        while True:
            await slots.acquire()
            started = False
            try:
                for msg in await pull.fetch(1, timeout=FETCH_WAIT_S):
                    started = items.start(msg, slots.release)
            except TimeoutError:
                pass  # nothing waiting
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s: fetching work failed (%s); trying again", items.stage, exc)
                await asyncio.sleep(1.0)
                with contextlib.suppress(Exception):
                    await self._ensure_queue(consumer)
            finally:
                if not started:
                    slots.release()

    async def _ensure_queue(self, consumer) -> None:
        """The work streams and this stage's consumer: made at start, and again if a bus without persistent
        storage lost them."""
        js = self.js
        await workqueue.ensure_stream(js, workqueue.work_stream_config([work_subject(k) for k in WORK_KINDS]))
        await workqueue.ensure_stream(js, workqueue.notes_stream_config([work_subject(Kind.INSTRUCTION)]))
        await workqueue.ensure_stream(js, workqueue.dead_letter_stream_config())
        await workqueue.ensure_consumer(js, consumer)

    async def cancel_turn(self, turn_id: str) -> None:
        """Tell every replica to stop the turn's work and drop its waiting items (see the module docstring)."""
        await self.nc.publish(subject(turn_id, Kind.CANCEL), b"")
        with contextlib.suppress(Exception):
            await self.nc.flush(timeout=2)
        with contextlib.suppress(Exception):  # no work queue yet, or the bus is down: nothing waits there
            await self.js.purge_stream(WORK_STREAM, subject=subject(turn_id, "*"))

    async def alive(self, work_subj: str, stage: str, work_id: str, state: str, delivery: int = 1) -> None:
        """One heartbeat of a work item (see the module docstring); `delivery` counts from 1, and an item on its
        last delivery (`max_deliver`) whose heartbeats stop will not come back."""
        try:
            beat = bus_pb2.Heartbeat(stage=stage, work_id=work_id, done=state == "done", replica=self.replica,
                                     delivery=delivery, max_deliver=self.max_deliver)
            await self.nc.publish(subject(turn_id_of(work_subj), Kind.ALIVE), beat.SerializeToString())
        except Exception:  # the bus is down: the gateway learns that from its own connection
            log.debug("heartbeat not sent", exc_info=True)

    async def answer_presence(self, stage: str) -> None:
        """Tell the gateway this replica of `stage` is ready (called once its workers are subscribed)."""

        async def pong(msg: Msg) -> None:
            await msg.respond(b"")

        await self.nc.subscribe(f"{PRESENCE}.{stage}", cb=pong)
        await self.nc.flush()

    async def stage_alive(self, stage: str, timeout_s: float = 2.0) -> bool:
        """Whether at least one replica of `stage` answers on the bus right now (see `answer_presence`)."""
        if not self.nc.is_connected:
            return False
        for pause in (0.1, 0.3, None):
            try:
                await self.nc.request(f"{PRESENCE}.{stage}", b"", timeout=timeout_s)
                return True
            except NoRespondersError:
                # nats-server 2.15 now and then answers "no responders" to a request although a replica is
                # subscribed; a stage that is really missing is still reported within half a second.
                if pause is None:
                    return False
                await asyncio.sleep(pause)
            except Exception:
                return False
        return False

    async def key_value(self, bucket: str, ttl_s: float):
        """A JetStream key-value bucket that keeps the latest value per key (created on first use)."""
        js = self.nc.jetstream()
        try:
            return await js.key_value(bucket)
        except BucketNotFoundError:
            return await js.create_key_value(KeyValueConfig(bucket=bucket, history=1, ttl=float(ttl_s),
                                                            max_bytes=KV_MAX_BYTES, max_value_size=KV_MAX_VALUE))

    async def media_store(self, bucket: str, ttl_s: int):
        """The JetStream object store where uploaded clips wait for perception (created on first use)."""
        if self._media_store is None:
            js = self.nc.jetstream()
            try:
                self._media_store = await js.object_store(bucket)
            except Exception:
                self._media_store = await js.create_object_store(
                    bucket, config=ObjectStoreConfig(ttl=float(ttl_s), max_bytes=MEDIA_STORE_MAX_BYTES))
        return self._media_store


class _StageItems:
    """The work items one replica of a stage holds: each runs as a task, is confirmed every second while it runs
    and is acknowledged when it ends (or handed back at once when the replica shuts down)."""

    def __init__(self, bus: Bus, stage: str, handler: Handler):
        self.bus, self.stage, self.handler = bus, stage, handler
        self.cancelled = _RecentTurns()
        self.tasks: dict[asyncio.Task, str] = {}  # task -> turn id
        self.held: dict[str, Msg] = {}  # work id -> its latest delivery

    def start(self, msg: Msg, release: Callable[[], None]) -> bool:
        """Begin working on a delivered item; False when nothing started (the caller frees the slot)."""
        work_id = (msg.headers or {}).get(WORK_HEADER, "") or f"seq{msg.metadata.sequence.stream}"
        if work_id in self.held:
            # Delivered again while this replica still works on it (its loop was too busy to confirm in time):
            # keep working, and confirm and acknowledge the newest delivery.
            self.held[work_id] = msg
            return False
        turn_id = turn_id_of(msg.subject)
        if self.bus.max_deliver > 1 and _delivery(msg) >= self.bus.max_deliver:
            task = asyncio.create_task(self._set_aside(msg, work_id, turn_id))
        else:
            task = asyncio.create_task(self._run(msg, work_id, turn_id))
        self.tasks[task] = turn_id
        task.add_done_callback(lambda t: (self.tasks.pop(t, None), release()))
        return True

    async def _run(self, msg: Msg, work_id: str, turn_id: str) -> None:
        self.held[work_id] = msg
        token = current_work.set(work_id)
        current_delivery.set(_delivery(msg))
        confirm = asyncio.create_task(self._confirm(msg.subject, work_id))
        finished = False
        try:
            if turn_id not in self.cancelled:
                # Handed on by a stage that had not yet heard the cancel: the turn is over, do nothing.
                await self.handler(msg)
            finished = True
        except asyncio.CancelledError:
            finished = turn_id in self.cancelled  # else this replica is shutting down: hand the item back
            if not finished:
                raise
        finally:
            confirm.cancel()
            current_work.reset(token)
            latest = self.held.pop(work_id, msg)
            with contextlib.suppress(Exception):
                await (latest.ack() if finished else latest.nak())
            if finished:
                await self.bus.alive(msg.subject, self.stage, work_id, "done")

    async def _set_aside(self, msg: Msg, work_id: str, turn_id: str) -> None:
        """A poison item (see the module docstring): to the dead letters, an error to its turn, never run again."""
        from emoomni.v1 import agent_pb2

        tries = _delivery(msg) - 1
        why = (f"the {self.stage} stage stopped {tries} times while working on this turn's input; the input was set "
               f"aside and the stage goes on")
        log.error("%s: work item %s of turn %s set aside after %d lost tries (%s.%s)", self.stage, work_id, turn_id,
                  tries, DEAD_LETTER_PREFIX, self.stage)
        headers = {"Emoomni-Stage": self.stage, "Emoomni-Subject": msg.subject, "Emoomni-Work": work_id,
                   "Emoomni-Reason": f"its holder vanished {tries} times (crash or kill)"}
        with contextlib.suppress(Exception):
            await self.bus.js.publish(f"{DEAD_LETTER_PREFIX}.{self.stage}", msg.data, headers=headers, timeout=5)
        error = agent_pb2.TurnError(code="INTERNAL", message=why, stage=self.stage)
        await self.bus.publish(subject(turn_id, Kind.ERROR), agent_pb2.TurnEvent(turn_id=turn_id, error=error))
        with contextlib.suppress(Exception):
            await msg.term()
        await self.bus.alive(msg.subject, self.stage, work_id, "done")

    async def _confirm(self, work_subj: str, work_id: str) -> None:
        while True:
            latest = self.held[work_id]
            with contextlib.suppress(Exception):
                await latest.in_progress()
            await self.bus.alive(work_subj, self.stage, work_id, "busy", _delivery(latest))
            await asyncio.sleep(HEARTBEAT_S)

    async def cancel(self, msg: Msg) -> None:
        turn_id = turn_id_of(msg.subject)
        self.cancelled.add(turn_id)
        for task, task_turn in list(self.tasks.items()):
            if task_turn == turn_id:
                task.cancel()


def _delivery(msg: Msg) -> int:
    try:
        return msg.metadata.num_delivered
    except Exception:  # a plain NATS message: its first and only delivery
        return 1


class _RecentTurns:
    """The last few hundred cancelled turn ids, forgotten after a few minutes."""

    def __init__(self, keep: int = 512, ttl_s: float = 300.0):
        self.keep, self.ttl_s = keep, ttl_s
        self._seen: dict[str, float] = {}

    def add(self, turn_id: str) -> None:
        now = time.monotonic()
        self._seen[turn_id] = now
        if len(self._seen) > self.keep:
            for old in [t for t, at in self._seen.items() if now - at > self.ttl_s][: len(self._seen)]:
                del self._seen[old]
            while len(self._seen) > self.keep:
                del self._seen[next(iter(self._seen))]

    def __contains__(self, turn_id: str) -> bool:
        at = self._seen.get(turn_id)
        return at is not None and time.monotonic() - at <= self.ttl_s


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
