"""Gateway service: the public `Agent` gRPC API (unary request or chunked upload, streamed turn out)."""

from __future__ import annotations

import grpc

from emoomni.core.bus import Bus
from emoomni.core.media import MediaError
from emoomni.core.service import StageService, error_message
from emoomni.core.telemetry import context_from
from emoomni.services.gateway.core import GatewayCore, TurnFailed
from emoomni.v1 import agent_pb2, agent_pb2_grpc


class GatewayService(StageService, agent_pb2_grpc.AgentServicer):
    name = "gateway"
    grpc_service = "emoomni.v1.Agent"
    # The turn span is the trace root (or continues the caller's traceparent), so no RPC interceptor span.
    trace_rpcs = False

    def load(self) -> None:
        pass

    async def attach(self, bus: Bus) -> None:
        self.bus = bus
        self.core = GatewayCore(self.cfg, bus)

    def add_to_grpc(self, server: grpc.aio.Server) -> None:
        agent_pb2_grpc.add_AgentServicer_to_server(self, server)

    async def _serve_turn(self, request: agent_pb2.ConverseRequest, context: grpc.aio.ServicerContext):
        from opentelemetry import context as otel_context

        token = otel_context.attach(context_from(dict(context.invocation_metadata() or ())))
        try:
            async for event in self.core.run_turn(request):
                yield event
        except MediaError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error_message(exc))
        except TurnFailed as exc:
            await context.abort(getattr(grpc.StatusCode, exc.code, grpc.StatusCode.INTERNAL), str(exc))
        finally:
            otel_context.detach(token)

    async def Converse(self, request: agent_pb2.ConverseRequest, context: grpc.aio.ServicerContext):
        async for event in self._serve_turn(request, context):
            yield event

    async def ConverseUpload(self, request_iterator, context: grpc.aio.ServicerContext):
        limit = self.cfg.limits.max_media_bytes
        start: agent_pb2.ConverseRequest | None = None
        parts: list[bytes] = []
        size = 0
        async for message in request_iterator:
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
