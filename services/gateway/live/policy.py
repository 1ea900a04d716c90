"""The floor's turn-taking rules, one small class each, read from the live config. Pure: no I/O, no clocks.

Each answers one question the floor asks at one moment; docs/live.md says what each setting does to a user.
"""

from __future__ import annotations

from dataclasses import dataclass

from emoomni.core.config import ListeningConfig, LiveConfig
from emoomni.services.gateway.listening import SpeechStopped, TurnEnded
from emoomni.services.gateway.live.reply import Reply


@dataclass(frozen=True)
class BargeIn:
    """Speech over the agent that lasts `barge_in_ms` (longer with the echo guard) interrupts it."""

    min_speech_ms: float

    @classmethod
    def of(cls, live: LiveConfig, echo_guard: bool) -> BargeIn:
        return cls(live.echo_guard_barge_in_ms if echo_guard else live.barge_in_ms)

    def interrupts(self, speech_ms: float) -> bool:
        return speech_ms >= self.min_speech_ms


@dataclass(frozen=True)
class Backchannel:
    """A short turn ("mm-hm", a cough) heard while the agent speaks is not a turn of its own."""

    barge_in: BargeIn

    def ignores(self, ended: TurnEnded, agent_audible: bool) -> bool:
        return agent_audible and ended.voiced_ms < self.barge_in.min_speech_ms


@dataclass(frozen=True)
class TooShort:
    """A click or a cough that the listener closed as a turn is no turn (a turn cut at max_turn always is one)."""

    min_speech_ms: float

    def drops(self, ended: TurnEnded) -> bool:
        return ended.voiced_ms < self.min_speech_ms and ended.reason != "max_turn"


@dataclass(frozen=True)
class Continuation:
    """Speech that starts within `continue_window_ms` of a decided spoken turn, before any reply audio, is the
    user going on: the reply is cancelled and the next turn holds both parts. Later speech is its own turn."""

    window_ms: float

    def user_went_on(self, reply: Reply, speech_started_ms: float) -> bool:
        user = reply.user
        return (user.spoken and user.trigger != "max_turn"
                and speech_started_ms - user.decided_ms <= self.window_ms)


@dataclass(frozen=True)
class Preemption:
    """At a pause, start the turn's work before its end is decided: "off", "complete" (only when the turn model
    judged the turn complete) or "always"."""

    mode: str
    complete_threshold: float

    @classmethod
    def of(cls, live: LiveConfig, listening: ListeningConfig) -> Preemption:
        return cls(live.preemptive, listening.turn_complete_threshold)

    def starts_at(self, stopped: SpeechStopped) -> bool:
        if self.mode == "off":
            return False
        return self.mode == "always" or (stopped.completion_probability or 0.0) >= self.complete_threshold


@dataclass(frozen=True)
class Policies:
    """Every rule the floor follows, built once per session."""

    barge_in: BargeIn
    backchannel: Backchannel
    too_short: TooShort
    continuation: Continuation
    preemption: Preemption
    max_pending: int

    @classmethod
    def of(cls, live: LiveConfig, listening: ListeningConfig, echo_guard: bool = False) -> Policies:
        barge_in = BargeIn.of(live, echo_guard)
        return cls(barge_in=barge_in, backchannel=Backchannel(barge_in),
                   too_short=TooShort(listening.min_turn_speech_ms), continuation=Continuation(live.continue_window_ms),
                   preemption=Preemption.of(live, listening), max_pending=live.max_pending_turns)
