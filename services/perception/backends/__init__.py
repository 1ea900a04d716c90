"""Perception backends. `interface` holds the contracts; each other module is one implementation."""

from emoomni.core.config import PerceptionConfig, TritonConfig
from emoomni.services.perception.backends.interface import AsrBackend, FaceBackend, ProsodyBackend


def build_backends(cfg: PerceptionConfig,
                   triton: TritonConfig | None = None) -> tuple[AsrBackend, FaceBackend, ProsodyBackend]:
    """Instantiate the backends the stack config names (imports are deferred: each pulls a model runtime).

    `triton` says where Triton serves the models of backends set to "triton" (default: TritonConfig())."""
    triton = triton or TritonConfig()
    if cfg.asr.backend == "faster_whisper":
        from emoomni.services.perception.backends.faster_whisper_asr import FasterWhisperAsr

        asr = FasterWhisperAsr(cfg.asr)
    elif cfg.asr.backend == "triton":
        from emoomni.services.perception.backends.triton_asr import TritonAsr

        asr = TritonAsr(cfg.asr, triton)
    if cfg.face.backend == "opencv_fer":
        from emoomni.services.perception.backends.opencv_fer_face import OpenCvFerFace

        face = OpenCvFerFace(cfg.face)
    elif cfg.face.backend == "triton":
        from emoomni.services.perception.backends.triton_face import TritonFace

        face = TritonFace(cfg.face, triton)
    if cfg.prosody.backend == "librosa":
        from emoomni.services.perception.backends.librosa_prosody import LibrosaProsody

        prosody = LibrosaProsody(cfg.prosody)
    return asr, face, prosody
