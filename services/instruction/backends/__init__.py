"""Instruction mapping backends; `interface` holds the contract."""

from emoomni.config import InstructionConfig
from emoomni.services.instruction.backends.interface import InstructionBackend


def build_backend(cfg: InstructionConfig) -> InstructionBackend:
    if cfg.backend == "embedding_prototypes":
        from emoomni.services.instruction.backends.embedding_prototypes import EmbeddingPrototypeMapper

        return EmbeddingPrototypeMapper(cfg)
    raise ValueError(f"unknown instruction backend {cfg.backend!r}")
