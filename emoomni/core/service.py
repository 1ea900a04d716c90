"""What every stage service shares: a gRPC server (health, reflection, tracing) and NATS workers that
report errors and timings as turn events instead of dropping the turn.

A service reads top-down: its server.py subclasses StageService, its core.py does the work, its backends/
hold the models.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from nats.aio.msg import Msg
from opentelemetry import trace

from emoomni.core import bus as busmod
from emoomni.core.bus import Bus, Kind, span_from_msg, subject
from emoomni.core.config import SecurityConfig, StackConfig
from emoomni.core.limits import MAX_GRPC_MESSAGE, MAX_REQUEST_MESSAGE
from emoomni.core.media import MediaError
from emoomni.core.security import PathNotAllowed, check_media_path, server_interceptors
from emoomni.core.telemetry import tracer_for
from emoomni.v1 import agent_pb2, media_pb2

log = logging.getLogger(__name__)


class StageTimeout(Exception):
    pass


def grpc_code_for(exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, PathNotAllowed):
        return grpc.StatusCode.PERMISSION_DENIED
    if isinstance(exc, (MediaError, ValueError, KeyError)):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, (StageTimeout, asyncio.TimeoutError, TimeoutError)):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(exc, busmod.StageUnavailable):
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL


def error_message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


class StageService(ABC):
    """One stage: loads its core, serves it over gRPC, and works the bus."""

    name: str
    grpc_service: str  # full name, e.g. "emoomni.v1.Perception"
    # In one process (`emoomni chat`), stages load side by side unless this is set.
    load_alone: bool = False

    def __init__(self, cfg: StackConfig):
        self.cfg = cfg
        self.tracer = tracer_for(f"{cfg.service_name_prefix}-{self.name}")
        self.bus: Bus | None = None

    @abstractmethod
    def load(self) -> None:
        """Build the core and warm its models (blocking; runs before the service reports SERVING)."""

    @abstractmethod
    async def attach(self, bus: Bus) -> None:
        """Subscribe the stage's workers."""

    @abstractmethod
    def add_to_grpc(self, server: grpc.aio.Server) -> None:
        """Register the stage's gRPC servicer."""

    async def keep_health(self, health_servicer: health.aio.HealthServicer) -> None:
        """Report SERVING: a stage is ready once loaded and on the bus (the gateway overrides this, as it is
        ready only while every stage is)."""
        await set_serving(health_servicer, [self.grpc_service])

    # Helpers for workers -------------------------------------------------------------------------

    async def media_source(self, media: media_pb2.MediaInput) -> tuple[str | None, bytes | None]:
        """(path, data) of a clip: a path or inline bytes as sent, or an upload fetched from the bus's store."""
        which = media.WhichOneof("source")
        if which == "path":
            return check_media_path(media.path, self.cfg.security.media_roots), None
        if which == "data":
            return None, media.data
        if which == "object_name":
            store = await self.bus.media_store(self.cfg.nats.media_bucket, self.cfg.nats.media_ttl_s)
            try:
                result = await store.get(media.object_name)
            except Exception as exc:
                raise MediaError(f"the uploaded media {media.object_name!r} is no longer available") from exc
            return None, result.data
        raise MediaError("no media given: send a path, inline bytes or an upload")

    async def forget_upload(self, media: media_pb2.MediaInput) -> None:
        """Delete an uploaded clip from the bus's store once its last reader is done (the TTL is the backstop)."""
        if media.WhichOneof("source") == "object_name":
            store = await self.bus.media_store(self.cfg.nats.media_bucket, self.cfg.nats.media_ttl_s)
            with contextlib.suppress(Exception):
                await store.delete(media.object_name)

    async def publish_event(self, turn_id: str, kind: str, event: agent_pb2.TurnEvent) -> None:
        event.turn_id = turn_id
        await self.bus.publish(subject(turn_id, kind), event)

    async def publish_timing(self, turn_id: str, start_ns: int, end_ns: int, sentence_index: int = 0,
                             sentences: int = 0) -> None:
        timing = agent_pb2.StageTiming(stage=self.name, start_unix_ns=start_ns, end_unix_ns=end_ns,
                                       sentence_index=sentence_index, sentences=sentences)
        await self.publish_event(turn_id, Kind.TIMING, agent_pb2.TurnEvent(timing=timing))

    async def publish_error(self, turn_id: str, exc: BaseException) -> None:
        error = agent_pb2.TurnError(code=grpc_code_for(exc).name, message=error_message(exc), stage=self.name)
        await self.publish_event(turn_id, Kind.ERROR, agent_pb2.TurnEvent(error=error))

    def job_handler(self, span_name: str, parse: Callable[[bytes], object],
                    work: Callable[[str, object], Awaitable[None]]) -> Callable[[Msg], Awaitable[None]]:
        """Wrap a worker: continue the trace, parse the job, turn any failure into an error event."""

        async def handle(msg: Msg) -> None:
            turn_id = busmod.turn_id_of(msg.subject)
            with span_from_msg(self.tracer, span_name, msg, **{"emoomni.turn_id": turn_id}) as span:
                try:
                    job = parse(msg.data)
                    left = busmod.seconds_left(getattr(job, "deadline_unix_ns", 0))
                    if left <= 0:
                        raise StageTimeout(f"{self.name}: the turn's deadline passed before the stage started")
                    await work(turn_id, job)
                except Exception as exc:
                    span.record_exception(exc)
                    span.set_status(trace.Status(trace.StatusCode.ERROR, error_message(exc)))
                    if not isinstance(exc, MediaError):
                        log.exception("%s failed on turn %s", self.name, turn_id)
                    with contextlib.suppress(Exception):
                        await self.publish_error(turn_id, exc)

        return handle


def stage_deadline(job_deadline_ns: int, stage_limit_s: float) -> float:
    """Seconds this stage may take: its own limit, capped by what is left of the turn."""
    return max(0.0, min(stage_limit_s, busmod.seconds_left(job_deadline_ns)))


async def run_with_deadline(coro: Awaitable, seconds: float, what: str):
    try:
        return await asyncio.wait_for(coro, timeout=seconds)
    except TimeoutError as exc:
        raise StageTimeout(f"{what} took longer than {seconds:.1f} s") from exc


def now_ns() -> int:
    return time.time_ns()


def grpc_server(services_names: list[str], traced: bool = True,
                security: SecurityConfig | None = None) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """An aio gRPC server with health checking, reflection, the bearer-token check of `security` and (if
    `traced`) OpenTelemetry RPC spans. It binds its port exclusively: without SO_REUSEPORT a second stack
    cannot silently share the port and split the traffic."""
    interceptors = server_interceptors(security) if security else []
    if traced:
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        interceptors.append(aio_server_interceptor())
    server = grpc.aio.server(interceptors=interceptors, options=[
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", MAX_REQUEST_MESSAGE),
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE)])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*services_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    return server, health_servicer


async def set_serving(health_servicer: health.aio.HealthServicer, names: list[str], serving: bool = True) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ["", *names]:
        await health_servicer.set(name, status)
