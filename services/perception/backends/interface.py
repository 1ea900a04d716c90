"""What a perception backend must do. Backends take decoded arrays and return plain pydantic results;
the core turns them into protobuf and cue sentences."""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np
from pydantic import BaseModel


class WordTiming(BaseModel):
    text: str
    start_s: float
    end_s: float
    probability: float = 1.0


class AsrResult(BaseModel):
    text: str
    language: str
    language_probability: float
    words: list[WordTiming]
    english_translation: str = ""


# The expression model's labels, in the order of its output (and of the Triton face model's SCORES tensor).
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


class FaceObservation(BaseModel):
    time_s: float
    face_found: bool
    box: list[int] = []
    expression: str = ""
    expression_score: float = 0.0
    scores: dict[str, float] = {}


class ProsodyResult(BaseModel):
    duration_s: float
    voiced_ratio: float
    pitch_median_hz: float
    pitch_mean_hz: float
    pitch_std_hz: float
    pitch_p10_hz: float
    pitch_p90_hz: float
    energy_mean_dbfs: float
    energy_std_db: float
    energy_peak_dbfs: float


class AsrBackend(Protocol):
    def transcribe(self, audio: np.ndarray, sample_rate: int, provisional: bool = False,
                   stop: threading.Event | None = None) -> AsrResult:
        """`provisional`: the words of speech still going on, fast (a backend may skip the word timings and the
        English translation). `stop` set: the turn was cancelled; stop at the next segment (TurnCancelled)."""
        ...


class TurnCancelled(Exception):
    """The turn's work was stopped part way (its caller left, or its deadline passed)."""


class FaceBackend(Protocol):
    def observe(self, frames: list[tuple[float, np.ndarray]]) -> list[FaceObservation]: ...


class ProsodyBackend(Protocol):
    def measure(self, audio: np.ndarray, sample_rate: int) -> ProsodyResult: ...
