"""ASR served by Triton (model `triton.asr_model`, deploy/triton/model_repository/asr_whisper): the model runs the same
FasterWhisperAsr the in-process backend runs, so the result is the same; this class only ships the audio."""

from __future__ import annotations

import threading

import numpy as np

from emoomni.core.config import AsrConfig, TritonConfig
from emoomni.core.telemetry import headers_with_trace
from emoomni.core.triton import connect, triton_error
from emoomni.services.perception.backends.interface import AsrResult


class TritonAsr:
    def __init__(self, cfg: AsrConfig, triton: TritonConfig):
        self.cfg, self.triton = cfg, triton
        self.model = triton.asr_model
        self.client = connect(triton.url, self.model, wait_s=max(triton.timeout_s, 60.0))

    def transcribe(self, audio: np.ndarray, sample_rate: int, provisional: bool = False,
                   stop: threading.Event | None = None) -> AsrResult:
        """`provisional` changes nothing here: the Triton model always gives words and the translation."""
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        inputs = [grpcclient.InferInput("AUDIO", [audio.size], "FP32"),
                  grpcclient.InferInput("SAMPLE_RATE", [1], "INT32")]
        inputs[0].set_data_from_numpy(audio)
        inputs[1].set_data_from_numpy(np.array([sample_rate], dtype=np.int32))
        try:
            result = self.client.infer(self.model, inputs, headers=headers_with_trace(),
                                       client_timeout=self.triton.timeout_s)
        except InferenceServerException as exc:
            raise triton_error(exc, self.triton.url, self.model) from exc
        return AsrResult.model_validate_json(result.as_numpy("RESULT_JSON").reshape(-1)[0])
