"""A stage that fails or overruns its deadline ends the turn with an error event on the bus, never a hang.

Runs a real nats-server (the harness's `nats_server`) and the real StageService worker machinery; the stage's work
is a small function written here, because the property under test is the framework's, whatever the model does."""

from __future__ import annotations

import asyncio

import grpc

from emoomni.core.bus import Bus, Kind, deadline_in
from emoomni.core.config import load_config
from emoomni.core.service import StageService, run_with_deadline
from emoomni.testing.bus import Send, run_bus_test
from emoomni.testing.stage import RunningStage
from emoomni.v1 import agent_pb2, bus_pb2, media_pb2


class SlowStage(StageService):
    name = "slowstage"
    grpc_service = "none"

    def __init__(self, cfg, behaviour):
        super().__init__(cfg)
        self.behaviour = behaviour

    def load(self) -> None:
        pass

    def add_to_grpc(self, server: grpc.aio.Server) -> None:
        pass

    async def attach(self, bus: Bus) -> None:
        self.bus = bus
        await bus.worker(Kind.REQUEST, "slowstage", self.job_handler("slowstage", bus_pb2.TurnRequest.FromString,
                                                                       self.work))

    async def work(self, turn_id, job):
        if self.behaviour == "crash":
            raise RuntimeError("model exploded")
        await run_with_deadline(asyncio.sleep(5), 0.2, "slow work")


async def _turn(nats_url: str, behaviour: str, deadline_s: float = 60) -> agent_pb2.TurnError:
    """The stage on the bus (RunningStage), one work item sent, the turn's error event expected (run_bus_test)."""
    request = bus_pb2.TurnRequest(turn_id="t1", media=media_pb2.MediaInput(path="x"),
                                  deadline_unix_ns=deadline_in(deadline_s))
    stage = SlowStage(load_config(env={}), behaviour)
    async with RunningStage("slowstage", stage.cfg, nats_url, service=stage) as running:
        seen = await run_bus_test(running.bus, "t1", [Send(Kind.REQUEST, request, "slowstage")], expect=[Kind.ERROR],
                                  timeout_s=10)
    return next(message.error for kind, message in seen if kind == Kind.ERROR)


def test_a_crashing_stage_reports_internal(nats_server):
    error = asyncio.run(_turn(nats_server.url, "crash"))
    assert error.code == "INTERNAL" and "model exploded" in error.message and error.stage == "slowstage"


def test_an_overrunning_stage_reports_deadline_exceeded(nats_server):
    error = asyncio.run(_turn(nats_server.url, "slow"))
    assert error.code == "DEADLINE_EXCEEDED" and "slow work" in error.message


def test_work_arriving_after_the_turn_deadline_is_refused(nats_server):
    error = asyncio.run(_turn(nats_server.url, "crash", deadline_s=-1))
    assert error.code == "DEADLINE_EXCEEDED" and "deadline passed" in error.message
