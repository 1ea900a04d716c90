"""The two models listening needs, as interfaces: the detector (detector.py) sees only these, the backends (vad.py,
turn_end.py) implement them. Both work on 16 kHz mono float32 audio in [-1, 1]."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16000
"""The rate both models hear; the detector resamples every microphone to it."""


class VoiceActivityStream(Protocol):
    """One audio stream's voice activity: the model is recurrent, so each stream keeps its own state."""

    def probability(self, window: np.ndarray) -> float:
        """Speech probability of the next `window_samples` samples of this stream."""
        ...


class VoiceActivityModel(Protocol):
    """A loaded VAD model, shared by every stream (its weights are read-only)."""

    window_samples: int
    """Samples per window at 16 kHz."""

    def stream(self) -> VoiceActivityStream:
        """A fresh stream state (a new session, or after a gap in the audio)."""
        ...


class TurnCompletionModel(Protocol):
    """Judges from the sound of the speech so far whether the speaker has finished their turn."""

    max_seconds: float
    """How much of the end of the audio the model hears; earlier audio is ignored."""

    def completion_probability(self, audio: np.ndarray) -> float:
        """Probability that the turn ending with `audio` (16 kHz, up to its last sample) is complete."""
        ...


@dataclass(frozen=True)
class ListeningModels:
    """What a gateway loads once and hands to every session's TurnDetector."""

    vad: VoiceActivityModel
    turn: TurnCompletionModel
