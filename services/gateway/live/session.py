"""A live conversation (`Agent.Session`): the async shell around the floor.

It only connects: the client's messages -> the listener (VAD + end of turn, on the audio's own clock) -> the floor
(floor.py: who has the floor, what to start or cancel) -> replies running on the stack (reply_runner.py) -> the
client's events; plus the session's memory. See docs/live.md for the behaviour and docs/architecture.md for the
parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from emoomni.core.bus import new_turn_id
from emoomni.core.config import StackConfig
from emoomni.services.gateway.acks import AckBank
from emoomni.services.gateway.core import GatewayCore
from emoomni.services.gateway.listening import ListeningInputError, ListeningModels, TurnDetector
from emoomni.services.gateway.live import floor as decisions
from emoomni.services.gateway.live.conversation import Conversation
from emoomni.services.gateway.live.drafts import Drafts
from emoomni.services.gateway.live.floor import Floor
from emoomni.services.gateway.live.inbox import Inbox
from emoomni.services.gateway.live.inputs import FrameBuffer, InputRefused, SessionError, check_config, quiet_limit_s
from emoomni.services.gateway.live.outbox import Outbox
from emoomni.services.gateway.live.policy import Policies
from emoomni.services.gateway.live.reply import SAMPLE_RATE, Reply, UserTurn
from emoomni.services.gateway.live.reply_runner import ReplyRunner, barge_in_latency
from emoomni.services.gateway.live.signal import Changes
from emoomni.services.gateway.memory import SessionLocks, SessionStore
from emoomni.v1 import agent_pb2

log = logging.getLogger(__name__)


class LiveSession:
    """One session. `run(inputs)` yields the events for the client."""

    def __init__(self, cfg: StackConfig, gateway: GatewayCore, store: SessionStore, locks: SessionLocks,
                 acks: AckBank, active: dict[str, LiveSession], models: ListeningModels):
        self.cfg, self.live, self.models, self.gateway = cfg, cfg.live, models, gateway
        self.store, self.locks, self.acks, self.active = store, locks, acks, active
        self.out = Outbox()
        self.inbox = Inbox(quiet_limit_s(cfg), cfg.live.close_grace_s)
        self.changes = Changes()
        self.session_id = ""
        self.work: dict[str, asyncio.Task] = {}  # replies at work, by turn id
        self._lock: asyncio.Task | None = None  # holds the session's lock across replicas while it lives

    # ---- the stream ----

    async def run(self, inputs: AsyncIterator[agent_pb2.SessionInput]) -> AsyncIterator[agent_pb2.SessionEvent]:
        iterator = inputs.__aiter__()
        await self._open(await anext(iterator, None))
        receiver = asyncio.create_task(self.inbox.receive(iterator))
        reader = asyncio.create_task(self._read())
        try:
            yield agent_pb2.SessionEvent(started=agent_pb2.SessionStarted(
                session_id=self.session_id, history_turns=len(self.talk.memory.turns),
                resume_token=self.talk.resume_token))
            while (event := await self.out.queue.get()) is not None:
                if isinstance(event, SessionError):
                    raise event
                yield event
            await _stop(reader)
            await self.inbox.drain(receiver)
        finally:
            await self._close(receiver, reader)

    async def _open(self, first: agent_pb2.SessionInput | None) -> None:
        options = check_config(first, self.cfg)
        session_id = options.resume_id or options.session_id or new_turn_id()
        if session_id in self.active:
            raise SessionError("ALREADY_EXISTS", f"session {session_id} is already live on this gateway")
        self._lock = await self.locks.claim(session_id)
        if self._lock is None:
            raise SessionError("ALREADY_EXISTS", f"session {session_id} is live on another gateway replica (one that "
                               f"died frees it within {self.live.lock_ttl_s:.0f} s)")
        try:
            self.talk = await Conversation.open(self.store, options, session_id)
        except BaseException:
            await _stop(self._lock)
            raise
        self.session_id, self.options = session_id, options
        self.active[session_id] = self
        self.listener = TurnDetector(self.models, options.sample_rate, self.cfg.listening)
        self.floor = Floor(Policies.of(self.live, self.cfg.listening, options.echo_guard), new_turn_id)
        self.frames = FrameBuffer(self.cfg, options.video)
        self.runner = ReplyRunner(session_id, self.live, self.gateway, options, self.frames, self.acks, self.floor,
                                  self.changes, self.out.emit, self.talk.remember_answered, self.talk.last_user_text)
        self.drafts = Drafts(self.cfg, self.gateway, self.listener, self.floor, self.out.put, self.out.emit)
        self.runner.prepare_acks()

    async def _close(self, receiver: asyncio.Task, reader: asyncio.Task) -> None:
        for task in (receiver, reader, self.drafts.task, self._lock):
            await _stop(task)
        await self._apply(self.floor.client_gone())  # frees the stages if the client left mid-turn
        self.active.pop(self.session_id, None)
        with contextlib.suppress(Exception):
            await self.store.save(self.talk.memory)

    async def _read(self) -> None:
        try:
            while (item := await self.inbox.next(lambda: self.floor.quiet(time.monotonic()))) is not None:
                if item == "idle":
                    return await self._finish("idle")
                message, arrived = item
                if message.WhichOneof("msg") == "end":
                    break
                await self._on_input(message, arrived)
            await self._finish("end")
        except SessionError as exc:
            self.out.end(exc)
        except Exception as exc:  # a bug here must end this session, not the gateway
            log.exception("live session %s failed", self.session_id)
            self.out.end(SessionError("INTERNAL", f"the session failed: {exc}"))
        return None

    async def _on_input(self, message: agent_pb2.SessionInput, arrived: float) -> None:
        which, now = message.WhichOneof("msg"), time.monotonic()
        try:
            if which == "audio":
                await self._on_audio(message.audio, arrived)
            elif which == "video":
                self.frames.add(message.video, now)
            elif which == "playback":
                self._on_playback(message.playback, now)
            elif which == "interrupt":
                await self._apply(self.floor.interrupt(now))
            elif which == "text":
                if not message.text.strip():
                    raise InputRefused("INVALID_ARGUMENT", "an empty text message")
                await self._apply(self.floor.text(message.text.strip(), now))
            else:
                raise InputRefused("INVALID_ARGUMENT", "`config` may only come first")
        except (InputRefused, ListeningInputError) as exc:
            self.out.refuse(getattr(exc, "code", "INVALID_ARGUMENT"), str(exc))

    async def _on_audio(self, pcm: bytes, arrived: float) -> None:
        events = await asyncio.to_thread(self.listener.feed, pcm)
        now = time.monotonic()
        self.inbox.audio_arrived(self.listener.position_ms, arrived)
        for event in events:
            await self._apply(self._on_listening(event, now))
        await self._apply(self.floor.speech_heard(self.listener.speech_ms, now))
        self.drafts.maybe_start()

    def _on_listening(self, event, now: float) -> list[decisions.Decision]:
        if event.kind in ("speech_started", "speech_stopped"):
            speaking = event.kind == "speech_started"
            self.out.put(agent_pb2.SessionEvent(speech=agent_pb2.SpeechActivity(
                speaking=speaking, at_ms=event.start_ms if speaking else event.end_ms)))
            return (self.floor.speech_started(event) if speaking
                    else self.floor.speech_stopped(event, now, lambda: self._heard_so_far(event.end_ms)))
        if event.kind == "turn_ended":
            return self.floor.turn_ended(event, now, lambda: UserTurn.spoken_between(
                event.audio, event.audio_start_ms, event.start_ms, event.end_ms, self.inbox.wall_at(event.end_ms)))
        return self.floor.idle(now) if event.kind == "idle" else []

    def _heard_so_far(self, end_ms: float) -> UserTurn | None:
        audio, start_ms = self.listener.turn_audio(), self.listener.turn_start_ms
        if audio.size == 0 or start_ms is None:
            return None
        audio_start_ms = self.listener.position_ms - audio.size * 1000 / SAMPLE_RATE
        return UserTurn.spoken_between(audio, audio_start_ms, start_ms, end_ms, self.inbox.wall_at(end_ms))

    def _on_playback(self, report: agent_pb2.PlaybackReport, now: float) -> None:
        if self.floor.playback(report.turn_id, report.played_ms, now):
            self.changes.fire()
        elif not self.talk.knows(report.turn_id):
            raise InputRefused("NOT_FOUND", f"a playback report for turn {report.turn_id!r}, which this session does "
                               "not have")

    async def _finish(self, reason: str) -> None:
        """End after the reply in flight (and those queued): its audio is still sent and played."""
        await self._apply(self.floor.finish())
        while self.work:  # a reply that ends starts the next queued one before this looks again
            await asyncio.wait(set(self.work.values()))
        counts = self.floor.counts
        self.out.put(agent_pb2.SessionEvent(ended=agent_pb2.SessionEnded(
            reason=reason, turns=counts.turns, continued_turns=counts.continued,
            preemptive_starts=counts.preemptive_starts, preemptive_cancelled=counts.preemptive_cancelled)))
        self.out.end()

    # ---- doing what the floor decided ----

    async def _apply(self, todo: list[decisions.Decision]) -> None:
        for decision in todo:
            match decision:
                case decisions.Run(reply):
                    self._start_work(reply)  # the context first: the announcement says how much history it has
                    self.out.announce(reply)
                case decisions.StartPreemptive(reply):
                    self._start_work(reply)
                case decisions.Confirm(reply):
                    self.out.release(reply)
                    if reply.done is not None:
                        self.talk.remember_answered(reply)
                case decisions.Cancel():
                    await self._cancel(decision)
                case decisions.Refuse(code, message):
                    self.out.refuse(code, message)
                case decisions.Finish(reason):
                    await self._finish(reason)
                case decisions.ResetIdle():
                    self.listener.reset_idle()
        self.changes.fire()  # after the floor changed (even with nothing to do): waiting replies look again

    def _start_work(self, reply: Reply) -> None:
        context, reply.history_turns = self.talk.context(self.live)
        self.work[reply.turn_id] = task = asyncio.create_task(self.runner.run(reply, context))
        task.add_done_callback(lambda _: self._work_ended(reply))

    def _work_ended(self, reply: Reply) -> None:
        """Synchronously (a done callback): the next queued reply is at work before anyone sees this one end."""
        self.work.pop(reply.turn_id, None)
        for run in self.floor.work_ended(reply):  # only ever `Run`
            self._start_work(run.reply)
            self.out.announce(run.reply)
        self.changes.fire()

    async def _cancel(self, cancel: decisions.Cancel) -> None:
        """Stop a reply everywhere; no audio of it is sent after this returns."""
        reply, now = cancel.reply, time.monotonic()
        await _stop(self.work.get(reply.turn_id), wait=False)
        await self.gateway.bus.cancel_turn(reply.turn_id)
        heard = reply.heard(now)
        if cancel.reason not in ("continued", "preempted"):
            self.talk.remember(reply, heard, interrupted=True)
        if not cancel.notify:
            return
        self.out.put(agent_pb2.SessionEvent(interrupted=agent_pb2.Interrupted(
            turn_id=reply.turn_id, heard_reply=heard, reason=cancel.reason)))
        spoke = None if cancel.speech_started_ms is None else self.inbox.wall_at(cancel.speech_started_ms)
        self.out.emit(reply, agent_pb2.SessionEvent(latency=barge_in_latency(reply, spoke, now)))


async def _stop(task: asyncio.Task | None, wait: bool = True) -> None:
    if task is None or task.done():
        return
    task.cancel()
    if wait:
        with contextlib.suppress(BaseException):
            await task
