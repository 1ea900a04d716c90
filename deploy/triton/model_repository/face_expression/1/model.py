"""Triton Python-backend model: face detection + expression through the perception service's own OpenCvFerFace,
so a stack set to `perception.face.backend: triton` sees exactly what the in-process backend sees."""

from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils

from emoomni.core.config import load_config
from emoomni.services.perception.backends.interface import EXPRESSIONS
from emoomni.services.perception.backends.opencv_fer_face import OpenCvFerFace

_MAX_FRAMES = 256
_MIN_SIDE = 16


def _frames(request) -> np.ndarray:
    frames = pb_utils.get_input_tensor_by_name(request, "FRAMES").as_numpy()
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"FRAMES must be [N, H, W, 3] RGB, got shape {list(frames.shape)}")
    n, h, w, _ = frames.shape
    if n == 0:
        raise ValueError("FRAMES holds no frame")
    if n > _MAX_FRAMES:
        raise ValueError(f"FRAMES holds {n} frames, over the {_MAX_FRAMES} limit")
    if min(h, w) < _MIN_SIDE:
        raise ValueError(f"frames of {w}x{h} pixels are too small to hold a face")
    return frames


class TritonPythonModel:
    def initialize(self, args):
        self.face = OpenCvFerFace(load_config().perception.face)

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                observations = self.face.observe([(0.0, np.ascontiguousarray(f)) for f in _frames(request)])
                found = np.array([o.face_found for o in observations], dtype=bool)
                boxes = np.array([o.box if o.face_found else [0, 0, 0, 0] for o in observations],
                                 dtype=np.int32).reshape(-1, 4)
                scores = np.array([[o.scores.get(label, 0.0) for label in EXPRESSIONS] for o in observations],
                                  dtype=np.float64).reshape(-1, len(EXPRESSIONS))
                responses.append(pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor("FACE_FOUND", found), pb_utils.Tensor("BOXES", boxes),
                    pb_utils.Tensor("SCORES", scores)]))
            except ValueError as exc:
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(f"invalid input: {exc}", pb_utils.TritonError.INVALID_ARG)))
            except Exception as exc:  # one bad request must not take the model down
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"face model failed: {exc}")))
        return responses
