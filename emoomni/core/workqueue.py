"""A turn's work items on JetStream, kept on disk until a replica has finished them: work held by a replica that
dies goes to another replica, or to the restarted one.

One work-queue stream (`WORK_STREAM`) holds the four work subjects; each stage has one durable pull consumer that
all its replicas share. A replica fetches an item only when it has a free slot, confirms it every second while it
works (`in_progress`, which holds the item for another `ack_wait`), and acknowledges it when it is finished, also
when it finished with an error event (an error is an answer, not a reason to try again). An item whose replica
stops confirming it is delivered again after `ack_wait`, at most `max_deliver` times.

Redelivered work must not reach the caller twice:
- a work item handed on while another is handled gets an id derived from that item's (`child_work_id`), and the id
  is the JetStream message id, so the stream's duplicate window drops what a redelivered item hands on again;
- what the caller sees is numbered (E-CoT deltas by `seq`, audio by sentence and chunk `seq`), and the gateway
  forwards each number once;
- the acoustic instruction, which a redelivered reasoning job needs but whose strategy job is then a duplicate, is
  kept a few minutes in `NOTES_STREAM`.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import uuid

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, NotFoundError

log = logging.getLogger(__name__)

WORK_STREAM = "EMOOMNI_WORK"
DEAD_LETTER_STREAM = "EMOOMNI_DEAD_LETTER"
DEAD_LETTER_PREFIX = "emoomni.v1.deadletter"  # .<stage>: items set aside, with why (headers Emoomni-*)
DEAD_LETTER_MAX_AGE_S = 7 * 24 * 3600.0
DEAD_LETTER_MAX_BYTES = 256 * 1024 * 1024
NOTES_STREAM = "EMOOMNI_TURN_NOTES"
MSG_ID_HEADER = "Nats-Msg-Id"  # JetStream's de-duplication header
WORK_MAX_AGE_S = 600.0  # no turn lives this long (the turn deadline is 120 s by default)
DUPLICATE_WINDOW_S = 180.0
NOTES_MAX_AGE_S = 300.0
WORK_MAX_MSGS = 20000
WORK_MAX_BYTES = 1024 * 1024 * 1024
NOTES_MAX_BYTES = 64 * 1024 * 1024

# The work item being handled in this task (its id): items it hands on get ids derived from it.
current_work: contextvars.ContextVar[str] = contextvars.ContextVar("emoomni_current_work", default="")
# How many times that item has been delivered (1: the first time).
current_delivery: contextvars.ContextVar[int] = contextvars.ContextVar("emoomni_current_delivery", default=1)


def redelivered() -> bool:
    """Whether the item being handled was delivered before, to a replica that did not finish it."""
    return current_delivery.get() > 1


def child_work_id(kind: str, key: str | int = "") -> str:
    """The id of a work item of `kind` (and `key`, e.g. a sentence index) handed on by the item being handled: the
    same on every delivery of that item, so JetStream drops the repeats. Random outside a handler (a new turn)."""
    parent = current_work.get()
    if not parent:
        return uuid.uuid4().hex[:16]
    return hashlib.blake2b(f"{parent}/{kind}/{key}".encode(), digest_size=8).hexdigest()


def work_stream_config(subjects: list[str]) -> StreamConfig:
    """Bounded in age, count and bytes; when full, new work is refused (the turn fails with a clear error) rather
    than older turns' work silently dropped."""
    return StreamConfig(name=WORK_STREAM, subjects=subjects, retention=RetentionPolicy.WORK_QUEUE,
                        storage=StorageType.FILE, max_age=WORK_MAX_AGE_S, duplicate_window=DUPLICATE_WINDOW_S,
                        max_msgs=WORK_MAX_MSGS, max_bytes=WORK_MAX_BYTES, discard=DiscardPolicy.NEW)


def dead_letter_stream_config() -> StreamConfig:
    """Items that stopped their stage again and again (poison): kept a week for whoever looks into them, bounded."""
    return StreamConfig(name=DEAD_LETTER_STREAM, subjects=[f"{DEAD_LETTER_PREFIX}.>"],
                        retention=RetentionPolicy.LIMITS, storage=StorageType.FILE, max_age=DEAD_LETTER_MAX_AGE_S,
                        max_bytes=DEAD_LETTER_MAX_BYTES, max_msgs=1000, discard=DiscardPolicy.OLD)


def notes_stream_config(subjects: list[str]) -> StreamConfig:
    return StreamConfig(name=NOTES_STREAM, subjects=subjects, retention=RetentionPolicy.LIMITS,
                        storage=StorageType.FILE, max_age=NOTES_MAX_AGE_S, max_msgs_per_subject=1,
                        max_bytes=NOTES_MAX_BYTES, discard=DiscardPolicy.OLD)


def stage_consumer_config(stage: str, filter_subject: str, ack_wait_s: float, max_deliver: int) -> ConsumerConfig:
    return ConsumerConfig(durable_name=stage, filter_subject=filter_subject, ack_policy=AckPolicy.EXPLICIT,
                          ack_wait=ack_wait_s, max_deliver=max_deliver, deliver_policy=DeliverPolicy.ALL,
                          max_ack_pending=-1)


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or bring an existing one to this configuration (replicas of every version agree)."""
    try:
        await js.add_stream(config)
    except APIError:
        await js.update_stream(config)


async def ensure_consumer(js: JetStreamContext, config: ConsumerConfig) -> None:
    """Create the stage's durable consumer; one left with other settings (an older config) is replaced."""
    try:
        await js.add_consumer(WORK_STREAM, config)
    except APIError as exc:
        log.warning("replacing the %s work consumer (%s)", config.durable_name, exc.description)
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(WORK_STREAM, config.durable_name)
        await js.add_consumer(WORK_STREAM, config)
