"""Instruction core: validates the strategy and calls the configured mapper."""

from __future__ import annotations

from emoomni.core.config import StackConfig
from emoomni.services.instruction.backends import build_backend
from emoomni.v1 import instruction_pb2

_MAX_STRATEGY_CHARS = 4000


class InstructionCore:
    def __init__(self, cfg: StackConfig):
        self.backend = build_backend(cfg.instruction)

    def warmup(self) -> None:
        self.backend.map("I will respond warmly.", "en")

    def map(self, strategy: str, language: str = "") -> instruction_pb2.AcousticInstruction:
        strategy = strategy.strip()
        if not strategy:
            raise ValueError("the strategy is empty")
        if len(strategy) > _MAX_STRATEGY_CHARS:
            raise ValueError(f"the strategy is {len(strategy)} characters, over the {_MAX_STRATEGY_CHARS} limit")
        return self.backend.map(strategy, language)
