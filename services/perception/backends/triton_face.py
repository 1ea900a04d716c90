"""Face and expression served by Triton (model `triton.face_model`, deploy/triton/model_repository/face_expression):
the model runs the same OpenCvFerFace the in-process backend runs; this class ships frames and rebuilds the
observations from its tensors (probabilities as float64, so nothing is rounded on the way)."""

from __future__ import annotations

import numpy as np

from emoomni.core.config import FaceConfig, TritonConfig
from emoomni.core.telemetry import headers_with_trace
from emoomni.core.triton import connect, triton_error
from emoomni.services.perception.backends.interface import EXPRESSIONS, FaceObservation


class TritonFace:
    def __init__(self, cfg: FaceConfig, triton: TritonConfig):
        self.cfg, self.triton = cfg, triton
        self.model = triton.face_model
        self.client = connect(triton.url, self.model, wait_s=max(triton.timeout_s, 60.0))

    def _infer(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        tensor = grpcclient.InferInput("FRAMES", list(frames.shape), "UINT8")
        tensor.set_data_from_numpy(frames)
        try:
            result = self.client.infer(self.model, [tensor], headers=headers_with_trace(),
                                       client_timeout=self.triton.timeout_s)
        except InferenceServerException as exc:
            raise triton_error(exc, self.triton.url, self.model) from exc
        return result.as_numpy("FACE_FOUND"), result.as_numpy("BOXES"), result.as_numpy("SCORES")

    def observe(self, frames: list[tuple[float, np.ndarray]]) -> list[FaceObservation]:
        observations: list[FaceObservation | None] = [None] * len(frames)
        # One request per frame size (a clip's sampled frames all share one, so normally one request).
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, (_, rgb) in enumerate(frames):
            by_shape.setdefault(rgb.shape, []).append(i)
        for indices in by_shape.values():
            found, boxes, scores = self._infer(np.stack([np.asarray(frames[i][1], dtype=np.uint8) for i in indices]))
            for row, i in enumerate(indices):
                time_s = frames[i][0]
                if not found[row]:
                    observations[i] = FaceObservation(time_s=time_s, face_found=False)
                    continue
                probs = scores[row]
                best = int(np.argmax(probs))
                observations[i] = FaceObservation(
                    time_s=time_s, face_found=True, box=[int(v) for v in boxes[row]], expression=EXPRESSIONS[best],
                    expression_score=float(probs[best]),
                    scores={label: float(p) for label, p in zip(EXPRESSIONS, probs, strict=True)})
        return [o for o in observations if o is not None]
