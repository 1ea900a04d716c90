"""The instruction mapping contract: strategy text in, acoustic instruction out."""

from __future__ import annotations

from typing import Protocol

from emoomni.v1 import instruction_pb2


class InstructionBackend(Protocol):
    def map(self, strategy: str, language: str) -> instruction_pb2.AcousticInstruction: ...
