"""Turn-taking on the audio's own clock: fed a session's microphone frames, says when the user starts and stops
speaking and when their turn is over.

Everything is counted in samples of the 16 kHz stream (32 ms VAD windows), never in wall time: streaming faster
than real time gives the same events, and so does any way of cutting the same audio into frames (frames are
regrouped into fixed 10 ms blocks before resampling and into fixed windows before the VAD).

How a turn ends: a speech segment ends after `min_silence_ms` of silence (`speech_stopped`); the turn model then
hears the turn so far. If it says complete, the turn ends once the silence since the last speech reaches
`endpoint_delay_ms`; if it says the user is not done (a pause mid-sentence), only after
`endpoint_delay_incomplete_ms`. Speech before then continues the same turn. A turn longer than `max_turn_s` is cut
there; `idle_s` without speech gives `idle`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import soxr

from emoomni.core.config import ListeningConfig
from emoomni.services.gateway.listening.base import SAMPLE_RATE, ListeningModels

SUPPORTED_RATES = (8000, 16000, 24000, 44100, 48000)
"""Microphone rates a session may declare (PCM16 mono)."""
VAD_HYSTERESIS = 0.15
"""A window counts as silence only below `vad_threshold` minus this (Silero's own recommendation)."""


class ListeningInputError(ValueError):
    """Audio the detector cannot take (undeclared rate, odd byte count, a frame too long); nothing was consumed."""


def _ms(samples: int) -> float:
    return samples * 1000 / SAMPLE_RATE


@dataclass(frozen=True)
class SpeechStarted:
    """The VAD found speech (`min_speech_ms` of it). `at_ms` is when that was known, `start_ms` where it began."""

    at_ms: float
    start_ms: float
    new_turn: bool
    """True when this speech opens a new user turn; False when the user goes on after a pause in the same turn."""
    kind: Literal["speech_started"] = field(default="speech_started", init=False)


@dataclass(frozen=True)
class SpeechStopped:
    """A speech segment ended: `min_silence_ms` of silence after `end_ms`, known at `at_ms`."""

    at_ms: float
    start_ms: float
    end_ms: float
    voiced_ms: float
    """Speech windows in the segment (pauses shorter than `min_silence_ms` inside it not counted)."""
    completion_probability: float | None
    """The turn model's verdict on the turn so far (None at `finish()`): a session may start reasoning early when
    it is high, and the turn ends `endpoint_delay_ms` after `end_ms` unless the user goes on."""
    kind: Literal["speech_stopped"] = field(default="speech_stopped", init=False)


TurnEndReason = Literal["complete", "silence", "max_turn", "stream_ended"]


@dataclass(frozen=True)
class TurnEnded:
    """The user's turn is over, decided at `at_ms`.

    reason: "complete" (the turn model said so and `endpoint_delay_ms` of silence followed), "silence" (it said the
    user was not done, but `endpoint_delay_incomplete_ms` of silence followed), "max_turn" (cut at `max_turn_s`;
    if the user is still speaking, that speech opens the next turn at once), "stream_ended" (`finish()`).
    """

    at_ms: float
    start_ms: float
    """Where the turn's first speech began."""
    end_ms: float
    """Where its last speech ended (`at_ms` when cut while speaking)."""
    reason: TurnEndReason
    completion_probability: float | None
    """The turn model's last verdict on this turn (None if it was never asked)."""
    voiced_ms: float
    audio_start_ms: float
    """Where `audio` begins: `pre_roll_ms` before the speech's onset (`start_ms`, or earlier after a soft onset)."""
    audio: np.ndarray = field(repr=False, compare=False)
    """16 kHz float32 audio of the turn, from `audio_start_ms` to `at_ms`."""
    kind: Literal["turn_ended"] = field(default="turn_ended", init=False)


@dataclass(frozen=True)
class Idle:
    """No speech for `silent_ms` (a multiple of `idle_s`) up to `at_ms`."""

    at_ms: float
    silent_ms: float
    kind: Literal["idle"] = field(default="idle", init=False)


ListeningEvent = SpeechStarted | SpeechStopped | TurnEnded | Idle


class _To16k:
    """Resamples one stream to 16 kHz with soxr, in fixed 10 ms input blocks so that the output (and the events)
    cannot depend on how the client cut its frames."""

    def __init__(self, rate: int):
        self._block = rate // 100
        self._pending = np.zeros(0, dtype=np.float32)
        self._soxr = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32",
                                                                            quality="HQ")

    def push(self, audio: np.ndarray) -> np.ndarray:
        if self._soxr is None:
            return audio
        data = np.concatenate([self._pending, audio])
        whole = len(data) // self._block * self._block
        self._pending = data[whole:]
        return self._soxr.resample_chunk(data[:whole]) if whole else np.zeros(0, dtype=np.float32)

    def flush(self) -> np.ndarray:
        if self._soxr is None:
            return np.zeros(0, dtype=np.float32)
        out = self._soxr.resample_chunk(self._pending, last=True)
        self._pending = np.zeros(0, dtype=np.float32)
        return out


class TurnDetector:
    """One session's listener. Feed it PCM16 mono frames at the declared rate; each call returns the events that
    audio completed, in order. Not thread-safe: one session feeds its own detector, one call at a time. A call
    that ends a speech segment runs the turn model (0.3-0.5 s median on the shared 2-core CPU), so an asyncio
    caller runs `feed` in a worker thread."""

    def __init__(self, models: ListeningModels, sample_rate: int, config: ListeningConfig | None = None):
        if sample_rate not in SUPPORTED_RATES:
            raise ListeningInputError(f"sample rate {sample_rate} Hz is not supported; declare one of "
                                      f"{', '.join(map(str, SUPPORTED_RATES))}")
        self.config = config = config or ListeningConfig()
        self.sample_rate = sample_rate
        self._vad = models.vad.stream()
        self._turn_model = models.turn
        self._window = models.vad.window_samples
        self._resampler = _To16k(sample_rate)
        self._unjudged = np.zeros(0, dtype=np.float32)

        def samples(ms: float) -> int:
            return round(ms * SAMPLE_RATE / 1000)

        self._speech_on = config.vad_threshold
        self._speech_off = config.vad_threshold - VAD_HYSTERESIS
        self._min_speech = samples(config.min_speech_ms)
        self._min_silence = samples(config.min_silence_ms)
        self._delay_complete = samples(config.endpoint_delay_ms)
        self._delay_incomplete = samples(config.endpoint_delay_incomplete_ms)
        self._max_turn = samples(config.max_turn_s * 1000)
        self._idle = samples(config.idle_s * 1000)
        self._pre_roll = samples(config.pre_roll_ms)
        self._backtrack = samples(config.onset_backtrack_ms)
        self._model_span = samples(self._turn_model.max_seconds * 1000)
        self._max_frame = config.max_frame_ms * sample_rate // 1000

        self._position = 0                      # 16 kHz samples judged by the VAD so far
        self._windows: deque[np.ndarray] = deque()
        self._probabilities: deque[float] = deque()  # the VAD's verdict on each kept window
        self._kept_from = 0                     # sample where self._windows begins
        self._candidate_start: int | None = None
        self._candidate_voiced = 0
        self._segment_start: int | None = None  # None: not in a speech segment
        self._segment_voiced = 0
        self._silence_start: int | None = None
        self._turn_start: int | None = None     # None: no open turn
        self._audio_start = 0                   # where the open turn's audio begins (pre-roll before its onset)
        self._last_turn_end = 0                 # the previous turn's last speech: no turn's audio reaches before
        self._turn_voiced = 0
        self._speech_end = 0
        self._endpoint_at: int | None = None
        self._completion: float | None = None
        self._quiet_since = 0
        self._idle_events = 0
        self._finished = False

    # --- what a session reads -----------------------------------------------------------------------------------

    @property
    def position_ms(self) -> float:
        """How much audio the detector has judged (the audio clock)."""
        return _ms(self._position)

    @property
    def in_speech(self) -> bool:
        return self._segment_start is not None

    @property
    def in_turn(self) -> bool:
        return self._turn_start is not None

    @property
    def turn_start_ms(self) -> float | None:
        """Where the open turn's first speech began (None when no turn is open)."""
        return None if self._turn_start is None else _ms(self._turn_start)

    @property
    def turn_audio_ms(self) -> float:
        """How long `turn_audio()` is (0 when no turn is open)."""
        return _ms(self._position - self._audio_start) if self._turn_start is not None else 0.0

    @property
    def speech_ms(self) -> float:
        """Speech in the current segment so far (0 when the user is not speaking): what barge-in is measured by,
        so a cough or an "mm-hm" stays below a few hundred ms."""
        return _ms(self._segment_voiced) if self._segment_start is not None else 0.0

    def turn_audio(self) -> np.ndarray:
        """The open turn's 16 kHz audio so far, from `pre_roll_ms` before its onset (empty when none), for
        perception while the user is still speaking."""
        if self._turn_start is None:
            return np.zeros(0, dtype=np.float32)
        return self._audio_from(self._audio_start)

    def reset_idle(self) -> None:
        """Restart the idle count from now (e.g. when the agent has finished speaking)."""
        self._quiet_since = self._position
        self._idle_events = 0

    # --- feeding --------------------------------------------------------------------------------------------------

    def feed(self, pcm16: bytes) -> list[ListeningEvent]:
        """One frame of PCM16 little-endian mono at the declared rate, up to `max_frame_ms` long."""
        if self._finished:
            raise ListeningInputError("audio after the end of the stream")
        if not isinstance(pcm16, bytes | bytearray | memoryview):
            raise ListeningInputError(f"audio must be PCM16 bytes, not {type(pcm16).__name__}")
        size = len(pcm16)
        if size == 0:
            raise ListeningInputError("empty audio frame")
        if size % 2:
            raise ListeningInputError(f"odd-length audio frame ({size} bytes): PCM16 has 2 bytes per sample")
        if size // 2 > self._max_frame:
            raise ListeningInputError(f"audio frame of {size // 2 * 1000 / self.sample_rate:.0f} ms is longer than "
                                      f"{self.config.max_frame_ms} ms; send shorter frames")
        audio = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
        return self._judge(self._resampler.push(audio))

    def finish(self) -> list[ListeningEvent]:
        """The stream ended: judge what is buffered (the last window padded with silence) and end an open turn."""
        if self._finished:
            return []
        self._finished = True
        events = self._judge(self._resampler.flush())
        if len(self._unjudged):
            tail = np.zeros(self._window, dtype=np.float32)
            tail[:len(self._unjudged)] = self._unjudged
            self._unjudged = np.zeros(0, dtype=np.float32)
            events += self._step(tail)
        if self._segment_start is not None:
            events.append(self._stop_segment(ask_model=False))
        if self._turn_start is not None:
            events.append(self._end_turn("stream_ended"))
        return events

    # --- the state machine, one VAD window at a time -----------------------------------------------------------

    def _judge(self, audio: np.ndarray) -> list[ListeningEvent]:
        buffered = np.concatenate([self._unjudged, audio]) if len(self._unjudged) else audio
        whole = len(buffered) // self._window
        events: list[ListeningEvent] = []
        for i in range(whole):
            events += self._step(buffered[i * self._window:(i + 1) * self._window])
        self._unjudged = buffered[whole * self._window:].copy()
        return events

    def _step(self, window: np.ndarray) -> list[ListeningEvent]:
        start, end = self._position, self._position + self._window
        self._position = end
        self._windows.append(window)
        probability = self._vad.probability(window)
        self._probabilities.append(probability)
        speech, silence = probability >= self._speech_on, probability < self._speech_off
        events: list[ListeningEvent] = []

        if self._segment_start is None:
            if speech:
                self._candidate_start = start if self._candidate_start is None else self._candidate_start
                self._candidate_voiced += self._window
            elif silence:
                self._candidate_start, self._candidate_voiced = None, 0
            if self._candidate_voiced >= self._min_speech:
                events.append(self._start_segment())
        else:
            if speech:
                self._segment_voiced += self._window
                self._turn_voiced += self._window
                self._silence_start = None
            elif silence and self._silence_start is None:
                self._silence_start = start
            if self._silence_start is not None and end - self._silence_start >= self._min_silence:
                events.append(self._stop_segment(ask_model=True))

        if self._turn_start is not None:
            waiting = self._segment_start is None and self._candidate_start is None
            if waiting and self._endpoint_at is not None and end >= self._endpoint_at:
                complete = (self._completion or 0.0) >= self.config.turn_complete_threshold
                events.append(self._end_turn("complete" if complete else "silence"))
            elif end - self._turn_start >= self._max_turn:
                events.append(self._end_turn("max_turn"))

        if self._segment_start is not None or self._turn_start is not None or self._candidate_start is not None:
            self._quiet_since, self._idle_events = end, 0
        elif end - self._quiet_since >= self._idle * (self._idle_events + 1):
            self._idle_events += 1
            events.append(Idle(at_ms=_ms(end), silent_ms=_ms(end - self._quiet_since)))
        self._trim()
        return events

    def _start_segment(self) -> SpeechStarted:
        self._segment_start, self._segment_voiced = self._candidate_start, self._candidate_voiced
        self._candidate_start, self._candidate_voiced = None, 0
        self._silence_start = None
        new_turn = self._turn_start is None
        if new_turn:
            self._turn_start, self._turn_voiced = self._segment_start, 0
            self._audio_start = max(self._onset(self._segment_start) - self._pre_roll, self._last_turn_end, 0)
        self._turn_voiced += self._segment_voiced
        self._endpoint_at, self._completion = None, None   # the user goes on: the turn is not over
        return SpeechStarted(at_ms=_ms(self._position), start_ms=_ms(self._segment_start), new_turn=new_turn)

    def _stop_segment(self, *, ask_model: bool) -> SpeechStopped:
        end = self._silence_start if self._silence_start is not None else self._position
        if ask_model:
            # The model hears the turn up to now: its speech and the `min_silence_ms` after it.
            heard = self._audio_from(max(self._turn_start - self._pre_roll, self._position - self._model_span))
            self._completion = self._turn_model.completion_probability(heard)
            complete = self._completion >= self.config.turn_complete_threshold
            self._endpoint_at = end + (self._delay_complete if complete else self._delay_incomplete)
        event = SpeechStopped(at_ms=_ms(self._position), start_ms=_ms(self._segment_start), end_ms=_ms(end),
                              voiced_ms=_ms(self._segment_voiced),
                              completion_probability=self._completion if ask_model else None)
        self._segment_start, self._segment_voiced, self._silence_start = None, 0, None
        self._speech_end = end
        return event

    def _end_turn(self, reason: TurnEndReason) -> TurnEnded:
        speaking = self._segment_start is not None
        audio = self.turn_audio()
        event = TurnEnded(at_ms=_ms(self._position), start_ms=_ms(self._turn_start),
                          end_ms=_ms(self._position if speaking else self._speech_end), reason=reason,
                          completion_probability=self._completion, voiced_ms=_ms(self._turn_voiced),
                          audio_start_ms=_ms(self._position - len(audio)), audio=audio)
        self._endpoint_at, self._completion, self._turn_voiced = None, None, 0
        # Cut at max_turn while the user speaks: the rest of their speech is the next turn, from here.
        self._turn_start = self._position if speaking else None
        self._audio_start = self._last_turn_end = self._position if speaking else self._speech_end
        return event

    def _onset(self, start: int) -> int:
        """Where the speech detected at `start` began: back over windows scoring at least `onset_threshold`
        (a whisper), across gaps of up to two windows, at most `onset_backtrack_ms`."""
        index = (start - self._kept_from) // self._window
        earliest = max(0, (start - self._backtrack - self._kept_from) // self._window)
        onset, gap = index, 0
        probabilities = list(self._probabilities)
        for i in range(index - 1, earliest - 1, -1):
            if probabilities[i] >= self.config.onset_threshold:
                onset, gap = i, 0
            elif (gap := gap + 1) > 2:
                break
        return self._kept_from + onset * self._window

    def _audio_from(self, sample: int) -> np.ndarray:
        """The kept audio from `sample` (clamped to what is kept) to the current position."""
        skip, cut = divmod(max(0, sample - self._kept_from), self._window)
        windows = list(self._windows)[skip:]
        return np.concatenate(windows)[cut:] if windows else np.zeros(0, dtype=np.float32)

    def _trim(self) -> None:
        """Keep only the audio a turn may still need: the open turn's, else the onset and pre-roll before what may
        start."""
        if self._turn_start is not None:
            keep_from = self._audio_start
        else:
            anchor = self._candidate_start if self._candidate_start is not None else self._position
            keep_from = anchor - self._backtrack - self._pre_roll
        while self._windows and self._kept_from + self._window <= keep_from:
            self._windows.popleft()
            self._probabilities.popleft()
            self._kept_from += self._window
