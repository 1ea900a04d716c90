"""Who has the floor in a live session: a pure state machine over the audio clock.

The session feeds it what happened (the listener's events, text, a client interrupt, playback reports, a reply's
work ending) and does what it answers (`Decision`s): start a reply's work, announce a preemptive one, cancel one
with a reason, refuse an input, finish. No asyncio, no bus, no models: tests/test_floor.py plays whole
conversations through it in milliseconds. Wall times (`now`, seconds) come in as arguments.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from emoomni.services.gateway.listening import SpeechStarted, SpeechStopped, TurnEnded
from emoomni.services.gateway.live.policy import Policies
from emoomni.services.gateway.live.reply import Reply, UserTurn

RECENT_REPLIES = 16  # replies kept for late playback reports


@dataclass(frozen=True)
class _OfReply:
    reply: Reply


class Run(_OfReply):
    """Announce the reply's turn and start its work (preemptive work that was confirmed arrives as `Confirm`)."""


class StartPreemptive(_OfReply):
    """Start the work of a turn whose end is not decided; hold everything it would send."""


class Confirm(_OfReply):
    """The preemptive reply's turn did end: announce it and send what it held."""


@dataclass(frozen=True)
class Cancel:
    """Stop the reply everywhere. `notify`: tell the client (a preemptive or continued reply goes unseen)."""

    reply: Reply
    reason: str  # "barge_in", "continued", "client", "preempted"
    notify: bool = True
    speech_started_ms: float | None = None  # where the user's barge-in speech began


@dataclass(frozen=True)
class Refuse:
    code: str
    message: str


@dataclass(frozen=True)
class Finish:
    reason: str


@dataclass(frozen=True)
class ResetIdle:
    """The agent finished speaking: the user's silence while it spoke was not idleness."""


Decision = Run | StartPreemptive | Confirm | Cancel | Refuse | Finish | ResetIdle


@dataclass
class FloorCounts:
    turns: int = 0
    continued: int = 0
    preemptive_starts: int = 0
    preemptive_cancelled: int = 0


@dataclass
class Floor:
    """The session's turn-taking state: the reply that holds the floor, one preemptive reply, the queue."""

    policies: Policies
    new_id: Callable[[], str]
    current: Reply | None = None  # the reply in flight or playing (or the last one)
    preempted: Reply | None = None  # started at a pause, its turn's end not decided yet
    pending: deque[Reply] = field(default_factory=deque)  # decided while another was in flight
    carry: UserTurn | None = None  # a turn the user went on from: the next one holds both
    recent: dict[str, Reply] = field(default_factory=dict)
    user_speaking: bool = False
    speech_started_ms: float = 0.0
    ending: bool = False
    counts: FloorCounts = field(default_factory=FloorCounts)
    _idle_from: str = ""

    # ---- what the session asks ----

    def free(self, now: float) -> bool:
        """No reply in flight or still playing."""
        return self.current is None or self.current.done_playing(now)

    def quiet(self, now: float) -> bool:
        """Nothing of the agent's is under way: the client's silence may count as idleness."""
        return not self.pending and self.free(now)

    def busy(self) -> bool:
        """Some reply is being worked on (provisional transcripts wait, so as not to slow it)."""
        return (self.preempted is not None or bool(self.pending)
                or (self.current is not None and not self.current.finished))

    def speaking_reply(self, now: float) -> Reply | None:
        current = self.current
        return current if current is not None and not current.cancelled and not current.done_playing(now) else None

    def owner_of(self, speech_ms: float) -> Reply | None:
        """The spoken turn (decided or preemptive) whose speech holds this position."""
        for reply in (self.current, self.preempted, *self.pending):
            user = None if reply is None else reply.user
            if user is not None and user.spoken and user.speech_start_ms <= speech_ms <= user.speech_end_ms:
                return reply
        return None

    # ---- what happened ----

    def speech_started(self, started: SpeechStarted) -> list[Decision]:
        self.user_speaking, self.speech_started_ms = True, started.start_ms
        return self._drop_preempted(user_went_on=True)

    def speech_stopped(self, stopped: SpeechStopped, now: float, heard: Callable[[], UserTurn | None]
                       ) -> list[Decision]:
        """A pause: maybe start the turn's work before its end is decided. `heard()` gives the turn so far."""
        self.user_speaking = False
        if (self.preempted is not None or self.pending or self.ending or not self.free(now)
                or not self.policies.preemption.starts_at(stopped)):
            return []  # nothing to gain, or the agent is busy: this pause decides nothing yet
        user = heard()
        if user is None:
            return []
        reply = Reply(self.new_id(), user.joined_to(self.carry), decided=False, preemptive=True)
        self.preempted = reply
        self.counts.preemptive_starts += 1
        return [StartPreemptive(reply)]

    def turn_ended(self, ended: TurnEnded, now: float, spoken: Callable[[], UserTurn]) -> list[Decision]:
        """The listener decided the user's turn is over. `spoken()` gives its audio as a user turn."""
        if self.policies.too_short.drops(ended):
            return self._drop_preempted(user_went_on=False)
        preempted, self.preempted = self.preempted, None
        if preempted is not None and preempted.user.speech_end_ms == ended.end_ms:
            return self._confirm(preempted, ended, now)
        decisions: list[Decision] = [self._cancel(preempted, "preempted", notify=False)] if preempted else []
        if self.current is not None and self.policies.backchannel.ignores(ended, self.current.audible(now)):
            return decisions  # "mm-hm" over the agent: not a turn
        user = spoken()
        user.trigger = "max_turn" if ended.reason == "max_turn" else "speech"
        user.decided_ms, user.decided_wall = ended.at_ms, now
        user.joined_to(self.carry)
        self.carry = None
        return decisions + self._start(Reply(self.new_id(), user))

    def speech_heard(self, speech_ms: float, now: float) -> list[Decision]:
        """After each piece of audio: the user's current speech is `speech_ms` long. A barge-in, or the user going
        on before any reply audio."""
        decisions: list[Decision] = []
        reply = self.speaking_reply(now)
        if reply is not None and self.policies.barge_in.interrupts(speech_ms):
            if reply.playout.reply_ms == 0 and not reply.finished:
                if self.policies.continuation.user_went_on(reply, self.speech_started_ms):
                    self.carry = reply.user
                    self.counts.continued += 1
                    decisions.append(self._cancel(reply, "continued"))
            elif reply.audible(now):
                decisions.append(self._cancel(reply, "barge_in", speech_started_ms=self.speech_started_ms))
        current = self.current
        if current is not None and current.turn_id != self._idle_from and current.done_playing(now):
            self._idle_from = current.turn_id
            decisions.append(ResetIdle())
        return decisions

    def text(self, text: str, now: float) -> list[Decision]:
        """A typed message: it takes the floor at once."""
        decisions = self._drop_preempted(user_went_on=True) + self.interrupt(now)
        return decisions + self._start(Reply(self.new_id(), UserTurn(trigger="text", text=text, decided_wall=now)))

    def interrupt(self, now: float) -> list[Decision]:
        """The client stopped the agent (or typed over it)."""
        reply = self.speaking_reply(now)
        return [self._cancel(reply, "client")] if reply is not None else []

    def idle(self, now: float) -> list[Decision]:
        """The listener heard nothing for `idle_s`."""
        return [Finish("idle")] if self.free(now) and not self.ending else []

    def playback(self, turn_id: str, played_ms: float, now: float) -> bool:
        """The client's playback report; False when no recent reply has that id."""
        reply = self.recent.get(turn_id)
        if reply is None:
            return False
        reply.playout.report = (max(0.0, played_ms), now)
        return True

    def finish(self) -> list[Decision]:
        """The session ends after the reply in flight (and those queued behind it)."""
        self.ending = True
        return self._drop_preempted(user_went_on=False)

    def client_gone(self) -> list[Decision]:
        """The client left: nothing queued runs, and the reply at work stops, unseen."""
        self.pending.clear()
        decisions = self.finish()
        current = self.current
        if current is not None and not current.finished:
            decisions.append(self._cancel(current, "client", notify=False))
        return decisions

    def work_ended(self, reply: Reply) -> list[Decision]:
        """A reply's work on the stack ended (done, failed or cancelled): the next queued one may start."""
        reply.work_done = True
        if self.pending and (self.current is None or self.current.finished):
            return self._run(self.pending.popleft())
        return []

    # ---- rules ----

    def _start(self, reply: Reply) -> list[Decision]:
        """Run now, or after the reply in flight (so replies come in order and each sees the last); the queue is
        bounded (audio sent faster than real time), past it the turn is refused."""
        if self.current is not None and not self.current.finished:
            if len(self.pending) >= self.policies.max_pending:
                return [Refuse("RESOURCE_EXHAUSTED", f"{len(self.pending)} turns already wait for a reply; this one "
                               "is dropped (is the audio sent faster than real time?)")]
            self._register(reply)
            self.pending.append(reply)
            return []
        self._register(reply)
        return self._run(reply)

    def _run(self, reply: Reply) -> list[Decision]:
        self.current = reply
        return [Run(reply)]

    def _confirm(self, reply: Reply, ended: TurnEnded, now: float) -> list[Decision]:
        user = reply.user
        if user.trigger != "continued":
            user.trigger = "max_turn" if ended.reason == "max_turn" else "speech"
        user.decided_ms, user.decided_wall = ended.at_ms, now
        reply.decided = True
        self.carry = None
        self._register(reply)
        self.current = reply
        return [Confirm(reply)]

    def _register(self, reply: Reply) -> None:
        self.counts.turns += 1
        self.recent[reply.turn_id] = reply
        while len(self.recent) > RECENT_REPLIES:
            del self.recent[next(iter(self.recent))]

    def _cancel(self, reply: Reply, reason: str, notify: bool = True,
                speech_started_ms: float | None = None) -> Cancel:
        reply.cancelled = reason
        return Cancel(reply, reason, notify, speech_started_ms)

    def _drop_preempted(self, user_went_on: bool) -> list[Decision]:
        reply, self.preempted = self.preempted, None
        if reply is None:
            return []
        self.counts.preemptive_cancelled += user_went_on
        return [self._cancel(reply, "preempted", notify=False)]
