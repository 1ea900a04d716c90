"""The turn contract, written once: every kind of message on a turn's subjects (``emoomni.v1.turn.<turn_id>.<kind>``),
what it carries, who sends it and who reads it, and which stage's part of the turn an event finishes.

The bus (bus.py) names subjects from it, the gateway (services/gateway/core.py, turn.py) decodes and folds with it,
and the test harness (testing/bus.py) decodes with it; docs/architecture.md draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message

from emoomni.v1 import agent_pb2, bus_pb2


class Kind:
    """The last token of a turn subject: what the message is."""

    REQUEST = "request"
    PERCEPTION = "perception"
    ECOT = "ecot"
    STRATEGY = "strategy"
    INSTRUCTION = "instruction"
    SPEAK = "speak"
    AUDIO = "audio"
    TIMING = "timing"
    ERROR = "error"
    ALIVE = "alive"
    CANCEL = "cancel"


@dataclass(frozen=True)
class TurnMessage:
    kind: str
    message: type[Message] | None  # None: an empty payload
    sender: str
    readers: tuple[str, ...]  # "*": every replica of every stage
    work: bool  # a work item: kept in the JetStream work queue until one replica of its stage has done it
    what: str


TURN_CONTRACT: tuple[TurnMessage, ...] = (
    TurnMessage(Kind.REQUEST, bus_pb2.TurnRequest, "gateway", ("perception",), True, "the user's clip and context"),
    TurnMessage(Kind.PERCEPTION, bus_pb2.ReasonJob, "perception", ("reasoning", "gateway"), True,
                "the transcript, face and voice cues (the gateway forwards them to the caller)"),
    TurnMessage(Kind.ECOT, agent_pb2.TurnEvent, "reasoning", ("gateway",), False, "E-CoT text as it is written"),
    TurnMessage(Kind.STRATEGY, bus_pb2.MapJob, "reasoning", ("instruction", "gateway"), True,
                "the response strategy, the moment it is complete"),
    TurnMessage(Kind.INSTRUCTION, agent_pb2.TurnEvent, "instruction", ("reasoning", "gateway"), False,
                "the acoustic instruction"),
    TurnMessage(Kind.SPEAK, bus_pb2.SpeakJob, "reasoning", ("talker", "gateway"), True,
                "one reply sentence with its instruction (the gateway counts the sentences)"),
    TurnMessage(Kind.AUDIO, agent_pb2.TurnEvent, "talker", ("gateway",), False, "speech of one sentence, in chunks"),
    TurnMessage(Kind.TIMING, agent_pb2.TurnEvent, "every stage", ("gateway",), False, "a stage's start and end"),
    TurnMessage(Kind.ERROR, agent_pb2.TurnEvent, "any stage", ("gateway",), False, "why the turn failed"),
    TurnMessage(Kind.ALIVE, bus_pb2.Heartbeat, "the replica holding a work item", ("gateway",), False,
                "a heartbeat every second while it works, and one when done"),
    TurnMessage(Kind.CANCEL, None, "gateway", ("*",), False, "stop this turn's work now, drop its late items"),
)

OF_KIND: dict[str, TurnMessage] = {m.kind: m for m in TURN_CONTRACT}
WORK_KINDS: tuple[str, ...] = tuple(m.kind for m in TURN_CONTRACT if m.work)
GATEWAY_READS: tuple[str, ...] = tuple(m.kind for m in TURN_CONTRACT if "gateway" in m.readers)
"""What the gateway subscribes to for a turn (never `request`: it must not count as a listener there, so that a
missing perception stage is reported at once)."""


def decode(kind: str, data: bytes) -> Message | None:
    """The message of a turn subject's kind, or None for a kind without one (or unknown)."""
    known = OF_KIND.get(kind)
    return None if known is None or known.message is None else known.message.FromString(data)


def finished_stage(event: agent_pb2.TurnEvent) -> str | None:
    """The stage whose part of the turn this forwarded event completes (the talker's ends with the turn)."""
    which = event.WhichOneof("event")
    if which in ("perception", "instruction"):
        return which
    if which == "timing" and event.timing.stage == "reasoning" and event.timing.sentences:
        return "reasoning"
    return None
