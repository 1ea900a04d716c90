"""Smart Turn v3.2 (BSD-2, by Daily): an audio model that hears the last 8 s of a speaker's turn and says whether
they have finished, from intonation and the sound of the words rather than from silence alone.

The ONNX file ships inside the `pipecat-ai` wheel, installed without its dependencies (requirements/nodeps.in):
pipecat is never imported, its file is read from the installed package folder. The graph (checked with
onnxruntime): input `input_features` float32 [batch, 80, 800], Whisper log-mel features of exactly 8 s of 16 kHz
audio (shorter audio is padded with silence in front, so that the speech ends where the window ends); output
`logits` float32 [batch, 1], which despite its name is already the sigmoid probability that the turn is complete
(silence alone gives ~0.99, a sentence cut mid-way ~0.02-0.1). The model is int8-quantised, so its outputs come
in steps (0.988 is its top value).

The features are those of transformers' WhisperFeatureExtractor(chunk_length=8) with do_normalize=True: the
waveform normalised to zero mean and unit variance, then Whisper's log-mel. faster-whisper's numpy extractor
computes the same log-mel (the tests check it against transformers' within float rounding) without importing
torch, which the transformers route pulls into this process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from faster_whisper.feature_extractor import FeatureExtractor

from emoomni.core.packages import package_dir
from emoomni.services.gateway.listening.base import SAMPLE_RATE

MAX_SECONDS = 8
"""The model hears the last 8 s of the turn."""
_MODEL_FILE = ("audio", "turn", "smart_turn", "data", "smart-turn-v3.2-cpu.onnx")


def smart_turn_model_path() -> Path:
    # package_dir finds the folder without importing pipecat (whose __init__ needs loguru, not installed).
    root = package_dir("pipecat", "Smart Turn for live sessions: pip install --no-deps pipecat-ai==1.14.0")
    path = root.joinpath(*_MODEL_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed pipecat-ai package (1.14.0 ships it)")
    return path


def whisper_features(audio: np.ndarray, extractor: FeatureExtractor) -> np.ndarray:
    """[80, 800] features of exactly 8 s of 16 kHz audio, normalised as the model was trained."""
    x = audio.astype(np.float32)
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    return extractor(x, padding=0).astype(np.float32)


class SmartTurn:
    """The loaded model (stateless, shared by every session; onnxruntime runs are thread-safe)."""

    max_seconds = MAX_SECONDS

    def __init__(self, path: Path | None = None, threads: int = 1):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(path or smart_turn_model_path()), sess_options=options,
                                             providers=["CPUExecutionProvider"])
        self._samples = MAX_SECONDS * SAMPLE_RATE
        self._extractor = FeatureExtractor(feature_size=80, sampling_rate=SAMPLE_RATE, hop_length=160,
                                           chunk_length=MAX_SECONDS, n_fft=400)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """The model's input for the turn ending with `audio`: its last 8 s, silence in front if shorter."""
        tail = np.asarray(audio, dtype=np.float32)[-self._samples:]
        if tail.size < self._samples:
            tail = np.concatenate([np.zeros(self._samples - tail.size, dtype=np.float32), tail])
        return whisper_features(tail, self._extractor)

    def completion_probability(self, audio: np.ndarray) -> float:
        (probability,) = self._session.run(["logits"], {"input_features": self.features(audio)[None]})
        return float(probability[0, 0])
