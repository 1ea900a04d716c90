"""A live conversation (`Agent.Session`): microphone audio and camera frames in, turns out, interruptible.

The listener (VAD + end-of-turn model, on the audio's own clock) decides when the user's turn ends; the turn's
speech and frames become a clip that runs through the same chain as `Converse`, with the session's memory as
context. While a turn is in flight the session watches for the user speaking again:
- before any reply audio was sent, the user simply went on: the turn is cancelled and the next one holds both
  parts ("continued");
- while the reply plays, speech longer than `live.barge_in_ms` interrupts it (a barge-in): every stage stops
  (a cancel on the bus), no audio of that turn is sent any more, and the memory keeps only what was heard.
Reply audio is paced to the client's playback (`live.audio_lead_ms` ahead), so an interruption leaves little
audio queued anywhere. See docs/live.md.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import socket
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np

from emoomni.core.bus import TRANSCRIBE, new_turn_id, valid_turn_id
from emoomni.core.config import StackConfig
from emoomni.core.media import MediaError, check_image
from emoomni.core.text import SentenceSplitter
from emoomni.services.gateway.acks import Ack, AckBank, tone_of
from emoomni.services.gateway.core import GatewayCore, TurnFailed, written_language
from emoomni.services.gateway.listening import (
    SUPPORTED_RATES,
    ListeningEvent,
    ListeningInputError,
    ListeningModels,
    SpeechStopped,
    TurnDetector,
    TurnEnded,
    load_models,
)
from emoomni.services.gateway.memory import RememberedTurn, SessionLocks, SessionMemory, SessionStore
from emoomni.services.gateway.turn_clip import SAMPLE_RATE, turn_clip
from emoomni.v1 import agent_pb2, bus_pb2, media_pb2, reasoning_pb2

log = logging.getLogger(__name__)

MAX_BAD_INPUTS = 50  # refused messages before the session itself is ended
_CARRY_GAP = np.zeros(SAMPLE_RATE * 3 // 10, dtype=np.int16)  # between the parts of a continued turn


class SessionError(Exception):
    """Ends the session with a gRPC status (`code` is its name)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class LiveTurn:
    turn_id: str
    trigger: str
    speech_start_ms: float = 0.0
    speech_end_ms: float = 0.0
    decided_ms: float = 0.0  # audio-clock position where the turn's end was decided
    audio: np.ndarray | None = None  # int16 at 16 kHz from `audio_start_ms`; None for a typed turn
    audio_start_ms: float = 0.0
    text: str = ""
    history_turns: int = 0
    # wall clock (time.monotonic) marks
    speech_end_wall: float = 0.0
    decided_wall: float = 0.0
    ack_wall: float = 0.0
    first_audio_wall: float = 0.0
    last_audio_wall: float = 0.0
    play_origin: float = 0.0
    # what was sent
    ack: Ack | None = None
    sent_ms: float = 0.0
    reply_ms: float = 0.0
    sentence_ms: dict[int, float] = field(default_factory=dict)
    response: str = ""
    user_text: str = ""
    feeling: str = ""
    done: agent_pb2.TurnDone | None = None
    # playback as the client reported it: (played ms, when)
    report: tuple[float, float] | None = None
    finished: bool = False
    cancelled: str = ""
    task: asyncio.Task | None = None
    remembered: RememberedTurn | None = None
    preemptive: bool = False
    held: list[agent_pb2.SessionEvent] | None = None
    """A preemptive turn's events, kept until its end is decided (None once it is, or for any other turn)."""

    def played_ms(self, now: float) -> float:
        """How much of the turn's audio the client has played by now: its last report carried forward, or, with no
        reports, real time since the first chunk."""
        if self.report is not None:
            played = self.report[0] + (now - self.report[1]) * 1000
        elif self.play_origin:
            played = (now - self.play_origin) * 1000
        else:
            return 0.0
        return max(0.0, min(self.sent_ms, played))

    def audible(self, now: float) -> bool:
        """The agent is (or will be) speaking this turn: audio sent and not all played, or more still coming."""
        if self.cancelled or self.sent_ms == 0:
            return False
        return not self.finished or self.played_ms(now) < self.sent_ms - 1

    def heard_reply(self, now: float) -> str:
        """The reply's words up to the playback position (a sentence cut part-way keeps a share of its words)."""
        played = self.played_ms(now) - (self.ack.duration_ms if self.ack else 0.0)
        sentences = SentenceSplitter().feed(self.response + "\n") or [self.response]
        heard = []
        for index, sentence in enumerate(s for s in sentences if s.strip()):
            length = self.sentence_ms.get(index, 0.0)
            if played <= 0 or length == 0:
                break
            if played >= length:
                heard.append(sentence)
            else:
                words = sentence.split()
                heard.append(" ".join(words[: int(len(words) * played / length)]))
            played -= length
        return " ".join(h for h in heard if h).strip()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LiveSession:
    """One session's state machine. `run(inputs)` yields the events for the client."""

    def __init__(self, cfg: StackConfig, gateway: GatewayCore, store: SessionStore, locks: SessionLocks,
                 acks: AckBank, active: dict[str, LiveSession], models: ListeningModels):
        self.cfg, self.live, self.models = cfg, cfg.live, models
        self.gateway, self.store, self.locks, self.acks, self.active = gateway, store, locks, acks, active
        self._lock: asyncio.Task | None = None  # holds the session's lock across replicas while it lives
        self.tracer = gateway.tracer
        self.out: asyncio.Queue = asyncio.Queue()
        self.inbox: asyncio.Queue = asyncio.Queue(maxsize=2000)  # ~40 s of 20 ms frames, then back-pressure
        self.pending: deque[LiveTurn] = deque()  # turns decided while another was in flight
        self.recent: dict[str, LiveTurn] = {}  # the last few turns, for late playback reports
        self.turn: LiveTurn | None = None
        self.carry: LiveTurn | None = None  # a turn the user went on speaking over
        self.turns = 0
        self.continued = 0
        self.preempted: LiveTurn | None = None  # started at a pause; its end not decided yet
        self.preemptive_starts = 0
        self.preemptive_cancelled = 0
        self.bad_inputs = 0
        self.session_id = ""
        self.resume_token = ""
        self.options = agent_pb2.SessionConfig()
        self.memory = SessionMemory(session_id="")
        # Every frame that a turn might still use, bounded whatever the frames' timestamps say.
        self.frames: deque[tuple[float, bytes]] = deque(
            maxlen=int(self.live.max_video_fps * (self.cfg.listening.max_turn_s + 10)))
        self._frames_dropped = False
        self._frame_times: deque[float] = deque()
        self._arrivals: list[tuple[float, float]] = []  # (audio ms at a frame's end, monotonic arrival)
        self._last_ack = ""
        self._speech_started_ms = 0.0
        self._idle_from = ""  # the turn after whose playback the idle count restarted
        self._last_first_audio_ms = 0.0
        self._ending = False
        self._draft_task: asyncio.Task | None = None  # the provisional transcript being made, if any
        self._draft_for: tuple[float, float] = (-1.0, 0.0)  # (open turn's speech start, how far it was heard)

    # ---- the stream ----

    async def run(self, inputs: AsyncIterator[agent_pb2.SessionInput]) -> AsyncIterator[agent_pb2.SessionEvent]:
        iterator = inputs.__aiter__()
        first = await anext(iterator, None)
        await self._configure(first)
        receiver = asyncio.create_task(self._receive(iterator))
        reader = asyncio.create_task(self._read())
        try:
            yield agent_pb2.SessionEvent(started=agent_pb2.SessionStarted(
                session_id=self.session_id, history_turns=len(self.memory.turns), resume_token=self.resume_token))
            while True:
                event = await self.out.get()
                if event is None:
                    break
                if isinstance(event, SessionError):
                    raise event
                yield event
            await self._await_half_close(receiver, reader)
        finally:
            for task in (receiver, reader, self._draft_task, self._lock):
                if task is None:
                    continue
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            self.pending.clear()
            await self._drop_preempted(user_went_on=False)
            if self.turn is not None and not self.turn.finished:
                await self._cancel(self.turn, "client", notify=False)  # the client is gone: free the stages
            self.active.pop(self.session_id, None)
            with contextlib.suppress(Exception):
                await self.store.save(self.memory)

    async def _await_half_close(self, receiver: asyncio.Task, reader: asyncio.Task) -> None:
        """After `ended`, give the client a moment to stop sending before the status goes out: a client still
        writing when the RPC closes sees its next write fail (gRPC reports INTERNAL) instead of a clean end."""
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader

        async def drain() -> None:
            while await self.inbox.get() is not None:
                pass

        drainer = asyncio.create_task(drain())
        try:
            await asyncio.wait({receiver}, timeout=self.live.close_grace_s)
        finally:
            drainer.cancel()

    async def _configure(self, first: agent_pb2.SessionInput | None) -> None:
        if first is None or first.WhichOneof("msg") != "config":
            raise SessionError("INVALID_ARGUMENT", "a session must begin with a `config` message")
        options = first.config
        if options.sample_rate not in SUPPORTED_RATES:
            rates = ", ".join(map(str, SUPPORTED_RATES))
            raise SessionError("INVALID_ARGUMENT", f"config.sample_rate must be one of {rates} (PCM16 mono); got "
                               f"{options.sample_rate or 'none'}")
        if options.session_id and options.resume_id:
            raise SessionError("INVALID_ARGUMENT", "give either session_id (a new session) or resume_id, not both")
        for name in ("session_id", "resume_id"):
            value = getattr(options, name)
            if value and not valid_turn_id(value):
                raise SessionError("INVALID_ARGUMENT",
                                   f"{name} may only hold letters, digits, '-' and '_' (at most 64)")
        if len(options.persona) > self.cfg.limits.max_context_chars // 2:
            raise SessionError("INVALID_ARGUMENT", f"the persona is {len(options.persona)} characters, over the "
                               f"{self.cfg.limits.max_context_chars // 2} limit")
        if options.language and options.language not in ("en", "zh"):
            raise SessionError("INVALID_ARGUMENT", "config.language must be 'en', 'zh' or empty (detect)")
        if len(self.active) >= self.live.max_sessions:
            wait_s = self.cfg.listening.idle_s + self.live.idle_wall_grace_s
            raise SessionError("RESOURCE_EXHAUSTED", f"this gateway holds {self.live.max_sessions} live sessions "
                               f"already; try again in {wait_s:.0f} s (a silent session is ended by then) or on "
                               "another replica")
        session_id = options.resume_id or options.session_id or new_turn_id()
        if session_id in self.active:
            raise SessionError("ALREADY_EXISTS", f"session {session_id} is already live on this gateway")
        self._lock = await self.locks.claim(session_id)
        if self._lock is None:
            raise SessionError("ALREADY_EXISTS", f"session {session_id} is live on another gateway replica (one that "
                               f"died frees it within {self.live.lock_ttl_s:.0f} s)")
        try:
            memory = await self._memory_for(options, session_id)
        except BaseException:
            self._lock.cancel()
            with contextlib.suppress(BaseException):
                await self._lock
            raise
        self.session_id, self.options, self.memory = session_id, options, memory
        self.active[session_id] = self
        self.listener = TurnDetector(self.models, options.sample_rate, self.cfg.listening)
        if self.live.ack and not options.no_ack:
            for language in [options.language] if options.language else ["en", "zh"]:
                self.acks.prepare(options.talker, language)

    async def _memory_for(self, options: agent_pb2.SessionConfig, session_id: str) -> SessionMemory:
        """The remembered conversation to resume, or a new one (kept in the store at once, so that the id is
        known as used to every replica)."""
        if options.resume_id:
            try:
                memory = await self.store.load(options.resume_id)
            except Exception as exc:  # a bus outage or timeout: the client retries (UNAVAILABLE), not a bug
                raise SessionError("UNAVAILABLE", f"the session store is unreachable ({type(exc).__name__}); try "
                                   "again") from exc
            # The same answer whether the session does not exist or the token is wrong: an id reveals nothing.
            if memory is None or not hmac.compare_digest(memory.resume_token_sha256.encode(),
                                                         token_hash(options.resume_token).encode()):
                raise SessionError("NOT_FOUND", f"no remembered session {options.resume_id} with that resume_token "
                                   "(SessionStarted.resume_token of the session's first connection)")
            memory.persona = options.persona or memory.persona
            self.resume_token = options.resume_token
            return memory
        try:
            used = await self.store.load(session_id) is not None
        except Exception:  # best effort, like the lock: with the store out, a new session still opens
            log.warning("session %s: the store is unreachable; the id's earlier use is not checked", session_id)
            used = False
        if used:
            raise SessionError("ALREADY_EXISTS", f"session id {session_id} was used before; resume it with "
                               "resume_id and its resume_token, or choose a new id")
        self.resume_token = secrets.token_urlsafe(24)
        memory = SessionMemory(session_id=session_id, persona=options.persona,
                               resume_token_sha256=token_hash(self.resume_token))
        await self.store.save(memory)
        return memory

    async def _receive(self, iterator) -> None:
        """Take messages off the stream as they come, stamped with their arrival (the reader may lag behind while
        the turn model runs; latency figures count from arrival)."""
        try:
            async for message in iterator:
                await self.inbox.put((message, time.monotonic()))
        finally:
            await self.inbox.put(None)

    async def _read(self) -> None:
        try:
            while (item := await self._next_input()) is not None:
                if item == "idle":
                    await self._finish("idle")
                    return
                message, arrived = item
                which = message.WhichOneof("msg")
                if which == "audio":
                    await self._on_audio(message.audio, arrived)
                elif which == "video":
                    self._on_video(message.video)
                elif which == "playback":
                    self._on_playback(message.playback)
                elif which == "interrupt":
                    if self.turn is not None and not self.turn.cancelled and not self._done_playing(self.turn):
                        await self._cancel(self.turn, "client")
                elif which == "text":
                    await self._on_text(message.text)
                elif which == "end":
                    break
                else:
                    self._refuse("INVALID_ARGUMENT", "`config` may only come first")
                if self.bad_inputs > MAX_BAD_INPUTS:
                    self.out.put_nowait(SessionError("INVALID_ARGUMENT", f"over {MAX_BAD_INPUTS} invalid messages; "
                                                     "the session is closed"))
                    return
            await self._finish("end")
        except SessionError as exc:
            self.out.put_nowait(exc)
        except Exception as exc:  # a bug here must end this session, not the gateway
            log.exception("live session %s failed", self.session_id)
            self.out.put_nowait(SessionError("INTERNAL", f"the session failed: {exc}"))

    async def _next_input(self):
        """The next input, or "idle" once the client has sent nothing for the idle time by the wall clock while no
        turn of the agent is in flight or playing."""
        quiet_s = self.cfg.listening.idle_s + self.live.idle_wall_grace_s
        while True:
            try:
                return await asyncio.wait_for(self.inbox.get(), timeout=quiet_s)
            except TimeoutError:
                if not self.pending and (self.turn is None or self._done_playing(self.turn)):
                    return "idle"

    async def _finish(self, reason: str) -> None:
        """End after the current turn: its audio is still sent and played."""
        self._ending = True
        await self._drop_preempted(user_went_on=False)
        while self.turn is not None and self.turn.task is not None and not self.turn.task.done():
            await asyncio.shield(self.turn.task)  # and the turns queued behind it, which it starts
        self.out.put_nowait(agent_pb2.SessionEvent(ended=agent_pb2.SessionEnded(
            reason=reason, turns=self.turns, continued_turns=self.continued,
            preemptive_starts=self.preemptive_starts, preemptive_cancelled=self.preemptive_cancelled)))
        self.out.put_nowait(None)

    def _refuse(self, code: str, message: str) -> None:
        """A bad message: say why, drop it, keep the session."""
        self.bad_inputs += 1
        self.out.put_nowait(agent_pb2.SessionEvent(error=agent_pb2.TurnError(code=code, message=message,
                                                                             stage="session")))

    # ---- inputs ----

    async def _on_audio(self, pcm: bytes, arrived: float) -> None:
        try:
            events = await asyncio.to_thread(self.listener.feed, pcm)
        except ListeningInputError as exc:
            return self._refuse("INVALID_ARGUMENT", str(exc))
        now = time.monotonic()
        self._arrivals.append((self.listener.position_ms, arrived))
        if len(self._arrivals) > 20000:
            del self._arrivals[:10000]
        for event in events:
            await self._on_listening(event, now)
        await self._check_barge_in(now)
        self._draft_transcript()
        turn = self.turn
        if turn is not None and turn.turn_id != self._idle_from and self._done_playing(turn):
            self._idle_from = turn.turn_id
            self.listener.reset_idle()  # the user's silence while the agent spoke is not idleness
        return None

    def _draft_transcript(self) -> None:
        """ASR on the growing speech: a provisional transcript each `live.provisional_every_ms` more of it, while
        nothing of this session is being worked on (so that it never slows a turn down on a small machine)."""
        every, start_ms = self.live.provisional_every_ms, self.listener.turn_start_ms
        if (not every or start_ms is None or not self.listener.in_speech or self._draft_task is not None
                or self.preempted is not None or self.pending
                or (self.turn is not None and self.turn.task is not None and not self.turn.task.done())):
            return
        heard_ms = self.listener.turn_audio_ms
        last_start, last_heard = self._draft_for
        if heard_ms - (last_heard if last_start == start_ms else 0.0) < every:
            return
        self._draft_for = (start_ms, heard_ms)
        audio = np.clip(self.listener.turn_audio() * 32768.0, -32768, 32767).astype(np.int16)
        self._draft_task = asyncio.create_task(self._send_draft(start_ms, audio))

    async def _send_draft(self, start_ms: float, audio: np.ndarray) -> None:
        request = bus_pb2.TranscribeRequest(pcm16=audio.tobytes(), sample_rate=SAMPLE_RATE)
        try:
            reply = await self.gateway.bus.ask(TRANSCRIBE, request, bus_pb2.TranscribeReply,
                                               timeout_s=self.cfg.deadlines.perception_s)
        except Exception as exc:  # no perception replica, a timeout: the final transcript still comes
            log.debug("no provisional transcript: %s", exc)
            return
        finally:
            self._draft_task = None
        text = reply.transcript.text.strip()
        if not text or self._ending:
            return
        draft = agent_pb2.UserTranscript(text=text, language=reply.transcript.language, provisional=True,
                                         speech_start_ms=start_ms)
        if self.listener.turn_start_ms == start_ms:  # the speech goes on: no turn holds it yet
            self.out.put_nowait(agent_pb2.SessionEvent(transcript=draft))
            return
        # The speech became a turn while ASR ran: the draft is still worth showing until the final transcript.
        owner = next((t for t in (self.turn, self.preempted, *self.pending) if t is not None and t.audio is not None
                      and t.speech_start_ms <= start_ms <= t.speech_end_ms), None)
        if owner is not None and not owner.user_text and not owner.cancelled:
            draft.turn_id = owner.turn_id
            self._emit(owner, agent_pb2.SessionEvent(transcript=draft))

    def _on_video(self, frame: agent_pb2.VideoFrame) -> None:
        if not self.options.video:
            return self._refuse("FAILED_PRECONDITION", "a video frame came, but config.video said none would")
        if not frame.image:
            return self._refuse("INVALID_ARGUMENT", "an empty video frame")
        if len(frame.image) > self.live.max_video_frame_bytes:
            return self._refuse("INVALID_ARGUMENT", f"a video frame of {len(frame.image) / 1e6:.1f} MB is over the "
                                f"{self.live.max_video_frame_bytes / 1e6:.0f} MB limit")
        try:  # the header only: frames are decoded off the event loop, for a turn's clip (turn_clip)
            check_image(frame.image, self.cfg.limits.max_video_pixels)
        except MediaError as exc:
            return self._refuse("INVALID_ARGUMENT", str(exc))
        now = time.monotonic()
        while self._frame_times and now - self._frame_times[0] > 1.0:
            self._frame_times.popleft()
        if len(self._frame_times) >= self.live.max_video_fps:
            if len(self._frame_times) == int(self.live.max_video_fps):  # say it once per burst
                self._frame_times.append(now)
                return self._refuse("RESOURCE_EXHAUSTED", f"over {self.live.max_video_fps:.0f} video frames per "
                                    "second; extra frames are dropped")
            return None
        self._frame_times.append(now)
        if len(self.frames) == self.frames.maxlen and not self._frames_dropped:
            self._frames_dropped = True  # timestamps that do not advance: the oldest frames go, said once
            self._refuse("RESOURCE_EXHAUSTED", f"over {self.frames.maxlen} video frames held; the oldest are "
                         "dropped (do the frames' time_s advance?)")
        self.frames.append((frame.time_s, frame.image))
        horizon = frame.time_s - self.cfg.listening.max_turn_s - 10
        while self.frames and self.frames[0][0] < horizon:
            self.frames.popleft()
        return None

    def _on_playback(self, report: agent_pb2.PlaybackReport) -> None:
        turn = self.recent.get(report.turn_id)
        if turn is None:
            if not any(t.turn_id == report.turn_id for t in self.memory.turns):
                self._refuse("NOT_FOUND", f"a playback report for turn {report.turn_id!r}, which this session does "
                             "not have")
            return
        turn.report = (max(0.0, report.played_ms), time.monotonic())

    async def _on_text(self, text: str) -> None:
        if not text.strip():
            return self._refuse("INVALID_ARGUMENT", "an empty text message")
        await self._drop_preempted(user_went_on=True)
        if self.turn is not None and not self.turn.cancelled and not self._done_playing(self.turn):
            await self._cancel(self.turn, "client")
        self._start(LiveTurn(turn_id=new_turn_id(), trigger="text", text=text.strip(), decided_wall=time.monotonic()))
        return None

    # ---- turn-taking ----

    def _wall_at(self, audio_ms: float) -> float:
        """When the audio at this position on the session's clock arrived."""
        index = bisect.bisect_left(self._arrivals, (audio_ms, 0.0))
        if index >= len(self._arrivals):
            return self._arrivals[-1][1] if self._arrivals else time.monotonic()
        return self._arrivals[index][1]

    async def _on_listening(self, event: ListeningEvent, now: float) -> None:
        if event.kind == "speech_started":
            self._speech_started_ms = event.start_ms
            await self._drop_preempted(user_went_on=True)
            self.out.put_nowait(agent_pb2.SessionEvent(speech=agent_pb2.SpeechActivity(speaking=True,
                                                                                      at_ms=event.start_ms)))
        elif event.kind == "speech_stopped":
            self.out.put_nowait(agent_pb2.SessionEvent(speech=agent_pb2.SpeechActivity(speaking=False,
                                                                                      at_ms=event.end_ms)))
            self._preempt(event)
        elif event.kind == "turn_ended":
            if event.voiced_ms < self.cfg.listening.min_turn_speech_ms and event.reason != "max_turn":
                return await self._drop_preempted(user_went_on=False)  # a click or a cough: no turn
            preempted, self.preempted = self.preempted, None
            if preempted is not None and preempted.speech_end_ms == event.end_ms:
                return self._confirm(preempted, event, now)
            if preempted is not None:
                await self._cancel(preempted, "preempted", notify=False)
            if self.turn is not None and self.turn.audible(now) and event.voiced_ms < self._barge_in_ms:
                return  # a short sound over the agent (no barge-in): a backchannel, not a turn
            turn = self._spoken_turn(event.audio, event.audio_start_ms, event.start_ms, event.end_ms,
                                     trigger="max_turn" if event.reason == "max_turn" else "speech",
                                     decided_wall=now, decided_ms=event.at_ms)
            self.carry = None
            self._start(turn)
        elif event.kind == "idle" and (self.turn is None or self._done_playing(self.turn)) and not self._ending:
            await self._finish("idle")
        return None

    def _preempt(self, stop: SpeechStopped) -> None:
        """At a pause, start the turn's work before its end is decided (`live.preemptive`); its events are held."""
        mode = self.live.preemptive
        if (mode == "off" or self.preempted is not None or self.pending or self._ending
                or (mode == "complete"
                    and (stop.completion_probability or 0.0) < self.cfg.listening.turn_complete_threshold)
                or (self.turn is not None and not self._done_playing(self.turn))):
            return  # nothing to gain, or a turn is in flight or playing: this pause decides nothing yet
        audio, start_ms = self.listener.turn_audio(), self.listener.turn_start_ms
        if audio.size == 0 or start_ms is None:
            return
        turn = self._spoken_turn(audio, self.listener.position_ms - audio.size * 1000 / SAMPLE_RATE, start_ms,
                                 stop.end_ms, trigger="speech", preemptive=True, held=[])
        context, turn.history_turns = self.memory.context(self.live.history_turns, self.live.history_chars)
        self.preempted = turn
        self.preemptive_starts += 1
        turn.task = asyncio.create_task(self._run_turn(turn, context))

    def _confirm(self, turn: LiveTurn, ended: TurnEnded, now: float) -> None:
        """The preemptive turn's end is decided: announce it and send what it held."""
        if turn.trigger != "continued":
            turn.trigger = "max_turn" if ended.reason == "max_turn" else "speech"
        self.carry = None
        turn.decided_ms, turn.decided_wall = ended.at_ms, now
        self._register(turn)
        self.turn = turn
        self._announce(turn)
        held, turn.held = turn.held or [], None
        for event in held:
            self.out.put_nowait(event)
        if turn.done is not None:
            self._remember_done(turn)
        turn.task.add_done_callback(lambda _: self._next())

    def _spoken_turn(self, audio: np.ndarray, audio_start_ms: float, speech_start_ms: float, speech_end_ms: float,
                     **fields) -> LiveTurn:
        """A turn of the user's speech (16 kHz float audio from `audio_start_ms`), joined to a cancelled turn's
        words that the user went on from."""
        pcm = np.clip(audio * 32768.0, -32768, 32767).astype(np.int16)
        turn = LiveTurn(turn_id=new_turn_id(), speech_start_ms=speech_start_ms, speech_end_ms=speech_end_ms,
                        audio=pcm, audio_start_ms=audio_start_ms, speech_end_wall=self._wall_at(speech_end_ms),
                        **fields)
        self._join_carry(turn)
        return turn

    def _join_carry(self, turn: LiveTurn) -> None:
        """The user went on after a turn had started (it was cancelled): this turn holds both parts."""
        carried = self.carry
        if carried is not None and carried.audio is not None and turn.audio is not None:
            turn.trigger, turn.speech_start_ms = "continued", carried.speech_start_ms
            turn.audio_start_ms = carried.audio_start_ms
            turn.audio = np.concatenate([carried.audio, _CARRY_GAP, turn.audio])

    async def _drop_preempted(self, user_went_on: bool) -> None:
        turn, self.preempted = self.preempted, None
        if turn is not None:
            self.preemptive_cancelled += user_went_on
            await self._cancel(turn, "preempted", notify=False)

    async def _check_barge_in(self, now: float) -> None:
        turn = self.turn
        if turn is None or turn.cancelled or self._done_playing(turn):
            return
        if self.listener.speech_ms < self._barge_in_ms:
            return
        if turn.reply_ms == 0 and not turn.finished:
            if (turn.audio is None or turn.trigger == "max_turn"
                    or self._speech_started_ms - turn.decided_ms > self.live.continue_window_ms):
                return  # a new utterance while the agent thinks (or speech past max_turn): its own, later turn
            self.carry = turn
            self.continued += 1
            await self._cancel(turn, "continued")
        elif turn.audible(now):
            await self._cancel(turn, "barge_in", speech_started_ms=self._speech_started_ms)

    @property
    def _barge_in_ms(self) -> float:
        return self.live.echo_guard_barge_in_ms if self.options.echo_guard else self.live.barge_in_ms

    def _done_playing(self, turn: LiveTurn) -> bool:
        return turn.finished and not turn.audible(time.monotonic())

    def _register(self, turn: LiveTurn) -> None:
        self.turns += 1
        self.recent[turn.turn_id] = turn
        while len(self.recent) > 16:
            del self.recent[next(iter(self.recent))]

    def _start(self, turn: LiveTurn) -> None:
        """Run the turn now, or after the turn in flight (so replies come in order and each sees the last). Turns
        that come faster than the agent answers (audio sent faster than real time) wait in a bounded queue; past it
        a turn is dropped with an error, never queued without end."""
        if self.turn is not None and self.turn.task is not None and not self.turn.task.done():
            if len(self.pending) >= self.live.max_pending_turns:
                return self._refuse("RESOURCE_EXHAUSTED", f"{len(self.pending)} turns already wait for a reply; "
                                    "this one is dropped (is the audio sent faster than real time?)")
            self._register(turn)
            self.pending.append(turn)
            return None
        self._register(turn)
        self._run(turn)
        return None

    def _run(self, turn: LiveTurn) -> None:
        context, turn.history_turns = self.memory.context(self.live.history_turns, self.live.history_chars)
        self.turn = turn
        self._announce(turn)
        turn.task = asyncio.create_task(self._run_turn(turn, context))
        turn.task.add_done_callback(lambda _: self._next())

    def _announce(self, turn: LiveTurn) -> None:
        self.out.put_nowait(agent_pb2.SessionEvent(turn_started=agent_pb2.TurnStarted(
            turn_id=turn.turn_id, speech_start_ms=turn.speech_start_ms, speech_end_ms=turn.speech_end_ms,
            history_turns=turn.history_turns, trigger=turn.trigger, preemptive=turn.preemptive)))

    def _next(self) -> None:
        if self.pending and (self.turn is None or self.turn.task is None or self.turn.task.done()):
            self._run(self.pending.popleft())

    async def _cancel(self, turn: LiveTurn, reason: str, speech_started_ms: float | None = None,
                      notify: bool = True) -> None:
        """Stop a turn everywhere; no audio of it is sent after this returns."""
        now = time.monotonic()
        turn.cancelled = reason
        if turn.task is not None and not turn.task.done():
            turn.task.cancel()
        await self.gateway.bus.cancel_turn(turn.turn_id)
        heard = turn.heard_reply(now)
        if reason not in ("continued", "preempted"):
            self._remember(turn, heard, interrupted=True)
        if not notify:
            return
        self.out.put_nowait(agent_pb2.SessionEvent(interrupted=agent_pb2.Interrupted(
            turn_id=turn.turn_id, heard_reply=heard, reason=reason)))
        stop_ms = decided_ms = 0.0
        if speech_started_ms is not None:
            spoke = self._wall_at(speech_started_ms)
            decided_ms = max(0.0, (now - spoke) * 1000)
            stop_ms = max(0.0, (turn.last_audio_wall - spoke) * 1000) if turn.last_audio_wall else 0.0
        self._latency(turn, barge_in_stop_ms=stop_ms, barge_in_decided_ms=decided_ms)

    # ---- one turn ----

    async def _run_turn(self, turn: LiveTurn, context: str) -> None:
        with self.tracer.start_as_current_span("live.turn") as span:
            span.set_attribute("emoomni.session_id", self.session_id)
            span.set_attribute("emoomni.turn_id", turn.turn_id)
            try:
                await self._turn_events(turn, context)
            except asyncio.CancelledError:
                span.set_attribute("emoomni.interrupted", turn.cancelled or "cancelled")
                raise
            finally:
                turn.finished = True
            if not turn.cancelled:
                self._latency(turn)
                figures = self._figures(turn)
                for name in ("end_of_turn_ms", "ack_ms", "first_audio_ms", "voice_to_voice_ms"):
                    span.set_attribute(f"emoomni.live.{name}", getattr(figures, name))

    def _emit(self, turn: LiveTurn, event: agent_pb2.SessionEvent) -> None:
        """Send a turn's event, or keep it while the turn is preemptive and its end not decided."""
        if turn.held is not None:
            turn.held.append(event)
        else:
            self.out.put_nowait(event)

    async def _turn_events(self, turn: LiveTurn, context: str) -> None:
        def put(event: agent_pb2.SessionEvent) -> None:
            self._emit(turn, event)

        ack_task: asyncio.Task | None = None
        if turn.audio is None:
            events = self.gateway.run_text_turn(turn.turn_id, turn.text, self.options.language, context,
                                                self.options.talker)
            turn.user_text = turn.text
            put(agent_pb2.SessionEvent(transcript=agent_pb2.UserTranscript(turn_id=turn.turn_id, text=turn.text)))
        else:
            frames = [(t - turn.audio_start_ms / 1000, image) for t, image in self.frames
                      if turn.audio_start_ms / 1000 - 0.5 <= t <= turn.speech_end_ms / 1000 + 0.2]
            ack_task = asyncio.create_task(self._ack(turn))
            clip = await asyncio.to_thread(turn_clip, turn.audio, frames, self.live.frames_per_turn)
            request = agent_pb2.ConverseRequest(
                turn_id=turn.turn_id, context=context, talker=self.options.talker, face_optional=True,
                media=media_pb2.MediaInput(data=clip, filename=f"{turn.turn_id}.mkv", mime_type="video/x-matroska"))
            events = self.gateway.run_turn(request)
        try:
            async for event in events:
                which = event.WhichOneof("event")
                if which == "perception":
                    transcript = event.perception.transcript
                    turn.user_text = transcript.text
                    put(agent_pb2.SessionEvent(transcript=agent_pb2.UserTranscript(
                        turn_id=turn.turn_id, text=transcript.text, language=transcript.language)))
                elif which == "ecot_delta" and event.ecot_delta.part == reasoning_pb2.ECOT_PART_RESPONSE:
                    turn.response += event.ecot_delta.text
                elif which == "audio":
                    if ack_task is not None:
                        await ack_task  # the acknowledgement plays first
                    await self._pace(turn)
                    self._sent(turn, event.audio, reply=True)
                elif which == "done":
                    turn.done = event.done
                    turn.feeling = _feeling_of(event.done.ecot.emotion_analysis)
                    self._remember_done(turn)  # before the client sees `done`: its next turn must see this one
                put(agent_pb2.SessionEvent(turn=event))
        except (TurnFailed, MediaError) as exc:
            # The turn is lost, the session goes on. TurnFailed was already sent as the turn's error event.
            if not isinstance(exc, TurnFailed):
                put(agent_pb2.SessionEvent(turn=agent_pb2.TurnEvent(turn_id=turn.turn_id, error=agent_pb2.TurnError(
                    code="INVALID_ARGUMENT", message=str(exc), stage="gateway"))))
            return
        finally:
            if ack_task is not None and not ack_task.done():
                ack_task.cancel()
            with contextlib.suppress(Exception):
                await events.aclose()
        self._last_first_audio_ms = (turn.first_audio_wall - turn.decided_wall) * 1000 if turn.first_audio_wall else 0
        self._remember_done(turn)

    def _remember_done(self, turn: LiveTurn) -> None:
        """Remember an answered turn, unless its end is not decided yet (`_confirm` does it then): a preemptive
        turn that the user goes on over never happened."""
        if turn.held is None and turn.remembered is None:
            self._remember(turn, turn.response.strip(), interrupted=False)

    async def _ack(self, turn: LiveTurn) -> None:
        """Send the quick acknowledgement if one fits (see LiveConfig for when it is skipped)."""
        while turn.held is not None and not turn.cancelled:
            await asyncio.sleep(0.02)  # a preemptive turn: the ack belongs to the decided end of the turn
        speech_ms = turn.speech_end_ms - turn.speech_start_ms
        if (not self.live.ack or self.options.no_ack or speech_ms < self.live.ack_min_speech_ms
                or 0 < self._last_first_audio_ms < self.live.ack_skip_if_reply_within_ms
                or time.monotonic() - turn.decided_wall > 1.0):  # it waited behind another turn: too late
            return
        tone = await asyncio.to_thread(tone_of, turn.audio)
        last = self.memory.turns[-1].user if self.memory.turns else ""
        language = self.options.language or written_language(last)
        choices = [a for a in self.acks.get(self.options.talker, language, tone) if a.text != self._last_ack]
        if not choices or turn.cancelled:
            return
        ack = choices[self.turns % len(choices)]
        self._last_ack, turn.ack = ack.text, ack
        self._sent(turn, ack.audio, reply=False)
        self.out.put_nowait(agent_pb2.SessionEvent(ack=agent_pb2.QuickAck(
            turn_id=turn.turn_id, text=ack.text, tone=ack.tone, audio=ack.audio)))

    def _sent(self, turn: LiveTurn, chunk: media_pb2.AudioChunk, reply: bool) -> None:
        now = time.monotonic()
        ms = len(chunk.pcm16) / 2 / max(1, chunk.sample_rate) * 1000
        if not turn.play_origin:
            turn.play_origin = now
        if reply:
            turn.first_audio_wall = turn.first_audio_wall or now
            turn.reply_ms += ms
            turn.sentence_ms[chunk.sentence_index] = turn.sentence_ms.get(chunk.sentence_index, 0.0) + ms
        else:
            turn.ack_wall = now
        turn.sent_ms += ms
        turn.last_audio_wall = now

    async def _pace(self, turn: LiveTurn) -> None:
        """Hold reply audio until the client is within `audio_lead_ms` of needing it, and do not start the reply
        while the user is speaking (they took the floor while the agent was still thinking)."""
        while (turn.held is not None
               or turn.sent_ms - turn.played_ms(time.monotonic()) > self.live.audio_lead_ms
               or (turn.reply_ms == 0 and self.listener.in_speech)):
            await asyncio.sleep(0.02)

    def _remember(self, turn: LiveTurn, reply_heard: str, interrupted: bool) -> None:
        if not turn.user_text and turn.audio is not None:
            return  # nothing was understood (perception failed or the turn was cut before it)
        entry = RememberedTurn(turn_id=turn.turn_id, user=turn.user_text or turn.text, feeling=turn.feeling,
                               reply_heard=reply_heard, interrupted=interrupted)
        if turn.remembered is not None and turn.remembered in self.memory.turns:
            self.memory.turns[self.memory.turns.index(turn.remembered)] = entry
        else:
            self.memory.add(entry)
        turn.remembered = entry
        asyncio.get_running_loop().create_task(self.store.save(self.memory.model_copy(deep=True)))

    def _figures(self, turn: LiveTurn, barge_in_stop_ms: float = 0.0,
                 barge_in_decided_ms: float = 0.0) -> agent_pb2.TurnLatency:
        def since(mark: float, origin: float) -> float:
            return max(0.0, (mark - origin) * 1000) if mark and origin else 0.0

        end_of_turn = max(0.0, turn.decided_ms - turn.speech_end_ms) if turn.audio is not None else 0.0
        return agent_pb2.TurnLatency(
            turn_id=turn.turn_id, end_of_turn_ms=end_of_turn, ack_ms=since(turn.ack_wall, turn.speech_end_wall),
            first_audio_ms=since(turn.first_audio_wall, turn.decided_wall),
            voice_to_voice_ms=since(turn.first_audio_wall, turn.speech_end_wall), barge_in_stop_ms=barge_in_stop_ms,
            barge_in_decided_ms=barge_in_decided_ms)

    def _latency(self, turn: LiveTurn, barge_in_stop_ms: float = 0.0, barge_in_decided_ms: float = 0.0) -> None:
        self._emit(turn, agent_pb2.SessionEvent(latency=self._figures(turn, barge_in_stop_ms, barge_in_decided_ms)))


class LiveSessions:
    """The live sessions of one gateway replica: their store, acknowledgements and ids in use."""

    def __init__(self, cfg: StackConfig, gateway: GatewayCore, models: ListeningModels | None = None):
        self.cfg, self.gateway = cfg, gateway
        self.store = SessionStore(gateway.bus, cfg.live.store_bucket, cfg.live.store_ttl_s)
        self.locks = SessionLocks(gateway.bus, cfg.live.lock_bucket, cfg.live.lock_ttl_s,
                                  holder=f"{socket.gethostname()}:{os.getpid()}")
        self.acks = AckBank(gateway.bus)
        self.active: dict[str, LiveSession] = {}
        self.by_caller: Counter[str] = Counter()
        self.models = models

    def load(self) -> None:
        """Load the listening models (once per gateway; a gateway that never holds a session may skip it)."""
        if self.models is None:
            self.models = load_models()

    async def run(self, inputs: AsyncIterator[agent_pb2.SessionInput], caller: str = ""
                  ) -> AsyncIterator[agent_pb2.SessionEvent]:
        """A new session over `inputs`; raises SessionError for what ends it with a status. `caller` (a network
        address) may hold at most `live.max_sessions_per_caller` sessions at once."""
        if caller and self.by_caller[caller] >= self.cfg.live.max_sessions_per_caller:
            wait_s = self.cfg.listening.idle_s + self.cfg.live.idle_wall_grace_s
            raise SessionError("RESOURCE_EXHAUSTED", f"you hold {self.cfg.live.max_sessions_per_caller} live sessions "
                               f"already (the per-caller limit); end one, or try again in {wait_s:.0f} s (a silent "
                               "session is ended by then)")
        if self.models is None:
            await asyncio.to_thread(self.load)
        session = LiveSession(self.cfg, self.gateway, self.store, self.locks, self.acks, self.active, self.models)
        self.by_caller[caller] += 1
        try:
            async for event in session.run(inputs):
                yield event
        finally:
            self.by_caller[caller] -= 1
            if self.by_caller[caller] <= 0:
                del self.by_caller[caller]



def _feeling_of(analysis: str) -> str:
    """The main feeling of an emotion analysis's reading ("sad" of "sad and lonely"), as the memory keeps it (and the
    tuned brain's corpus renders earlier turns); the first sentence
    when there is none (the analysis opens with the measured cues, which the memory holds already)."""
    found = re.search(r"the user seems ([^,.\n]+)", analysis)
    return found.group(1).split(" and ")[0].strip()[:40] if found else _first_sentence(analysis)


def _first_sentence(text: str) -> str:
    sentences = SentenceSplitter().feed(text.strip() + "\n")
    return (sentences[0] if sentences else text).strip()[:200]

