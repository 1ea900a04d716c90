"""Talker service: gRPC `Talker.Speak` / `ListTalkers` / `SetActiveTalker`, the bus worker that speaks reply
sentences, and the `emoomni.v1.control.talker` subscription that hot-swaps the engine on every replica."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import socket

import grpc

from emoomni.core.aio import iterate_in_thread
from emoomni.core.bus import TALKER_CONTROL, TALKER_STATUS, Bus, Kind
from emoomni.core.service import StageService, StageTimeout, error_message, now_ns, stage_deadline
from emoomni.sdk.talker import CancelToken
from emoomni.services.talker.core import TalkerCore, list_talkers
from emoomni.services.talker.interface import Activation, SpeechEngine
from emoomni.services.talker.registry import UnknownTalker
from emoomni.v1 import agent_pb2, bus_pb2, talker_pb2, talker_pb2_grpc

log = logging.getLogger(__name__)


class TalkerService(StageService, talker_pb2_grpc.TalkerServicer):
    name = "talker"
    grpc_service = "emoomni.v1.Talker"

    core: SpeechEngine

    def load(self) -> None:
        if self.cfg.talker.backend == "triton":
            from emoomni.services.talker.triton_backend import TritonTalkerCore

            self.core = TritonTalkerCore(self.cfg)
        else:
            self.core = TalkerCore(self.cfg)
        self.core.warmup()
        self.replica = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    async def attach(self, bus: Bus) -> None:
        self.bus = bus
        await bus.worker(Kind.SPEAK, "talker",
                         self.job_handler("talker", bus_pb2.SpeakJob.FromString, self._on_speak),
                         concurrent=self.cfg.talker.concurrency)
        await bus.subscribe(TALKER_CONTROL, self._on_control)
        await bus.flush()

    def add_to_grpc(self, server: grpc.aio.Server) -> None:
        talker_pb2_grpc.add_TalkerServicer_to_server(self, server)

    def _stream(self, text, instruction, language, talker, sentence_index, seconds, turn_id=""):
        """The engine's chunks as they are made; a chunk later than `seconds` ends the sentence with an error.
        A caller that stops listening (a cancelled RPC, a turn cut off) cancels the synthesis too."""
        ctx = contextvars.copy_context()  # here, on the event loop, where the caller's span is current
        cancel = CancelToken()
        return iterate_in_thread(
            lambda: _in_context(ctx, lambda: self.core.speak(text, instruction, language, talker, sentence_index,
                                                             turn_id, cancel)),
            item_timeout_s=seconds,
            on_timeout=lambda: StageTimeout(f"speaking sentence {sentence_index} took longer than {seconds:.1f} s"),
            on_stop=cancel.cancel)

    async def _on_speak(self, turn_id: str, job: bus_pb2.SpeakJob) -> None:
        start = now_ns()
        seconds = stage_deadline(job.deadline_unix_ns, self.cfg.deadlines.talker_sentence_s)
        with self.tracer.start_as_current_span("talker.compute") as span:
            span.set_attribute("emoomni.sentence_index", job.sentence_index)
            async for chunk in self._stream(job.text, job.instruction, job.language, job.talker, job.sentence_index,
                                            seconds, turn_id):
                span.set_attribute("emoomni.talker", chunk.talker)
                await self.publish_event(turn_id, Kind.AUDIO, agent_pb2.TurnEvent(audio=chunk))
        await self.publish_timing(turn_id, start, now_ns(), sentence_index=job.sentence_index)

    async def _activate(self, name: str) -> Activation:
        with self.tracer.start_as_current_span("talker.activate") as span:
            span.set_attribute("emoomni.talker", name)
            result = await asyncio.to_thread(self.core.activate, name)
        log.info("talker switched %s -> %s (load %.0f ms)", result.previous, result.active, result.load_ms)
        return result

    async def _on_control(self, msg) -> None:
        control = bus_pb2.TalkerControl.FromString(msg.data)
        status = bus_pb2.TalkerStatus(replica=self.replica, request_id=control.request_id, previous=self.core.active)
        try:
            result = await self._activate(control.active)
            status.active, status.load_ms = result.active, result.load_ms
        except Exception as exc:  # reported to the sender; this replica keeps its engine
            status.active, status.error = self.core.active, error_message(exc)
        await self.bus.publish(TALKER_STATUS, status)

    async def Speak(self, request: talker_pb2.SpeakRequest, context: grpc.aio.ServicerContext):
        try:
            async for chunk in self._stream(request.text, request.instruction, request.language or "en",
                                            request.talker, 0, self.cfg.deadlines.talker_sentence_s * 10):
                yield chunk
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error_message(exc))

    async def SetActiveTalker(self, request: talker_pb2.SetActiveTalkerRequest, context: grpc.aio.ServicerContext):
        try:
            result = await self._activate(request.name)
        except UnknownTalker as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error_message(exc))
        except Exception as exc:  # the engine failed to load; the old one stays active
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"talker {request.name!r} could not load: "
                                f"{error_message(exc)}")
        return talker_pb2.SetActiveTalkerResponse(previous=result.previous, active=result.active,
                                                  load_ms=result.load_ms)

    async def ListTalkers(self, request, context):
        return list_talkers(self.core)


def _in_context(ctx: contextvars.Context, make):
    """Run a generator's every step in `ctx`: the worker thread then sees the caller's trace context, which a
    Triton backend forwards as `traceparent` (an executor thread starts with an empty context)."""
    items = ctx.run(make)
    while True:
        try:
            item = ctx.run(next, items)
        except StopIteration:
            return
        yield item

