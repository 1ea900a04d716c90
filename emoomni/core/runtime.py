"""Running services: one per process (`emoomni serve X`, started by `emoomni up`) or all in one process
over a private nats-server (`EmbeddedAgent`, behind `emoomni chat`). The same service classes run either
way; only the wiring differs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

from emoomni.core.bus import Bus
from emoomni.core.config import StackConfig
from emoomni.core.natsserver import NatsServer
from emoomni.core.registry import service_class, service_names
from emoomni.core.service import StageService, grpc_server, set_serving
from emoomni.core.telemetry import shutdown_tracing

log = logging.getLogger(__name__)

async def start_service(name: str, cfg: StackConfig, nats_url: str, grpc_addr: str | None,
                        service: StageService | None = None):
    """Load a service's models, join the bus and (optionally) serve gRPC. Returns (service, server, bus)."""
    if service is None:
        service = service_class(name)(cfg)
        await asyncio.to_thread(service.load)
    bus = await Bus.connect(nats_url, name=f"emoomni-{name}")
    await service.attach(bus)
    server = None
    if grpc_addr:
        server, health = grpc_server([service.grpc_service], traced=getattr(service, "trace_rpcs", True))
        service.add_to_grpc(server)
        if server.add_insecure_port(grpc_addr) == 0:
            raise OSError(f"cannot listen on {grpc_addr}")
        await server.start()
        await set_serving(health, [service.grpc_service])
    return service, server, bus


async def serve_forever(name: str, cfg: StackConfig) -> None:
    """`emoomni serve NAME`: one service in this process until SIGINT/SIGTERM."""
    addr = getattr(cfg.services, name)
    _, server, bus = await start_service(name, cfg, cfg.nats.url, addr)
    log.info("%s serving gRPC on %s, bus %s", name, addr, cfg.nats.url)
    print(f"emoomni {name}: ready on {addr}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=2)
    await bus.close()
    shutdown_tracing()


class EmbeddedAgent:
    """All services in this process over a private nats-server; `core` runs turns without gRPC."""

    def __init__(self, cfg: StackConfig):
        self.cfg = cfg
        self.nats = NatsServer()
        self._parts: list = []

    async def __aenter__(self) -> EmbeddedAgent:
        self.nats.start()
        try:
            names = service_names()
            services = [service_class(name)(self.cfg) for name in names]
            # Model loading is mostly native code: loading the stages side by side saves start-up time. A stage
            # that asks to load alone goes first (transformers' lazy imports are not safe across threads).
            for service in services:
                if service.load_alone:
                    await asyncio.to_thread(service.load)
            await asyncio.gather(*(asyncio.to_thread(s.load) for s in services if not s.load_alone))
            for name, service in zip(names, services, strict=True):
                self._parts.append(await start_service(name, self.cfg, self.nats.url, None, service))
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        self.core = dict(zip(names, (part[0] for part in self._parts), strict=True))["gateway"].core
        return self

    async def __aexit__(self, *exc) -> None:
        for _, server, bus in reversed(self._parts):
            if server:
                await server.stop(grace=1)
            with contextlib.suppress(Exception):
                await bus.close()
        self._parts.clear()
        self.nats.stop()

    def run_turn(self, request) -> AsyncIterator:
        return self.core.run_turn(request)


def run_stack(cfg: StackConfig, config_path: str | None, ready_timeout_s: float = 600.0) -> int:
    """`emoomni up`: nats-server on the configured port and every service as its own process."""
    from urllib.parse import urlparse

    url = urlparse(cfg.nats.url)
    nats = NatsServer(host=url.hostname or "127.0.0.1", port=url.port or 4222, monitor_port=cfg.nats.monitor_port)
    nats.start()
    print(f"nats-server on {cfg.nats.url} (monitoring http://{nats.host}:{cfg.nats.monitor_port})", flush=True)
    env = dict(os.environ, NATS_URL=cfg.nats.url)
    if config_path:
        env["EMOOMNI_CONFIG"] = str(config_path)
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name in service_names():
            procs[name] = subprocess.Popen([sys.executable, "-m", "emoomni", "serve", name], env=env,
                                           start_new_session=True)
        if not wait_until_serving({n: getattr(cfg.services, n) for n in procs}, procs, ready_timeout_s):
            return 1
        print(f"EmoOmni is up: Agent API on {cfg.services.gateway}. Ctrl-C stops everything.", flush=True)
        while all(p.poll() is None for p in procs.values()):
            time.sleep(0.5)
        dead = [n for n, p in procs.items() if p.poll() is not None]
        print(f"service(s) exited: {', '.join(dead)}; stopping the stack", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        nats.stop()


def wait_until_serving(addrs: dict[str, str], procs: dict[str, subprocess.Popen] | None = None,
                       timeout_s: float = 600.0) -> bool:
    """Poll each service's gRPC health check until all report SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout_s
    pending = dict(addrs)
    while pending and time.monotonic() < deadline:
        for name, addr in list(pending.items()):
            if procs and procs[name].poll() is not None:
                print(f"{name} exited with code {procs[name].returncode} while starting", file=sys.stderr)
                return False
            try:
                with grpc.insecure_channel(addr) as channel:
                    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    pending.pop(name)
            except grpc.RpcError:
                pass
        time.sleep(0.3)
    if pending:
        print(f"not serving after {timeout_s:.0f} s: {', '.join(pending)}", file=sys.stderr)
    return not pending
