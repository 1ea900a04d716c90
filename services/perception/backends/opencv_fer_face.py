"""Face and expression: OpenCV's Haar cascade finds the face, fer's packaged 7-class expression CNN
(quantized TFLite, run with ai-edge-litert, no TensorFlow) reads it. Weak on hard faces, fast on CPU."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from emoomni.core.config import FaceConfig
from emoomni.core.logs import quiet_stderr
from emoomni.core.packages import package_dir
from emoomni.services.perception.backends.interface import EXPRESSIONS, FaceObservation

# Label order of the fer expression model's output.
_INPUT = 64
_MARGIN = 0.15  # share of the face box added around it before classification


def _fer_model_path() -> Path:
    return package_dir("fer", "its data files carry the expression model") / "data" / "emotion_model_quantized.tflite"


class OpenCvFerFace:
    def __init__(self, cfg: FaceConfig):
        from ai_edge_litert.interpreter import Interpreter

        self.cfg = cfg
        cascade = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.detector = cv2.CascadeClassifier(str(cascade))
        if self.detector.empty():
            raise FileNotFoundError(f"cannot load the face detector {cascade}")
        with quiet_stderr():  # LiteRT prints an INFO line about its CPU delegate straight to fd 2
            self.interpreter = Interpreter(model_path=str(_fer_model_path()), num_threads=1)
            self.interpreter.allocate_tensors()
            self._in = self.interpreter.get_input_details()[0]["index"]
            self._out = self.interpreter.get_output_details()[0]["index"]
            self._classify(np.zeros((_INPUT, _INPUT), dtype=np.uint8), (0, 0, _INPUT, _INPUT))

    def _largest_face(self, gray: np.ndarray) -> tuple[int, int, int, int] | None:
        min_side = max(24, min(gray.shape) // 10)
        faces = self.detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                               minSize=(min_side, min_side))
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
        return int(x), int(y), int(w), int(h)

    def _classify(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        x, y, w, h = box
        mx, my = int(w * _MARGIN), int(h * _MARGIN)
        crop = gray[max(0, y - my): y + h + my, max(0, x - mx): x + w + mx]
        face = cv2.resize(crop, (_INPUT, _INPUT)).astype(np.float32)
        face = (face / 255.0 - 0.5) * 2.0  # the model was trained on inputs scaled to [-1, 1]
        self.interpreter.set_tensor(self._in, face.reshape(1, _INPUT, _INPUT, 1))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out)[0].astype(np.float64)

    def observe(self, frames: list[tuple[float, np.ndarray]]) -> list[FaceObservation]:
        observations = []
        for time_s, rgb in frames:
            gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            box = self._largest_face(cv2.equalizeHist(gray))  # equalized for detection only
            if box is None:
                observations.append(FaceObservation(time_s=time_s, face_found=False))
                continue
            probs = self._classify(gray, box)
            probs = probs / probs.sum() if probs.sum() > 0 else probs
            best = int(np.argmax(probs))
            observations.append(FaceObservation(
                time_s=time_s, face_found=True, box=list(box), expression=EXPRESSIONS[best],
                expression_score=float(probs[best]),
                scores={label: float(p) for label, p in zip(EXPRESSIONS, probs, strict=True)}))
        return observations
