"""The user's turn and the agent's reply to it, as plain data: no asyncio, no bus.

A reply moves preemptive -> announced -> playing -> done, or to cancelled from any of them. Its playout record
says how much audio was sent and how much the client has played, so the session knows what the user heard when
they cut in, and when to send the next chunk.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emoomni.core.text import SentenceSplitter

SAMPLE_RATE = 16000
_CARRY_GAP = np.zeros(SAMPLE_RATE * 3 // 10, dtype=np.int16)  # between the parts of a continued turn


@dataclass
class UserTurn:
    """What the user said or typed, and where it sits on the session's audio clock (ms) and the wall clock (s)."""

    trigger: str  # "speech", "max_turn", "continued" (joined to a turn they went on from) or "text"
    speech_start_ms: float = 0.0
    speech_end_ms: float = 0.0
    decided_ms: float = 0.0  # where the turn's end was decided
    audio: np.ndarray | None = None  # int16 at 16 kHz from `audio_start_ms`; None for a typed turn
    audio_start_ms: float = 0.0
    text: str = ""  # typed, or the transcript once perception heard it
    speech_end_wall: float = 0.0
    decided_wall: float = 0.0

    @classmethod
    def spoken_between(cls, audio: np.ndarray, audio_start_ms: float, start_ms: float, end_ms: float,
                       end_wall: float) -> UserTurn:
        """A turn of speech from the listener's 16 kHz float audio (which begins at `audio_start_ms`)."""
        pcm = np.clip(audio * 32768.0, -32768, 32767).astype(np.int16)
        return cls(trigger="speech", speech_start_ms=start_ms, speech_end_ms=end_ms, audio=pcm,
                   audio_start_ms=audio_start_ms, speech_end_wall=end_wall)

    @property
    def spoken(self) -> bool:
        return self.audio is not None

    def joined_to(self, earlier: UserTurn | None) -> UserTurn:
        """This turn holding also the words of a turn the user went on from (cancelled before any reply)."""
        if earlier is None or earlier.audio is None or self.audio is None:
            return self
        self.trigger, self.speech_start_ms = "continued", earlier.speech_start_ms
        self.audio_start_ms = earlier.audio_start_ms
        self.audio = np.concatenate([earlier.audio, _CARRY_GAP, self.audio])
        return self


@dataclass
class Playout:
    """Audio sent for a reply (the acknowledgement included) and the client's playback of it."""

    sent_ms: float = 0.0
    reply_ms: float = 0.0  # of which the reply itself (not the acknowledgement)
    ack_ms: float = 0.0
    sentence_ms: dict[int, float] = field(default_factory=dict)
    report: tuple[float, float] | None = None  # (played ms, when) as the client last said
    origin: float = 0.0  # wall time of the first chunk sent
    ack_wall: float = 0.0
    first_audio_wall: float = 0.0
    last_audio_wall: float = 0.0

    def sent(self, ms: float, now: float, sentence: int | None) -> None:
        """Count a chunk sent at `now`; `sentence` is the reply's sentence index, None for the acknowledgement."""
        self.origin = self.origin or now
        if sentence is None:
            self.ack_ms, self.ack_wall = self.ack_ms + ms, now
        else:
            self.first_audio_wall = self.first_audio_wall or now
            self.reply_ms += ms
            self.sentence_ms[sentence] = self.sentence_ms.get(sentence, 0.0) + ms
        self.sent_ms += ms
        self.last_audio_wall = now

    def played_ms(self, now: float) -> float:
        """Played by now: the last report carried forward in real time, or real time since the first chunk."""
        if self.report is not None:
            played = self.report[0] + (now - self.report[1]) * 1000
        elif self.origin:
            played = (now - self.origin) * 1000
        else:
            return 0.0
        return max(0.0, min(self.sent_ms, played))

    def ahead_ms(self, now: float) -> float:
        """Sent but not yet played."""
        return self.sent_ms - self.played_ms(now)


class ReplyState(enum.Enum):
    PREEMPTIVE = "preemptive"  # started at a pause; the turn's end is not decided, nothing is sent
    ANNOUNCED = "announced"  # the client knows the turn; no reply audio yet
    PLAYING = "playing"  # reply audio sent, more may come
    DONE = "done"  # the stack finished it (its audio may still be playing)
    CANCELLED = "cancelled"


@dataclass
class Reply:
    """The agent's reply to one user turn: its state, what it said and what of it was sent and heard."""

    turn_id: str
    user: UserTurn
    decided: bool = True  # False while preemptive: the user's turn may still go on
    preemptive: bool = False  # it was started at a pause (kept once its end is decided, for the client)
    work_done: bool = False  # the stack finished its work
    cancelled: str = ""  # why, once cancelled
    playout: Playout = field(default_factory=Playout)
    text: str = ""  # the reply's words so far
    history_turns: int = 0
    held: list[Any] = field(default_factory=list)  # events kept while preemptive, sent once it is decided
    done: Any = None  # the stack's TurnDone, once it came
    feeling: str = ""
    remembered: Any = None  # the memory's entry for this turn, once written

    @property
    def state(self) -> ReplyState:
        if self.cancelled:
            return ReplyState.CANCELLED
        if self.work_done:
            return ReplyState.DONE
        if not self.decided:
            return ReplyState.PREEMPTIVE
        return ReplyState.PLAYING if self.playout.reply_ms else ReplyState.ANNOUNCED

    @property
    def finished(self) -> bool:
        """Nothing more of it will be sent."""
        return self.work_done or bool(self.cancelled)

    def audible(self, now: float) -> bool:
        """The agent is (or will be) speaking this reply: audio sent and not all played, or more still coming."""
        if self.cancelled or self.playout.sent_ms == 0:
            return False
        return not self.finished or self.playout.played_ms(now) < self.playout.sent_ms - 1

    def done_playing(self, now: float) -> bool:
        return self.finished and not self.audible(now)

    def heard(self, now: float) -> str:
        """The reply's words up to the playback position (a sentence cut part-way keeps a share of its words)."""
        played = self.playout.played_ms(now) - self.playout.ack_ms
        sentences = [s for s in (SentenceSplitter().feed(self.text + "\n") or [self.text]) if s.strip()]
        heard = []
        for index, sentence in enumerate(sentences):
            length = self.playout.sentence_ms.get(index, 0.0)
            if played <= 0 or length == 0:
                break
            if played >= length:
                heard.append(sentence)
            else:
                words = sentence.split()
                heard.append(" ".join(words[: int(len(words) * played / length)]))
            played -= length
        return " ".join(h for h in heard if h).strip()

    def send_wait_s(self, now: float, lead_ms: float, user_speaking: bool) -> float | None:
        """How long reply audio must wait before the next chunk goes out: 0 = now, None = until something
        changes (the turn's end decided, the user stops speaking), else seconds of playback to wait for."""
        if not self.decided or (self.playout.reply_ms == 0 and user_speaking):
            return None  # nothing before the end is decided; no reply starts over the user
        over = self.playout.ahead_ms(now) - lead_ms
        return 0.0 if over <= 0 else over / 1000
