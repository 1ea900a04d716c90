"""Instruction service: gRPC `Instruction.Map` and the bus worker for finished strategies."""

from __future__ import annotations

import asyncio

import grpc

from emoomni.core.bus import Bus, Kind
from emoomni.core.service import StageService, error_message, now_ns, run_with_deadline, stage_deadline
from emoomni.services.instruction.core import InstructionCore
from emoomni.v1 import agent_pb2, bus_pb2, instruction_pb2, instruction_pb2_grpc


class InstructionService(StageService, instruction_pb2_grpc.InstructionServicer):
    name = "instruction"
    grpc_service = "emoomni.v1.Instruction"

    def load(self) -> None:
        self.core = InstructionCore(self.cfg)
        self.core.warmup()

    async def attach(self, bus: Bus) -> None:
        self.bus = bus
        await bus.worker(Kind.STRATEGY, "instruction",
                         self.job_handler("instruction", bus_pb2.MapJob.FromString, self._on_strategy))

    def add_to_grpc(self, server: grpc.aio.Server) -> None:
        instruction_pb2_grpc.add_InstructionServicer_to_server(self, server)

    async def _on_strategy(self, turn_id: str, job: bus_pb2.MapJob) -> None:
        start = now_ns()
        with self.tracer.start_as_current_span("instruction.compute"):
            seconds = stage_deadline(job.deadline_unix_ns, self.cfg.deadlines.instruction_s)
            acoustic = await run_with_deadline(asyncio.to_thread(self.core.map, job.strategy, job.language),
                                               seconds, "instruction mapping")
        end = now_ns()
        await self.publish_event(turn_id, Kind.INSTRUCTION, agent_pb2.TurnEvent(instruction=acoustic))
        await self.publish_timing(turn_id, start, end)

    async def Map(self, request: instruction_pb2.MapRequest, context: grpc.aio.ServicerContext):
        try:
            return await asyncio.to_thread(self.core.map, request.strategy, request.language)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error_message(exc))
