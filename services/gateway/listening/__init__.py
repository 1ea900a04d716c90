"""Listening for live sessions: voice activity and end-of-turn detection on the audio's own clock.

Layers, imported one way: `detector` (TurnDetector: the per-session state machine and its events) -> `base` (the
two model interfaces) <- `vad` (Silero VAD) and `turn_end` (Smart Turn v3). A gateway loads the models once with
`load_models()` and gives each session its own `TurnDetector(models, sample_rate, config.listening)`.
"""

from __future__ import annotations

import numpy as np

from emoomni.services.gateway.listening.base import SAMPLE_RATE, ListeningModels
from emoomni.services.gateway.listening.detector import (
    SUPPORTED_RATES,
    Idle,
    ListeningEvent,
    ListeningInputError,
    SpeechStarted,
    SpeechStopped,
    TurnDetector,
    TurnEnded,
)

__all__ = ["SAMPLE_RATE", "SUPPORTED_RATES", "Idle", "ListeningEvent", "ListeningInputError", "ListeningModels",
           "SpeechStarted", "SpeechStopped", "TurnDetector", "TurnEnded", "load_models"]


def load_models(threads: int = 1) -> ListeningModels:
    """Silero VAD and Smart Turn from their packages, each run once so that the first session's first turn does
    not pay for onnxruntime's lazy initialisation."""
    from emoomni.services.gateway.listening.turn_end import SmartTurn
    from emoomni.services.gateway.listening.vad import SileroVad

    models = ListeningModels(vad=SileroVad(threads=threads), turn=SmartTurn(threads=threads))
    models.vad.stream().probability(np.zeros(models.vad.window_samples, dtype=np.float32))
    models.turn.completion_probability(np.zeros(SAMPLE_RATE, dtype=np.float32))
    return models
