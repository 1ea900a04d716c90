"""Instruction mapping: the response strategy becomes an acoustic instruction (text + normalized controls)."""
