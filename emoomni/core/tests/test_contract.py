"""The turn contract is the one place that says what travels on a turn's subjects: every kind decodes to its
message, and the gateway reads what the table says it reads."""

from __future__ import annotations

from emoomni.core.contract import GATEWAY_READS, OF_KIND, TURN_CONTRACT, WORK_KINDS, Kind, decode, finished_stage
from emoomni.v1 import agent_pb2


def test_every_kind_is_in_the_contract_once_and_decodes_to_its_message():
    kinds = [value for name, value in vars(Kind).items() if name.isupper()]
    assert sorted(kinds) == sorted(OF_KIND) and len(TURN_CONTRACT) == len(kinds)
    for part in TURN_CONTRACT:
        if part.message is None:
            assert decode(part.kind, b"") is None
            continue
        assert isinstance(decode(part.kind, part.message().SerializeToString()), part.message)
    assert decode("no-such-kind", b"x") is None
    assert WORK_KINDS == (Kind.REQUEST, Kind.PERCEPTION, Kind.STRATEGY, Kind.SPEAK)
    assert Kind.REQUEST not in GATEWAY_READS and Kind.ALIVE in GATEWAY_READS


def test_the_events_that_finish_a_stage_part():
    assert finished_stage(agent_pb2.TurnEvent(perception={})) == "perception"
    assert finished_stage(agent_pb2.TurnEvent(instruction={"text": "softly"})) == "instruction"
    assert finished_stage(agent_pb2.TurnEvent(timing={"stage": "reasoning", "sentences": 2})) == "reasoning"
    assert finished_stage(agent_pb2.TurnEvent(timing={"stage": "reasoning"})) is None
    assert finished_stage(agent_pb2.TurnEvent(audio={})) is None
