"""Talker core: validates text, picks the engine, and turns its audio into AudioChunks."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from emoomni.config import StackConfig
from emoomni.services.talker.registry import TalkerRegistry
from emoomni.v1 import instruction_pb2, media_pb2

# Audio leaves as the engine makes it (Piper: one piece per sentence). Splitting a piece that already exists
# would not start playback sooner, only multiply messages; only very long pieces are split (~6 s at 22 kHz).
MAX_CHUNK_SAMPLES = 131072


class TalkerCore:
    def __init__(self, cfg: StackConfig):
        self.cfg = cfg
        self.registry = TalkerRegistry(cfg.talker.plugins)
        self.active = cfg.talker.active

    def warmup(self) -> None:
        engine = self.registry.get(self.active)
        for _ in engine.synthesize("Hello.", instruction_pb2.AcousticInstruction(), "en"):
            pass

    def speak(self, text: str, instruction: instruction_pb2.AcousticInstruction, language: str = "en",
              talker: str = "", sentence_index: int = 0) -> Iterator[media_pb2.AudioChunk]:
        """Audio chunks for `text`; seq counts within this call, `last` marks the final chunk."""
        text = text.strip()
        if not text:
            raise ValueError("the text to speak is empty")
        limit = self.cfg.limits.max_text_chars
        if len(text) > limit:
            raise ValueError(f"the text is {len(text)} characters, over the {limit} limit")
        engine = self.registry.get(talker or self.active)
        seq = 0
        pending: media_pb2.AudioChunk | None = None
        for audio in engine.synthesize(text, instruction, language):
            pcm = np.asarray(audio.pcm16, dtype=np.int16)
            for start in range(0, len(pcm), MAX_CHUNK_SAMPLES):
                if pending is not None:
                    yield pending
                pending = media_pb2.AudioChunk(pcm16=pcm[start:start + MAX_CHUNK_SAMPLES].tobytes(),
                                               sample_rate=audio.sample_rate, seq=seq,
                                               sentence_index=sentence_index)
                seq += 1
        if pending is None:
            raise RuntimeError(f"talker {engine.name!r} produced no audio for {text[:40]!r}")
        pending.last = True
        yield pending
