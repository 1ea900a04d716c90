"""Triton Python-backend model (decoupled): the talker. It runs the talker service's own TalkerCore with the
installed talker plugins, and sends every audio chunk as its own response the moment the engine makes it."""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils
from google.protobuf import json_format

from emoomni.core.config import load_config
from emoomni.core.triton import served_talkers
from emoomni.services.talker.core import TalkerCore
from emoomni.v1 import instruction_pb2

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _string(request, name: str, default: str = "") -> str:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    values = tensor.as_numpy().reshape(-1)
    if values.size == 0:
        return default
    value = values[0]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _instruction(request) -> instruction_pb2.AcousticInstruction:
    raw = _string(request, "INSTRUCTION_JSON", "").strip() or "{}"
    try:
        return json_format.Parse(raw, instruction_pb2.AcousticInstruction())
    except json_format.ParseError as exc:
        raise ValueError(f"INSTRUCTION_JSON is not an AcousticInstruction: {exc}") from exc


class TritonPythonModel:
    def initialize(self, args):
        self.core = TalkerCore(load_config())
        self.served = served_talkers(json.loads(args["model_config"]))
        missing = sorted(set(self.served) - set(self.core.registry.available))
        if not self.served or missing or self.core.active not in self.served:
            raise RuntimeError(f"config.pbtxt parameter 'talkers' lists {self.served} (talker.active is "
                               f"{self.core.active!r}); not installed here: {missing or 'none'}")
        self.core.warmup()  # loads and warms talker.active; other engines load on first use

    def _speak(self, request) -> None:
        sender = request.get_response_sender()
        try:
            index = pb_utils.get_input_tensor_by_name(request, "SENTENCE_INDEX")
            talker = _string(request, "TALKER")
            if talker and talker not in self.served:
                raise ValueError(f"talker {talker!r} is not served by this model (served: {', '.join(self.served)})")
            chunks = self.core.speak(
                _string(request, "TEXT"), _instruction(request), _string(request, "LANGUAGE", "en") or "en", talker,
                int(index.as_numpy().reshape(-1)[0]) if index is not None else 0, _string(request, "TURN_ID"))
            for chunk in chunks:
                outputs = [
                    pb_utils.Tensor("AUDIO", np.frombuffer(chunk.pcm16, dtype=np.int16)),
                    pb_utils.Tensor("SAMPLE_RATE", np.array([chunk.sample_rate], dtype=np.int32)),
                    pb_utils.Tensor("SEQ", np.array([chunk.seq], dtype=np.int32)),
                    pb_utils.Tensor("LAST", np.array([chunk.last], dtype=bool)),
                    pb_utils.Tensor("SPOKEN_BY", np.array([chunk.talker.encode()], dtype=np.object_)),
                    pb_utils.Tensor("WARNINGS_JSON", np.array([json.dumps(list(chunk.warnings)).encode()],
                                                              dtype=np.object_)),
                ]
                sender.send(pb_utils.InferenceResponse(output_tensors=outputs), flags=_FINAL if chunk.last else 0)
        except ValueError as exc:  # empty or overlong text, unknown talker, unspoken language, bad instruction
            sender.send(pb_utils.InferenceResponse(
                error=pb_utils.TritonError(f"invalid input: {exc}", pb_utils.TritonError.INVALID_ARG)), flags=_FINAL)
        except Exception as exc:  # the engine failed; this request ends, the model keeps serving
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"talker failed: {exc}")), flags=_FINAL)

    def execute(self, requests):
        for request in requests:
            self._speak(request)
        return None
