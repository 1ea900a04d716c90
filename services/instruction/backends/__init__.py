"""Instruction mapping backends; `interface` holds the contract."""

from emoomni.core.config import InstructionConfig
from emoomni.services.instruction.backends.interface import InstructionBackend


def build_backend(cfg: InstructionConfig) -> InstructionBackend:
    if cfg.backend == "embedding_head":
        from emoomni.services.instruction.backends.embedding_head import EmbeddingHeadMapper

        return EmbeddingHeadMapper(cfg)
    raise ValueError(f"unknown instruction backend {cfg.backend!r}")
