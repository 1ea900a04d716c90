"""The reasoning backend contract: stream the four E-CoT parts, in order, as (part, text) pieces.

The emotion analysis always opens with the measured evidence (written by `evidence_text`, never by the
model); the backend then adds its overall reading. So every claim of the analysis rests on a measured cue.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from emoomni.v1 import perception_pb2, reasoning_pb2

Part = int  # reasoning_pb2.EcotPart value

EMOTION, INTENT, STRATEGY, RESPONSE = (
    reasoning_pb2.ECOT_PART_EMOTION_ANALYSIS, reasoning_pb2.ECOT_PART_INTENT,
    reasoning_pb2.ECOT_PART_STRATEGY, reasoning_pb2.ECOT_PART_RESPONSE)

# Emotion words the reading may use. Enumerated so that a small model cannot invent an unsupported state.
EMOTION_LABELS = (
    "happy", "excited", "joyful", "relieved", "hopeful", "proud", "amused", "playful", "calm", "neutral",
    "curious", "surprised", "confused", "anxious", "worried", "nervous", "fearful", "sad", "disappointed",
    "lonely", "tired", "frustrated", "angry", "annoyed", "embarrassed", "guilty", "defensive", "disgusted",
    "grateful", "grieving", "sarcastic",
)


@dataclass
class Piece:
    part: Part
    text: str
    part_done: bool = False


# The clip as `emoomni.core.media.read_source` returns it (a checked path, or the bytes), for backends that see it.
MediaSource = bytes | str


class ReasoningBackend(Protocol):
    # True for backends that read the clip itself (omni models); the others reason on the perception cues only.
    needs_media: bool

    def stream(self, perception: perception_pb2.PerceptionResult, context: str,
               media: MediaSource | None = None) -> Iterator[Piece]:
        """Yield pieces of EMOTION, INTENT, STRATEGY, RESPONSE in order; each part ends with part_done."""
        ...


def evidence_text(perception: perception_pb2.PerceptionResult) -> str:
    """The measured cues as the opening of the emotion analysis."""
    return " ".join(c.text.rstrip(".") + "." for c in perception.cues)
