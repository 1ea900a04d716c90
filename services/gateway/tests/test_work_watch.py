"""The gateway's watch over a turn: which stages a turn still needs, and when a silent stage ends it."""

import asyncio
import time

from emoomni.core.bus import subject
from emoomni.core.contract import Kind, decode
from emoomni.core.registry import STAGES
from emoomni.services.gateway.core import StagePresence, WorkWatch
from emoomni.testing.bus import run_on_bus
from emoomni.v1 import agent_pb2, perception_pb2
from emoomni.v1.bus_pb2 import Heartbeat


def _silence(presence: StagePresence, stage: str, seconds: float) -> None:
    """Checks that the stage has failed for `seconds`, the others answering (what the readiness watch records)."""
    for name in STAGES:
        presence.checked(name, answered=True)
    time.sleep(seconds)
    for name in STAGES:
        presence.checked(name, answered=name != stage)


def test_a_needed_stage_without_replicas_ends_the_turn_and_a_finished_one_does_not():
    async def scenario(nats, bus):
        presence = StagePresence()
        watch = WorkWatch(stall_s=0.2, outages=bus.outages, presence=presence)
        watch.heartbeat(Heartbeat(stage="reasoning", work_id="w1"))
        _silence(presence, "instruction", 0.3)
        # reasoning is alive and beating, instruction is gone
        watch.heartbeat(Heartbeat(stage="reasoning", work_id="w1"))
        code, stage, message = watch.problem(bus)
        assert (code, stage) == ("UNAVAILABLE", "instruction")
        assert "no instruction replica" in message

        # the strategy is handed on, but no replica takes it: no heartbeat, no sign of life
        assert watch.problem(bus)[1] == "instruction", "an item nobody took is no sign of life"
        watch.heartbeat(Heartbeat(stage="instruction", work_id="w2", replica="host:1"))
        assert watch.problem(bus) is None, "a replica took it after all"
        watch.heartbeat(Heartbeat(stage="instruction", work_id="w2", done=True))
        watch.finished_part(agent_pb2.TurnEvent(instruction={"text": "Speak softly."}))
        assert watch.problem(bus) is None, "the turn already has its instruction"

        _silence(presence, "perception", 0.3)
        watch.heartbeat(Heartbeat(stage="reasoning", work_id="w1"))
        assert watch.problem(bus)[1] == "perception", "perception has not sent its result yet"
        watch.finished_part(agent_pb2.TurnEvent(perception=perception_pb2.PerceptionResult()))
        assert watch.problem(bus) is None, "a turn that has its perception does not need the stage"

    run_on_bus(scenario, name="watch-test")


def test_an_item_waiting_in_the_queue_is_not_a_dead_replica():
    """Work waits in the queue while every replica of its stage is busy, with no heartbeat: while the stage answers
    presence checks that is no reason to end the turn. An item whose replica died is no sign of life either, once
    its heartbeats are older than `stall_s`: then the stage's presence decides."""
    async def scenario(nats, bus):
        presence = StagePresence()
        watch = WorkWatch(stall_s=0.2, outages=bus.outages, presence=presence)
        # w1 was handed on, waiting in the queue: no heartbeat yet
        _silence(presence, "nobody", 0.3)
        assert watch.problem(bus) is None, "queued 0.3 s behind other turns, the stage is up"
        watch.heartbeat(Heartbeat(stage="reasoning", work_id="w1", replica="host:1"))
        time.sleep(0.3)  # its replica died; the stage has no replica any more
        _silence(presence, "reasoning", 0.3)
        assert watch.problem(bus)[1] == "reasoning"

    run_on_bus(scenario, name="watch-test")


def test_an_item_that_stopped_on_its_last_delivery_ends_the_turn():
    """It will not be handed out again (`nats.work_max_deliver`), so its stage being up does not help."""

    async def scenario(nats, bus):
        presence = StagePresence()
        watch = WorkWatch(stall_s=0.2, outages=bus.outages, presence=presence)
        watch.heartbeat(Heartbeat(stage="perception", work_id="w1", replica="host:1", delivery=2, max_deliver=3))
        time.sleep(0.3)
        _silence(presence, "nobody", 0.0)
        assert watch.problem(bus) is None, "a second delivery that stopped comes back a third time"
        watch.heartbeat(Heartbeat(stage="perception", work_id="w1", replica="host:2", delivery=3, max_deliver=3))
        time.sleep(0.3)
        _silence(presence, "nobody", 0.0)
        code, stage, message = watch.problem(bus)
        assert (code, stage) == ("UNAVAILABLE", "perception") and "as often as allowed" in message

    run_on_bus(scenario, name="watch-test")


def test_a_typed_turn_does_not_need_perception_and_a_short_silence_is_tolerated():
    presence = StagePresence()
    watch = WorkWatch(stall_s=0.5, outages=0, presence=presence)
    watch.starts_at("reasoning")
    assert watch.needed == {"reasoning", "instruction", "talker"}
    watch.finished_part(agent_pb2.TurnEvent(perception=perception_pb2.PerceptionResult()))
    timing = agent_pb2.StageTiming(stage="reasoning", sentences=2)
    watch.finished_part(agent_pb2.TurnEvent(timing=timing))
    assert watch.needed == {"instruction", "talker"}
    _silence(presence, "talker", 0.1)
    assert presence.silent_s("talker") < 0.5 and presence.silent_s("reasoning") == 0.0


def test_a_gateway_that_checks_nothing_counts_no_silence():
    """A stalled readiness watch (the gateway's own loop busy) must not look like stages that went away."""
    presence = StagePresence()
    presence.checked("talker", answered=True)
    time.sleep(0.2)
    assert presence.silent_s("talker") == 0.0


def test_health_counts_a_stage_gone_after_two_missed_checks():
    presence = StagePresence()
    assert presence.missing() == list(STAGES), "no stage has answered yet"
    for stage in STAGES:
        presence.checked(stage, answered=True)
    presence.checked("talker", answered=False)
    assert presence.missing() == [], "one slow answer on a loaded machine is not a missing stage"
    presence.checked("talker", answered=False)
    assert presence.missing() == ["talker"]
    presence.checked("talker", answered=True)
    assert presence.missing() == []


def test_a_replica_heartbeat_on_the_bus_is_a_typed_message_the_watch_reads():
    async def scenario(nats, bus):
        beats: asyncio.Queue = asyncio.Queue()

        async def on_beat(msg) -> None:
            beats.put_nowait(decode(Kind.ALIVE, msg.data))

        await bus.subscribe(subject("t1", Kind.ALIVE), on_beat)
        await bus.flush()
        watch = WorkWatch(stall_s=5.0, outages=bus.outages)
        await bus.alive(subject("t1", Kind.SPEAK), "talker", "w1", "busy", delivery=bus.max_deliver)
        beat = await asyncio.wait_for(beats.get(), 5)
        assert isinstance(beat, Heartbeat) and (beat.stage, beat.work_id, beat.done) == ("talker", "w1", False)
        assert beat.replica == bus.replica and beat.delivery == beat.max_deliver == bus.max_deliver
        watch.heartbeat(beat)
        assert watch.items["w1"][0] == "talker" and "w1" in watch.last_delivery  # its last try
        await bus.alive(subject("t1", Kind.SPEAK), "talker", "w1", "done")
        watch.heartbeat(await asyncio.wait_for(beats.get(), 5))
        assert "w1" not in watch.items

    run_on_bus(scenario, name="contract-test")
