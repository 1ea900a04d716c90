"""Gateway service: the public `Agent` gRPC API (unary request or chunked upload, streamed turn out; live
sessions)."""

from __future__ import annotations

import asyncio
import logging

import grpc
from grpc_health.v1 import health

from emoomni.core.bus import Bus, new_turn_id, valid_turn_id
from emoomni.core.media import MediaError
from emoomni.core.registry import STAGES
from emoomni.core.security import PathNotAllowed
from emoomni.core.service import StageService, error_message, set_serving
from emoomni.core.telemetry import context_from
from emoomni.services.gateway.admission import Admission, Refused, caller_of
from emoomni.services.gateway.core import GatewayCore, StagePresence, TurnFailed
from emoomni.services.gateway.live import LiveSessions, SessionError
from emoomni.v1 import agent_pb2, agent_pb2_grpc

log = logging.getLogger(__name__)
READINESS_POLL_S = 1.0


class GatewayService(StageService, agent_pb2_grpc.AgentServicer):
    name = "gateway"
    grpc_service = "emoomni.v1.Agent"
    # The turn span is the trace root (or continues the caller's traceparent), so no RPC interceptor span.
    trace_rpcs = False

    def load(self) -> None:
        from emoomni.services.gateway.listening import load_models

        self.listening_models = load_models()  # VAD + turn-end model for live sessions, 1-2 s

    async def attach(self, bus: Bus) -> None:
        self.bus = bus
        self.presence = StagePresence()
        self.core = GatewayCore(self.cfg, bus, self.presence)
        self.live = LiveSessions(self.cfg, self.core, self.listening_models)
        self.admission = Admission(self.cfg.limits.max_turns_in_flight, self.cfg.limits.max_turns_per_caller)

    def add_to_grpc(self, server: grpc.aio.Server) -> None:
        agent_pb2_grpc.add_AgentServicer_to_server(self, server)

    async def keep_health(self, health_servicer: health.aio.HealthServicer) -> None:
        """SERVING only while every stage has a live replica on the bus (NOT_SERVING from the start until then,
        and whenever a stage or the bus is gone), so a client that waits for health can send a turn."""
        self.missing: list[str] | None = None
        self._readiness = asyncio.create_task(self._watch_stages(health_servicer))

    async def _watch_stages(self, health_servicer: health.aio.HealthServicer) -> None:
        """One prober per stage: a stage slow to answer (busy on a loaded machine) must not delay the news that
        another one is gone, which running turns act on (`StagePresence`)."""
        changed = asyncio.Event()

        async def probe(stage: str) -> None:
            while True:
                self.presence.checked(stage, await self.bus.stage_alive(stage))
                changed.set()
                await asyncio.sleep(READINESS_POLL_S)

        probers = [asyncio.create_task(probe(stage)) for stage in STAGES]
        try:
            while True:
                await changed.wait()
                changed.clear()
                missing = self.presence.missing()
                if missing != self.missing:
                    await set_serving(health_servicer, [self.grpc_service], serving=not missing)
                    if missing:
                        log.warning("gateway NOT_SERVING: no live %s replica on the bus", ", ".join(missing))
                    else:
                        log.info("gateway SERVING: every stage has a live replica")
                    self.missing = missing
        finally:
            for prober in probers:
                prober.cancel()

    async def _serve_turn(self, request: agent_pb2.ConverseRequest, context: grpc.aio.ServicerContext):
        from opentelemetry import context as otel_context

        token = otel_context.attach(context_from(dict(context.invocation_metadata() or ())))
        # The caller's turn_id is only its label, echoed in the events: the bus knows the turn by an id made here,
        # so that no other call can receive, cancel or purge it by naming the same id.
        label = request.turn_id
        routed = agent_pb2.ConverseRequest()
        routed.CopyFrom(request)
        routed.turn_id = new_turn_id()
        try:
            if label and not valid_turn_id(label):
                raise MediaError("turn_id may only hold letters, digits, '-' and '_' (at most 64)")
            async for event in self.core.run_turn(routed):
                if label:
                    event.turn_id = label
                yield event
        except MediaError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error_message(exc))
        except PathNotAllowed as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, error_message(exc))
        except TurnFailed as exc:
            await context.abort(getattr(grpc.StatusCode, exc.code, grpc.StatusCode.INTERNAL), str(exc))
        finally:
            otel_context.detach(token)

    async def Converse(self, request: agent_pb2.ConverseRequest, context: grpc.aio.ServicerContext):
        try:
            with self.admission.hold(caller_of(context)):
                async for event in self._serve_turn(request, context):
                    yield event
        except Refused as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))

    async def ConverseUpload(self, request_iterator, context: grpc.aio.ServicerContext):
        try:
            with self.admission.hold(caller_of(context)):  # before the upload is read
                async for event in self._upload_then_turn(request_iterator, context):
                    yield event
        except Refused as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))

    async def _upload_then_turn(self, request_iterator, context: grpc.aio.ServicerContext):
        limit = self.cfg.limits.max_media_bytes
        start: agent_pb2.ConverseRequest | None = None
        parts: list[bytes] = []
        size = 0
        messages = aiter(request_iterator)
        while True:
            try:  # a caller that stops sending mid-upload does not hold its place for ever
                message = await asyncio.wait_for(anext(messages), self.cfg.limits.upload_idle_s)
            except StopAsyncIteration:
                break
            except TimeoutError:
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"the upload sent nothing for "
                                    f"{self.cfg.limits.upload_idle_s:.0f} s")
            which = message.WhichOneof("msg")
            if which == "start":
                if start is not None:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the upload sent `start` twice")
                start = message.start
            elif which == "chunk":
                if start is None:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the upload must begin with `start`")
                size += len(message.chunk.data)
                if size > limit:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                        f"the upload is over the {limit / 1e6:.0f} MB limit")
                parts.append(message.chunk.data)
        if start is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the upload sent no `start` message")
        request = agent_pb2.ConverseRequest()
        request.CopyFrom(start)
        request.media.data = b"".join(parts)
        async for event in self._serve_turn(request, context):
            yield event

    async def Session(self, request_iterator, context: grpc.aio.ServicerContext):
        try:
            async for event in self.live.run(request_iterator, caller_of(context)):
                yield event
        except SessionError as exc:
            await context.abort(getattr(grpc.StatusCode, exc.code, grpc.StatusCode.INTERNAL), str(exc))
