"""The harness on a real stage: the instruction service (real MiniLM + shipped head) on a real nats-server, in this
process through RunningStage and as its own process through serve_stage; run_bus_test states the conversation."""

from __future__ import annotations

import grpc
import pytest

from emoomni.core.aio import run_async
from emoomni.core.bus import Kind, deadline_in
from emoomni.testing.bus import Send, run_bus_test
from emoomni.testing.stage import RunningStage
from emoomni.v1 import bus_pb2, instruction_pb2, instruction_pb2_grpc


def test_run_bus_test_sends_work_and_collects_the_stage_answer(nats_server, stack_config):
    job = bus_pb2.MapJob(turn_id="t1", strategy="Speak softly and slowly, to calm them down.", language="en",
                         deadline_unix_ns=deadline_in(60))

    async def scenario():
        async with RunningStage("instruction", stack_config, nats_server.url) as stage:
            return await run_bus_test(stage.bus, "t1", [Send(Kind.STRATEGY, job, "instruction")],
                                      expect=[Kind.STRATEGY, Kind.INSTRUCTION, Kind.TIMING])

    seen = dict(run_async(scenario()))
    instruction = seen[Kind.INSTRUCTION].instruction
    assert instruction.text.startswith("Speak ") and instruction.controls.rate_scale < 1.0
    assert seen[Kind.TIMING].timing.stage == "instruction"


def test_run_bus_test_fails_with_what_arrived(nats_server, stack_config):
    job = bus_pb2.MapJob(turn_id="t2", strategy="Speak gently.", language="en", deadline_unix_ns=deadline_in(-1))

    async def scenario():
        async with RunningStage("instruction", stack_config, nats_server.url) as stage:
            await run_bus_test(stage.bus, "t2", [Send(Kind.STRATEGY, job, "instruction")], expect=[Kind.INSTRUCTION])

    with pytest.raises(AssertionError, match=r"unexpected error.*DEADLINE_EXCEEDED"):
        run_async(scenario())


def test_serve_stage_runs_a_service_as_its_own_process(serve_stage):
    addr = serve_stage("instruction")
    with grpc.insecure_channel(addr) as channel:
        reply = instruction_pb2_grpc.InstructionStub(channel).Map(
            instruction_pb2.MapRequest(strategy="Whisper it, very quietly.", language="en"), timeout=30)
    assert reply.controls.energy_scale < 1.0
