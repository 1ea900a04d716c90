"""Gateway core: validates a turn request, starts the turn on the bus and yields its events in order.

Used by the gRPC `Agent` servicer and directly by the embedded `emoomni chat`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator

from opentelemetry import trace

from emoomni.core.bus import Bus, Kind, StageUnavailable, deadline_in, new_turn_id, subject, valid_turn_id
from emoomni.core.config import StackConfig
from emoomni.core.contract import GATEWAY_READS, finished_stage
from emoomni.core.media import MediaError
from emoomni.core.registry import STAGES
from emoomni.core.security import check_media_path
from emoomni.core.telemetry import tracer_for
from emoomni.services.gateway.turn import TurnAssembler
from emoomni.v1 import agent_pb2, bus_pb2, media_pb2, perception_pb2

_PAYLOAD_MARGIN = 64 * 1024  # room for the rest of the TurnRequest and the headers

_TALKER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HAN = re.compile(r"[\u4e00-\u9fff]")


def written_language(text: str) -> str:
    """"zh" for text with Chinese characters, else "en": the languages the stack speaks."""
    return "zh" if _HAN.search(text) else "en"


class TurnFailed(Exception):
    """The turn ended with an error event; `code` is a gRPC status code name."""

    def __init__(self, code: str, message: str, stage: str = ""):
        super().__init__(message)
        self.code, self.stage = code, stage


class StagePresence:
    """How long each stage has failed every presence check in a row (kept by the gateway's readiness watch).

    Counted from the stage's last answer to its latest check, so a gateway whose own loop stalls (and checks
    nothing) never mistakes that for a missing stage."""

    # A stage counts as gone (health NOT_SERVING) after this many unanswered checks in a row: one slow answer on a
    # loaded machine must not flip the health (a dead replica's connection closes, so the next check fails at once).
    MISSES_TO_DOWN = 2

    def __init__(self):
        started = time.monotonic()
        self._answered = dict.fromkeys(STAGES, started)
        self._checked = dict.fromkeys(STAGES, started)
        self._misses = dict.fromkeys(STAGES, self.MISSES_TO_DOWN)  # none has answered yet

    def checked(self, stage: str, answered: bool) -> None:
        now = time.monotonic()
        self._checked[stage] = now
        if answered:
            self._answered[stage] = now
        self._misses[stage] = 0 if answered else self._misses.get(stage, 0) + 1

    def missing(self) -> list[str]:
        """The stages without a live replica, in turn order (for the gateway's health)."""
        return [stage for stage in STAGES if self._misses[stage] >= self.MISSES_TO_DOWN]

    def silent_s(self, stage: str) -> float:
        return max(0.0, self._checked.get(stage, 0.0) - self._answered.get(stage, 0.0))


class GatewayCore:
    def __init__(self, cfg: StackConfig, bus: Bus, presence: StagePresence | None = None):
        self.cfg = cfg
        self.bus = bus
        # Kept by the gateway service's readiness watch; without one (e.g. `emoomni chat`, all stages in one
        # process) only the heartbeats of handed-on work are watched.
        self.presence = presence
        self.tracer = tracer_for(f"{cfg.service_name_prefix}-gateway")

    def validate(self, request: agent_pb2.ConverseRequest) -> None:
        limits = self.cfg.limits
        if request.turn_id and not valid_turn_id(request.turn_id):
            raise MediaError("turn_id may only hold letters, digits, '-' and '_' (at most 64)")
        if len(request.context) > limits.max_context_chars:
            raise MediaError(f"the context is {len(request.context)} characters, over the "
                             f"{limits.max_context_chars} limit")
        if request.talker and not _TALKER_NAME.fullmatch(request.talker):
            raise MediaError("talker must be a plugin name: letters, digits, '-', '_' or '.' (at most 64)")
        which = request.media.WhichOneof("source")
        if which is None:
            raise MediaError("no media given: send a path, inline bytes or an upload")
        if which == "path":  # before any other look at the path: refused paths must all look the same
            check_media_path(request.media.path, self.cfg.security.media_roots)
        if which == "data" and not request.media.data:
            raise MediaError("the media is empty (0 bytes)")
        if which == "data" and len(request.media.data) > limits.max_media_bytes:
            raise MediaError(f"the media is {len(request.media.data) / 1e6:.1f} MB, over the "
                             f"{limits.max_media_bytes / 1e6:.0f} MB limit")
        if which == "object_name":
            raise MediaError("object_name is for the bus only; send a path, inline bytes or an upload")

    async def _media_for_bus(self, turn_id: str, media: media_pb2.MediaInput) -> media_pb2.MediaInput:
        """Inline bytes ride in the TurnRequest when they fit the server's max payload (one copy, no store
        round trips); larger clips go to the object store and the bus carries a reference."""
        if media.WhichOneof("source") != "data" or len(media.data) + _PAYLOAD_MARGIN <= self.bus.max_payload:
            return media
        store = await self.bus.media_store(self.cfg.nats.media_bucket, self.cfg.nats.media_ttl_s)
        name = f"{turn_id}/{media.filename or 'clip'}"
        await store.put(name, media.data)
        return media_pb2.MediaInput(object_name=name, mime_type=media.mime_type, filename=media.filename)

    async def run_turn(self, request: agent_pb2.ConverseRequest) -> AsyncIterator[agent_pb2.TurnEvent]:
        """Yield the turn's events, ending with `done`; raise TurnFailed after yielding an error event."""
        self.validate(request)
        turn_id = request.turn_id or new_turn_id()

        async def start(deadline_ns: int) -> str:
            media = await self._media_for_bus(turn_id, request.media)
            await self.bus.dispatch(subject(turn_id, Kind.REQUEST), bus_pb2.TurnRequest(
                turn_id=turn_id, media=media, context=request.context, deadline_unix_ns=deadline_ns,
                talker=request.talker, face_optional=request.face_optional), "perception")
            return "perception"

        async for event in self._run(turn_id, start):
            yield event

    async def run_text_turn(self, turn_id: str, text: str, language: str = "", context: str = "",
                            talker: str = "") -> AsyncIterator[agent_pb2.TurnEvent]:
        """A typed message as a turn: no media to perceive, so reasoning gets the words as the only cue (a live
        session's `text` input)."""
        text = text.strip()
        if not text:
            raise MediaError("the typed message is empty")
        if len(text) > self.cfg.limits.max_context_chars:
            raise MediaError(f"the typed message is {len(text)} characters, over the "
                             f"{self.cfg.limits.max_context_chars} limit")
        language = language or written_language(text)
        perception = perception_pb2.PerceptionResult(
            transcript=perception_pb2.Transcript(text=text, language=language, language_probability=1.0),
            cues=[perception_pb2.Cue(modality="text", text=f'The user typed (no voice or face to go by): "{text}"',
                                     brief=f'typed "{text}"')],
            cue_summary=f'The user typed: "{text}".')

        async def start(deadline_ns: int) -> str:
            now = time.time_ns()  # nothing to perceive: perception's share of the turn is zero
            await self.bus.publish(subject(turn_id, Kind.TIMING), agent_pb2.TurnEvent(
                turn_id=turn_id, timing=agent_pb2.StageTiming(stage="perception", start_unix_ns=now, end_unix_ns=now)))
            await self.bus.dispatch(subject(turn_id, Kind.PERCEPTION), bus_pb2.ReasonJob(
                turn_id=turn_id, perception=perception, context=context, deadline_unix_ns=deadline_ns,
                talker=talker), "reasoning")
            return "reasoning"

        async for event in self._run(turn_id, start):
            yield event

    async def _run(self, turn_id: str, start) -> AsyncIterator[agent_pb2.TurnEvent]:
        """Subscribe to the turn, hand its first work item on with `start(deadline_ns) -> its stage`,
        and yield its events in order."""
        assembler = TurnAssembler(turn_id)
        inbox: asyncio.Queue = asyncio.Queue()

        async def on_message(msg) -> None:
            inbox.put_nowait((msg.subject.rsplit(".", 1)[-1], msg.data))

        with self.tracer.start_as_current_span("turn", kind=trace.SpanKind.SERVER) as span:
            span.set_attribute("emoomni.turn_id", turn_id)
            # Subscribe before anything is published, so no event of the turn can be missed.
            subs = [await self.bus.subscribe(subject(turn_id, kind), on_message) for kind in GATEWAY_READS]
            try:
                deadline_ns = deadline_in(self.cfg.deadlines.turn_s)
                watch = WorkWatch(self.cfg.deadlines.stall_s, self.bus.outages, self.presence)
                try:
                    stage = await start(deadline_ns)
                except StageUnavailable as exc:
                    error = agent_pb2.TurnError(code="UNAVAILABLE", message=str(exc), stage="gateway")
                    yield agent_pb2.TurnEvent(turn_id=turn_id, error=error)
                    raise TurnFailed(error.code, error.message, error.stage) from exc
                watch.starts_at(stage)
                async for event in self._events(assembler, inbox, deadline_ns, watch):
                    yield event
                if assembler.error is not None:
                    err = assembler.error
                    span.set_status(trace.Status(trace.StatusCode.ERROR, err.message))
                    raise TurnFailed(err.code, err.message, err.stage)
                done = assembler.done_event()
                for stage, value in (("perception", done.done.timings.perception_ms),
                                     ("first_audio", done.done.timings.first_audio_ms),
                                     ("total", done.done.timings.total_ms)):
                    span.set_attribute(f"emoomni.{stage}_ms", value)
                yield done
            finally:
                for sub in subs:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                if not assembler.complete or assembler.error is not None:
                    # Failed, timed out or abandoned by its caller: stop whatever of the turn still runs, so
                    # that no replica spends the machine on a reply nobody will hear.
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self.bus.cancel_turn(turn_id), 3.0)

    async def _events(self, assembler: TurnAssembler, inbox: asyncio.Queue, deadline_ns: int,
                      watch: WorkWatch) -> AsyncIterator[agent_pb2.TurnEvent]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (deadline_ns - assembler.started_ns) / 1e9
        while not assembler.complete:
            problem = watch.problem(self.bus)
            if problem is None and loop.time() >= deadline:
                problem = ("DEADLINE_EXCEEDED", "gateway",
                           f"the turn did not finish within {self.cfg.deadlines.turn_s:.0f} s")
            if problem is not None:
                code, stage, message = problem
                assembler.error = agent_pb2.TurnError(code=code, stage=stage, message=message)
                yield agent_pb2.TurnEvent(turn_id=assembler.turn_id, error=assembler.error)
                return
            try:
                kind, data = await asyncio.wait_for(
                    inbox.get(), timeout=max(0.001, min(WorkWatch.CHECK_S, deadline - loop.time())))
            except TimeoutError:
                continue
            if kind == Kind.ALIVE:
                watch.heartbeat(bus_pb2.Heartbeat.FromString(data))
                continue
            for event in assembler.handle(kind, data):
                watch.finished_part(event)
                yield event
            if assembler.error is not None:
                return


class WorkWatch:
    """The turn's work items, which replica last showed a sign of life for each, and which stages the turn still
    needs; says when the turn cannot finish any more.

    Work waits in the bus's work queue until a replica of its stage is free, and an item whose replica died goes to
    another replica (or to the restarted one) after `nats.work_ack_wait_s`. So an item without heartbeats is no sign
    of trouble while its stage has replicas on the bus: it is waiting its turn. A stage the turn still needs (one
    that has not finished its part yet) whose replicas have all answered no presence check for `stall_s`, and that
    beats for no item of the turn, ends the turn with UNAVAILABLE: its work would wait for nobody. A bus outage
    loses the turn's messages, so it ends the turn at once.

    An item whose heartbeats stop on its last delivery (`nats.work_max_deliver`: it killed every replica that took
    it, or they all died) will not be handed out again, so it ends the turn `stall_s` after its last heartbeat.

    Without a presence watch (`emoomni chat`, every stage in one process) an item whose heartbeats stop for
    `stall_s` ends the turn instead."""

    CHECK_S = 0.5

    def __init__(self, stall_s: float, outages: int, presence: StagePresence | None = None):
        self.stall_s = stall_s
        self.outages = outages
        self.presence = presence
        self.items: dict[str, tuple[str, float]] = {}  # work id -> (stage, when a replica last said it works on it)
        self.last_delivery: set[str] = set()  # items whose latest delivery is their last
        self.needed: set[str] = set(STAGES)

    def starts_at(self, stage: str) -> None:
        """The turn's first stage (a typed turn skips perception)."""
        self.needed = set(STAGES[STAGES.index(stage):])

    def finished_part(self, event: agent_pb2.TurnEvent) -> None:
        """Strike a stage off once the caller has its part (the talker stays needed until the turn is done)."""
        self.needed.discard(finished_stage(event))

    def heartbeat(self, beat: bus_pb2.Heartbeat) -> None:
        if beat.done:
            self.items.pop(beat.work_id, None)
            return
        self.items[beat.work_id] = (beat.stage, time.monotonic())
        if 0 < beat.max_deliver <= beat.delivery:
            self.last_delivery.add(beat.work_id)

    def problem(self, bus: Bus) -> tuple[str, str, str] | None:
        """(code, stage, message) when the turn cannot finish any more."""
        if bus.outages != self.outages or not bus.connected:
            return ("UNAVAILABLE", "gateway", "the connection to the bus (nats-server) was lost mid-turn; "
                    "the turn's messages are gone, please send it again")
        now = time.monotonic()
        if self.presence is None:
            for stage, seen in self.items.values():
                if now - seen > self.stall_s:
                    return ("UNAVAILABLE", stage, f"the {stage} replica working on this turn stopped (no sign of "
                            f"life for {self.stall_s:.0f} s); please send the turn again")
            return None
        for work_id in self.last_delivery & self.items.keys():
            stage, seen = self.items[work_id]
            if now - seen > self.stall_s:
                return ("UNAVAILABLE", stage, f"the {stage} replicas that took this turn's work all stopped (it was "
                        "handed out as often as allowed); please send the turn again")
        beating = {stage for stage, seen in self.items.values() if now - seen <= self.stall_s}
        for stage in sorted(self.needed - beating, key=STAGES.index):
            if self.presence.silent_s(stage) > self.stall_s:
                return ("UNAVAILABLE", stage, f"no {stage} replica has been on the bus for {self.stall_s:.0f} s "
                        "and this turn still needs one; please send the turn again")
        return None
