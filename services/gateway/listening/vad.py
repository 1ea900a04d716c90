"""Silero VAD (MIT) from the `silero-vad` wheel's ONNX file, run on onnxruntime alone: the package's own Python
code needs torch, which a gateway does not otherwise load.

The ONNX graph (checked with onnxruntime): inputs `input` float32 [batch, samples], `state` float32 [2, batch, 128]
and `sr` int64 scalar; outputs `output` float32 [batch, 1] (speech probability) and `stateN` (the next state). At
16 kHz it is fed 512 new samples per call with the last 64 samples of the previous call in front of them, the
context the model was trained with; both the context and the recurrent state carry over from call to call.

The recurrent state also remembers what came before the speech: after one person's loud turn and a few seconds of
silence, a quieter voice's first second scored 0.0-0.4 here where a fresh state scored 0.8-1.0 (the shared
Mandarin clips). So a stream starts afresh once the model has heard clear non-speech for a while and the last
fresh start is long enough ago; the rule counts windows, so it stays on the audio clock.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from emoomni.core.packages import package_dir
from emoomni.services.gateway.listening.base import SAMPLE_RATE

WINDOW_SAMPLES = 512
"""New samples per call at 16 kHz (32 ms), the only window size the 16 kHz model accepts."""
CONTEXT_SAMPLES = 64
"""Samples of the previous window put in front of each window."""
_STATE_SHAPE = (2, 1, 128)
QUIET_PROBABILITY = 0.1
"""Windows below this are clear non-speech (far below any speech threshold, so a soft syllable never counts)."""
QUIET_WINDOWS_BEFORE_RESET = 8
"""This many clear non-speech windows in a row (256 ms) before a fresh start: one low window may be a dip inside a
word, a run of them is not."""
WINDOWS_BETWEEN_RESETS = 47
"""At least ~1.5 s of audio between fresh starts, so that long silence does not restart the model at every window
(a fresh state is not a settled one: it scored digital silence 0.2-0.4 here, a settled state ~0.01)."""


def silero_model_path() -> Path:
    root = package_dir("silero_vad", "Silero VAD for live sessions: pip install silero-vad")
    path = root / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed silero-vad package")
    return path


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class SileroVadStream:
    """The recurrent state and context of one audio stream."""

    def __init__(self, session: ort.InferenceSession):
        self._session = session
        self._rate = np.array(SAMPLE_RATE, dtype=np.int64)
        self._fresh_start()

    def _fresh_start(self) -> None:
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._quiet_run = 0
        self._since_reset = 0

    def probability(self, window: np.ndarray) -> float:
        if window.shape != (WINDOW_SAMPLES,):
            raise ValueError(f"Silero VAD takes {WINDOW_SAMPLES} samples at 16 kHz per call, got {window.shape}")
        samples = np.concatenate([self._context, window.astype(np.float32, copy=False)])[None, :]
        output, self._state = self._session.run(
            ["output", "stateN"], {"input": samples, "state": self._state, "sr": self._rate})
        self._context = samples[0, -CONTEXT_SAMPLES:]
        probability = float(output[0, 0])
        self._quiet_run = self._quiet_run + 1 if probability < QUIET_PROBABILITY else 0
        self._since_reset += 1
        if self._quiet_run >= QUIET_WINDOWS_BEFORE_RESET and self._since_reset >= WINDOWS_BETWEEN_RESETS:
            self._fresh_start()
        return probability


class SileroVad:
    """The loaded model; `stream()` gives each audio stream its own state. onnxruntime sessions may be run from
    several threads at once, so one model serves every session of a gateway."""

    window_samples = WINDOW_SAMPLES

    def __init__(self, path: Path | None = None, threads: int = 1):
        self._session = _session(path or silero_model_path(), threads)

    def stream(self) -> SileroVadStream:
        return SileroVadStream(self._session)
