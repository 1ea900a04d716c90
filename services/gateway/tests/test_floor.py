"""The floor's turn-taking, played as scripted conversations on a millisecond clock: no NATS, no models, no
asyncio. Each test is one scenario a live user meets; together they cover every policy in policy.py."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from emoomni.core.config import ListeningConfig, LiveConfig
from emoomni.services.gateway.listening import SpeechStarted, SpeechStopped, TurnEnded
from emoomni.services.gateway.live.floor import Cancel, Confirm, Finish, Floor, Refuse, Run
from emoomni.services.gateway.live.policy import Policies
from emoomni.services.gateway.live.reply import Reply, ReplyState, UserTurn


class Script:
    """Drives a floor with the events a listener would give for the scripted speech. Audio clock and wall clock
    are one clock here (ms; the floor's wall times are seconds)."""

    def __init__(self, echo_guard: bool = False, **live):
        self.listening = ListeningConfig()
        self.floor = Floor(Policies.of(LiveConfig(**live), self.listening, echo_guard),
                           new_id=map("t{}".format, itertools.count(1)).__next__)
        self.decisions: list = []
        self.speech_start = 0.0

    def now(self, ms: float) -> float:
        return ms / 1000

    def _take(self, decisions: list) -> list:
        self.decisions += decisions
        return decisions

    def speaks(self, start_ms: float, end_ms: float, completion: float | None = 0.9, step_ms: float = 20) -> list:
        """Speech from start to end: started, heard every step, stopped (with the turn model's verdict)."""
        self.speech_start = start_ms
        out = self._take(self.floor.speech_started(SpeechStarted(at_ms=start_ms, start_ms=start_ms, new_turn=True)))
        for ms in np.arange(start_ms, end_ms + step_ms, step_ms):
            out += self.hear(min(ms, end_ms) - start_ms, at_ms=min(ms, end_ms))
        stopped = SpeechStopped(at_ms=end_ms + 200, start_ms=start_ms, end_ms=end_ms, voiced_ms=end_ms - start_ms,
                                completion_probability=completion)
        out += self._take(self.floor.speech_stopped(stopped, self.now(end_ms + 200),
                                                    lambda: self.user_turn(start_ms, end_ms)))
        return out

    def hear(self, speech_ms: float, at_ms: float) -> list:
        return self._take(self.floor.speech_heard(speech_ms, self.now(at_ms)))

    def turn_ends(self, at_ms: float, start_ms: float, end_ms: float, reason: str = "complete") -> list:
        ended = TurnEnded(at_ms=at_ms, start_ms=start_ms, end_ms=end_ms, reason=reason, completion_probability=0.9,
                          voiced_ms=end_ms - start_ms, audio_start_ms=start_ms - 300, audio=np.zeros(0))
        return self._take(self.floor.turn_ended(ended, self.now(at_ms), lambda: self.user_turn(start_ms, end_ms)))

    def user_turn(self, start_ms: float, end_ms: float) -> UserTurn:
        samples = int((end_ms - start_ms + 300) * 16)
        return UserTurn(trigger="speech", speech_start_ms=start_ms, speech_end_ms=end_ms,
                        audio=np.ones(samples, dtype=np.int16), audio_start_ms=start_ms - 300)

    def say(self, start_ms: float, end_ms: float, decided_ms: float | None = None) -> Reply:
        """A whole user turn, decided `endpoint_delay_ms` after it stops; returns the reply it started."""
        self.speaks(start_ms, end_ms)
        decided = self.turn_ends(decided_ms or end_ms + self.listening.endpoint_delay_ms, start_ms, end_ms)
        return next(d.reply for d in decided if isinstance(d, Run | Confirm))

    @staticmethod
    def agent_sends(reply: Reply, at_ms: float, ms: float, sentence: int | None = 0) -> None:
        reply.playout.sent(ms, at_ms / 1000, sentence)


def kinds(decisions: list) -> list[str]:
    return [type(d).__name__ + (f":{d.reason}" if isinstance(d, Cancel) else "") for d in decisions]


def test_a_turn_starts_its_reply_and_the_reply_moves_through_its_states():
    talk = Script(preemptive="off")
    reply = talk.say(0, 1500)
    assert kinds(talk.decisions) == ["Run"]
    assert reply.state is ReplyState.ANNOUNCED and reply.user.trigger == "speech"
    assert reply.user.decided_ms == 1500 + talk.listening.endpoint_delay_ms
    talk.agent_sends(reply, 3000, 1000)
    assert reply.state is ReplyState.PLAYING
    assert talk.floor.work_ended(reply) == [] and reply.state is ReplyState.DONE
    assert not talk.floor.free(3.5)  # still playing
    assert talk.floor.free(4.1)


def test_speech_over_the_playing_reply_barges_in_where_it_began():
    talk = Script(preemptive="off")
    reply = talk.say(0, 1500)
    talk.agent_sends(reply, 3000, 2000)
    talk.decisions.clear()
    out = talk.speaks(3500, 4000)
    barge = [d for d in out if isinstance(d, Cancel)]
    assert kinds(barge) == ["Cancel:barge_in"] and barge[0].speech_started_ms == 3500 and barge[0].notify
    assert reply.state is ReplyState.CANCELLED
    again = Script(preemptive="off")
    reply = again.say(0, 1500)
    again.agent_sends(reply, 3000, 2000)
    again.floor.speech_started(SpeechStarted(at_ms=3500, start_ms=3500, new_turn=True))
    assert again.hear(280, at_ms=3780) == []  # under barge_in_ms: the agent goes on
    # cut at once, and the agent's silence from there on is not the user's idleness
    assert kinds(again.hear(300, at_ms=3800)) == ["Cancel:barge_in", "ResetIdle"]


def test_a_short_noise_over_the_agent_neither_interrupts_nor_becomes_a_turn():
    talk = Script(preemptive="off")
    reply = talk.say(0, 1500)
    talk.agent_sends(reply, 3000, 3000)
    talk.decisions.clear()
    talk.speaks(3500, 3700)  # 200 ms "mm-hm", under barge_in_ms
    talk.turn_ends(3700 + 500, 3500, 3700)
    assert talk.decisions == [] and not reply.cancelled and talk.floor.current is reply


def test_the_echo_guard_needs_longer_speech_to_interrupt():
    talk = Script(echo_guard=True, preemptive="off")
    reply = talk.say(0, 1500)
    talk.agent_sends(reply, 3000, 5000)
    talk.speaks(3500, 4100)  # 600 ms: over barge_in_ms (300), under echo_guard_barge_in_ms (900)
    assert not reply.cancelled
    talk.speaks(4500, 5500)
    assert reply.cancelled == "barge_in"


def test_a_sound_too_short_for_a_turn_is_dropped():
    talk = Script(preemptive="off")
    talk.speaks(0, 100)
    assert talk.turn_ends(600, 0, 100) == []
    assert talk.turn_ends(30000, 0, 100, reason="max_turn")  # a turn cut at max_turn always counts


def test_going_on_after_a_pause_drops_the_preemptive_reply_unseen():
    talk = Script(preemptive="complete")
    out = talk.speaks(0, 1500, completion=0.9)
    assert kinds(out) == ["StartPreemptive"]
    early = out[0].reply
    assert early.state is ReplyState.PREEMPTIVE and talk.floor.busy()
    out = talk.speaks(1900, 2600)  # the user goes on before the end was decided
    assert kinds(out)[0] == "Cancel:preempted" and not out[0].notify
    assert talk.floor.counts.preemptive_cancelled == 1 and early.state is ReplyState.CANCELLED


def test_a_preemptive_reply_is_confirmed_when_the_turn_ends_at_its_pause():
    talk = Script(preemptive="complete")
    early = talk.speaks(0, 1500)[0].reply
    early.held.append("transcript")
    out = talk.turn_ends(1500 + talk.listening.endpoint_delay_ms, 0, 1500)
    assert kinds(out) == ["Confirm"] and out[0].reply is early
    assert early.decided and early.preemptive and early.state is ReplyState.ANNOUNCED
    assert talk.floor.counts.turns == 1 and talk.floor.current is early


def test_an_incomplete_pause_starts_no_work_unless_preemption_is_always():
    assert Script(preemptive="complete").speaks(0, 1500, completion=0.2) == []
    assert Script(preemptive="off").speaks(0, 1500, completion=0.99) == []
    assert kinds(Script(preemptive="always").speaks(0, 1500, completion=0.2)) == ["StartPreemptive"]


def test_going_on_soon_after_the_turn_was_decided_joins_both_parts():
    talk = Script(preemptive="off")
    first = talk.say(0, 1500)  # decided at 2000; no reply audio yet
    out = talk.speaks(2500, 3500)
    assert "Cancel:continued" in kinds(out) and talk.floor.counts.continued == 1
    second = talk.turn_ends(4000, 2500, 3500)[0].reply
    assert second.user.trigger == "continued" and second.user.speech_start_ms == first.user.speech_start_ms
    assert second.user.audio.size > first.user.audio.size  # both parts and the gap between them


def test_speech_long_after_the_turn_was_decided_waits_its_own_turn():
    talk = Script(preemptive="off")
    first = talk.say(0, 1500)  # decided at 2000
    talk.speaks(5000, 6000)  # 3 s later, over continue_window_ms, the agent still thinking
    assert not first.cancelled
    assert talk.turn_ends(6500, 5000, 6000) == [] and len(talk.floor.pending) == 1  # queued behind the first
    assert kinds(talk.floor.work_ended(first)) == ["Run"] and talk.floor.current.user.speech_start_ms == 5000


def test_the_queue_of_waiting_turns_is_bounded():
    talk = Script(preemptive="off", max_pending_turns=2)
    talk.say(0, 1000)
    for start in (6000, 12000):
        talk.speaks(start, start + 1000)
        assert talk.turn_ends(start + 1500, start, start + 1000) == []
    talk.speaks(18000, 19000)
    refused = talk.turn_ends(19500, 18000, 19000)
    assert [d.code for d in refused if isinstance(d, Refuse)] == ["RESOURCE_EXHAUSTED"]


def test_text_during_speech_drops_the_early_work_and_cuts_the_agent():
    talk = Script(preemptive="complete")
    early = talk.speaks(0, 1500)[0].reply
    out = talk.floor.text("actually, never mind", now=1.7)
    assert kinds(out) == ["Cancel:preempted", "Run"] and early.cancelled
    typed = out[-1].reply
    assert typed.user.trigger == "text" and not typed.user.spoken
    talk.agent_sends(typed, 2500, 3000)
    out = talk.floor.text("stop, another question", now=3.0)
    assert kinds(out) == ["Cancel:client", "Run"]


def test_the_client_interrupts_only_what_is_still_playing():
    talk = Script(preemptive="off")
    reply = talk.say(0, 1500)
    talk.agent_sends(reply, 2500, 1000)
    talk.floor.work_ended(reply)
    assert kinds(talk.floor.interrupt(now=3.0)) == ["Cancel:client"]
    assert talk.floor.interrupt(now=3.1) == []  # nothing left to stop


def test_playback_cut_mid_sentence_keeps_what_was_heard():
    talk = Script(preemptive="off")
    reply = talk.say(0, 1500)
    reply.text = "Take a slow breath with me. Then tell me what the doctor said about it."
    talk.agent_sends(reply, 2000, 400, sentence=None)  # the acknowledgement
    talk.agent_sends(reply, 2400, 2000, sentence=0)
    talk.agent_sends(reply, 4400, 3000, sentence=1)
    assert talk.floor.playback(reply.turn_id, 400 + 2000 + 1500, now=6.0)
    heard = reply.heard(6.0)
    assert heard.startswith("Take a slow breath with me.") and "Then tell me" in heard
    assert "about it." not in heard
    assert not talk.floor.playback("someone-else", 10, now=6.0)


def test_idle_ends_only_a_quiet_session_and_the_agent_speaking_restarts_the_count():
    talk = Script(preemptive="off")
    reply = talk.say(0, 1500)
    talk.agent_sends(reply, 2500, 1000)
    assert talk.floor.idle(now=3.0) == [] and not talk.floor.quiet(3.0)
    talk.floor.work_ended(reply)
    assert kinds(talk.hear(0, at_ms=4000)) == ["ResetIdle"]  # once, after the reply played
    assert talk.hear(0, at_ms=4100) == []
    assert talk.floor.idle(now=40.0) == [Finish("idle")]
    assert talk.floor.finish() == [] and talk.floor.idle(now=41.0) == []


@pytest.mark.parametrize("user_speaking", [False, True])
def test_reply_audio_waits_for_the_decision_the_listener_and_the_playback(user_speaking):
    talk = Script(preemptive="complete")
    early = talk.speaks(0, 1500)[0].reply
    assert early.send_wait_s(now=1.8, lead_ms=500, user_speaking=False) is None  # not decided: hold it
    talk.turn_ends(2000, 0, 1500)
    wait = early.send_wait_s(now=2.1, lead_ms=500, user_speaking=user_speaking)
    assert wait == (None if user_speaking else 0.0)  # no reply starts over the user
    talk.agent_sends(early, 2100, 1500)
    assert early.send_wait_s(now=2.1, lead_ms=500, user_speaking=True) == pytest.approx(1.0)  # then by the clock
    assert early.send_wait_s(now=3.1, lead_ms=500, user_speaking=True) == 0.0


def test_a_client_that_leaves_stops_the_reply_at_work_unseen():
    talk = Script(preemptive="off")
    reply = talk.say(0, 1500)
    talk.speaks(6000, 7000)
    talk.turn_ends(7500, 6000, 7000)
    out = talk.floor.client_gone()
    assert kinds(out) == ["Cancel:client"] and not out[0].notify and not talk.floor.pending
    assert reply.cancelled == "client"
