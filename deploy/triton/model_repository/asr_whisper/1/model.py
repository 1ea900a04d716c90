"""Triton Python-backend model: Whisper-base ASR through the perception service's own FasterWhisperAsr, so a
stack set to `perception.asr.backend: triton` hears exactly what the in-process backend hears."""

from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils

from emoomni.core.config import load_config
from emoomni.services.perception.backends.faster_whisper_asr import FasterWhisperAsr

_RATE = 16000
# 30 minutes of audio: far past limits.max_media_duration_s, only a guard against absurd requests.
_MAX_SAMPLES = _RATE * 1800


def _audio(request) -> np.ndarray:
    """The request's audio, checked: a clear refusal here is better than a CTranslate2 error deep inside."""
    rate = pb_utils.get_input_tensor_by_name(request, "SAMPLE_RATE")
    if rate is not None and int(rate.as_numpy().reshape(-1)[0]) != _RATE:
        raise ValueError(f"AUDIO must be sampled at {_RATE} Hz, got {int(rate.as_numpy().reshape(-1)[0])}")
    audio = np.ascontiguousarray(pb_utils.get_input_tensor_by_name(request, "AUDIO").as_numpy().reshape(-1),
                                 dtype=np.float32)
    if audio.size == 0:
        raise ValueError("AUDIO is empty")
    if audio.size > _MAX_SAMPLES:
        raise ValueError(f"AUDIO has {audio.size} samples, over the {_MAX_SAMPLES} limit")
    if not np.isfinite(audio).all():
        raise ValueError("AUDIO contains NaN or infinite samples")
    return audio


class TritonPythonModel:
    def initialize(self, args):
        self.asr = FasterWhisperAsr(load_config().perception.asr)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                result = self.asr.transcribe(_audio(request), _RATE)
                out = pb_utils.Tensor("RESULT_JSON", np.array([result.model_dump_json().encode()], dtype=np.object_))
                responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            except ValueError as exc:
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(f"invalid input: {exc}", pb_utils.TritonError.INVALID_ARG)))
            except Exception as exc:  # one bad request must not take the model down
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"ASR failed: {exc}")))
        return responses
