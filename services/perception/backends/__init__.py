"""Perception backends. `interface` holds the contracts; each other module is one implementation."""

from emoomni.config import PerceptionConfig
from emoomni.services.perception.backends.interface import AsrBackend, FaceBackend, ProsodyBackend


def build_backends(cfg: PerceptionConfig) -> tuple[AsrBackend, FaceBackend, ProsodyBackend]:
    """Instantiate the backends the stack config names (imports are deferred: each pulls a model runtime)."""
    if cfg.asr.backend == "faster_whisper":
        from emoomni.services.perception.backends.faster_whisper_asr import FasterWhisperAsr

        asr = FasterWhisperAsr(cfg.asr)
    if cfg.face.backend == "opencv_fer":
        from emoomni.services.perception.backends.opencv_fer_face import OpenCvFerFace

        face = OpenCvFerFace(cfg.face)
    if cfg.prosody.backend == "librosa":
        from emoomni.services.perception.backends.librosa_prosody import LibrosaProsody

        prosody = LibrosaProsody(cfg.prosody)
    return asr, face, prosody
