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
from emoomni.core.natsauth import bus_users, service_password
from emoomni.core.natsserver import NatsServer
from emoomni.core.private_files import redacted_url
from emoomni.core.registry import service_class, service_names
from emoomni.core.security import InsecureListen, bind, check_listen
from emoomni.core.service import StageService, grpc_server, set_serving
from emoomni.core.telemetry import shutdown_tracing

log = logging.getLogger(__name__)

EXIT_CONFIG = 2  # `emoomni serve` refused its configuration (e.g. an unsafe listen address)
EXIT_PORT_BUSY = 3  # `emoomni serve` could not bind its gRPC port

async def start_service(name: str, cfg: StackConfig, nats_url: str, grpc_addr: str | None,
                        service: StageService | None = None):
    """Load a service's models, join the bus and (optionally) serve gRPC. Returns (service, server, bus).

    A `service` passed in is already loaded. The gRPC port is bound before the models load, so a taken port or
    an unsafe address fails in a second."""
    preloaded = service is not None
    service = service or service_class(name)(cfg)
    server = health = None
    if grpc_addr:
        check_listen(grpc_addr, cfg.security)
        server, health = grpc_server([service.grpc_service], traced=getattr(service, "trace_rpcs", True),
                                     security=cfg.security)
        service.add_to_grpc(server)
        bind(server, grpc_addr, cfg.security)
    if not preloaded:
        await asyncio.to_thread(service.load)
    bus = await Bus.connect(nats_url, name=f"emoomni-{name}", user=cfg.nats.user, password=cfg.nats.password,
                            tls_ca=nats_tls_ca(cfg), ack_wait_s=cfg.nats.work_ack_wait_s,
                            max_deliver=cfg.nats.work_max_deliver)
    await service.attach(bus)
    await bus.answer_presence(name)
    if server is not None:
        await set_serving(health, [service.grpc_service], serving=False)  # until keep_health says otherwise
        await server.start()
        await service.keep_health(health)
    return service, server, bus


def nats_tls_ca(cfg: StackConfig) -> str:
    """The CA to verify a TLS nats-server with: the stack's own when the URL asks for TLS."""
    if not cfg.nats.url.startswith("tls://"):
        return ""
    return cfg.security.tls.ca or cfg.security.tls.cert


async def serve_forever(name: str, cfg: StackConfig) -> int:
    """`emoomni serve NAME`: one service in this process until SIGINT/SIGTERM. Exit codes: 0 stopped,
    EXIT_PORT_BUSY when the gRPC port is taken, EXIT_CONFIG when the listen address is unsafe."""
    addr = getattr(cfg.services, name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        _, server, bus = await start_service(name, cfg, cfg.nats.url, addr)
    except InsecureListen as exc:
        print(f"emoomni {name}: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"emoomni {name}: {exc}", file=sys.stderr, flush=True)
        return EXIT_PORT_BUSY
    log.info("%s serving gRPC on %s, bus %s", name, addr, redacted_url(cfg.nats.url))
    print(f"emoomni {name}: ready on {addr}", flush=True)
    await stop.wait()
    # Bounded steps: a model thread still busy with a turn must not hold the process past the stack's
    # shutdown budget (the caller's stream has already ended with the server).
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.stop(grace=1), timeout=2)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(bus.close(), timeout=1)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.to_thread(shutdown_tracing), timeout=2)
    return 0


async def serve_process(name: str, cfg: StackConfig) -> None:
    """`emoomni serve NAME` as a process: ends it as soon as the service has stopped, without waiting for
    model threads still busy with abandoned work (they would delay the exit by tens of seconds)."""
    code = await serve_forever(name, cfg)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class EmbeddedAgent:
    """All services in this process over a private nats-server; `core` runs turns without gRPC."""

    def __init__(self, cfg: StackConfig):
        # In one process the caller is the local user, who may read any of their own files.
        self.cfg = cfg.model_copy(deep=True)
        self.cfg.security.media_roots = ["/"]
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
        self.services = dict(zip(names, (part[0] for part in self._parts), strict=True))
        self.gateway = self.services["gateway"]
        self.core = self.gateway.core
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

    def session_stream(self):
        """Opens a live session on this agent's gateway: session inputs in, session events out (what
        `emoomni.sdk.agent.LocalAgent` wraps)."""
        return self.gateway.live.run

    async def talkers(self):
        """The talker engines, as the talker service's `ListTalkers` answers them."""
        from emoomni.v1 import talker_pb2

        return await self.services["talker"].ListTalkers(talker_pb2.ListTalkersRequest(), None)


def run_stack(cfg: StackConfig, config_path: str | None, ready_timeout_s: float = 600.0) -> int:
    """`emoomni up`: a private nats-server and every service as its own supervised process (emoomni/supervisor.py).

    Exits at once, naming the port, when a port is taken; refuses an unsafe listen address; restarts crashed
    children; stops everything within seconds on SIGTERM/Ctrl-C, and its children die with it even on SIGKILL."""
    import secrets
    import tempfile
    from urllib.parse import urlparse

    from emoomni.core.supervisor import GiveUp, PortBusy, Supervisor, die_with_parent, ensure_port_free

    url = urlparse(cfg.nats.url)
    nats_host, nats_port = url.hostname or "127.0.0.1", url.port or 4222
    addrs = {name: getattr(cfg.services, name) for name in service_names()}
    tls = cfg.security.tls
    try:
        for addr in addrs.values():
            check_listen(addr, cfg.security)
        if not tls.enabled:
            check_listen(f"{nats_host}:{nats_port}", cfg.security)
        ports = [(nats_host, nats_port, "nats-server")]
        if cfg.nats.monitor_port:
            ports.append((nats_host, cfg.nats.monitor_port, "nats-server monitoring"))
        for name, addr in addrs.items():
            host, _, port = addr.rpartition(":")
            ports.append((host.strip("[]") or "0.0.0.0", int(port), f"{name} gRPC"))
        for host, port, what in ports:
            ensure_port_free(host, port, what)
    except (InsecureListen, PortBusy) as exc:
        print(f"emoomni up: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG if isinstance(exc, InsecureListen) else 1

    # The bus is private to this stack: only clients holding these credentials may join it.
    user, password = cfg.nats.user or "emoomni", cfg.nats.password or secrets.token_urlsafe(24)
    store = None if cfg.nats.store_dir else tempfile.TemporaryDirectory(prefix="emoomni-up-")
    me = os.getpid()
    # One bus user per service, with only the subjects its stage needs; the stack's own user keeps every right.
    users = bus_users(cfg, user, password, list(addrs))
    nats = NatsServer(host=nats_host, port=nats_port, monitor_port=cfg.nats.monitor_port,
                      store_dir=cfg.nats.store_dir or store.name, user=user, password=password, users=users,
                      tls_cert=tls.cert if tls.enabled else "", tls_key=tls.key if tls.enabled else "",
                      preexec_fn=die_with_parent(me))
    env = dict(os.environ, NATS_URL=f"{'tls' if tls.enabled else 'nats'}://{nats_host}:{nats_port}",
               EMOOMNI_NATS_USER=user, EMOOMNI_NATS_PASSWORD=password)
    if config_path:
        env["EMOOMNI_CONFIG"] = str(config_path)
    supervisor = Supervisor(cfg.supervision)
    supervisor.add("nats-server", lambda: nats.start().proc)
    for name in addrs:
        own = dict(env, EMOOMNI_NATS_USER=name, EMOOMNI_NATS_PASSWORD=service_password(password, name))
        supervisor.add(name, lambda name=name, own=own: subprocess.Popen(
            [sys.executable, "-m", "emoomni", "serve", name], env=own, start_new_session=True,
            preexec_fn=die_with_parent(me)), fatal_codes=(EXIT_CONFIG, EXIT_PORT_BUSY))

    def stop_signal(signum, frame):
        raise KeyboardInterrupt

    # SIGINT too, explicitly: a process started in the background by a non-interactive shell inherits SIGINT as
    # ignored, and Python keeps it so; `kill -INT` (or a test's Ctrl-C) would then do nothing.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop_signal)
    try:
        supervisor.start_all()
        print(f"nats-server on {env['NATS_URL']} (monitoring http://{nats_host}:{cfg.nats.monitor_port})", flush=True)
        deadline = time.monotonic() + ready_timeout_s
        while not all(serving(addr, cfg) for addr in addrs.values()):
            if time.monotonic() > deadline:
                print(f"emoomni up: not serving after {ready_timeout_s:.0f} s", file=sys.stderr, flush=True)
                return 1
            supervisor.poll()
            time.sleep(0.3)
        print(f"EmoOmni is up: Agent API on {cfg.services.gateway}. Ctrl-C stops everything.", flush=True)
        supervisor.served = True
        while True:
            supervisor.poll()
            time.sleep(0.2)
    except GiveUp as exc:
        print(f"emoomni up: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        supervisor.stop()
        nats.stop()
        if store:
            store.cleanup()


def serving(addr: str, cfg: StackConfig | None = None) -> bool:
    """Whether the gRPC server at `addr` reports SERVING (health needs no token; TLS per `cfg`)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from emoomni.core.security import stack_channel

    try:
        with (stack_channel(addr, cfg) if cfg else grpc.insecure_channel(addr)) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def wait_until_serving(addrs: dict[str, str], procs: dict[str, subprocess.Popen] | None = None,
                       timeout_s: float = 600.0, cfg: StackConfig | None = None) -> bool:
    """Poll each service's gRPC health check until all report SERVING."""
    deadline = time.monotonic() + timeout_s
    pending = dict(addrs)
    while pending and time.monotonic() < deadline:
        for name, addr in list(pending.items()):
            if procs and procs[name].poll() is not None:
                print(f"{name} exited with code {procs[name].returncode} while starting", file=sys.stderr)
                return False
            if serving(addr, cfg):
                pending.pop(name)
        time.sleep(0.3)
    if pending:
        print(f"not serving after {timeout_s:.0f} s: {', '.join(pending)}", file=sys.stderr)
    return not pending
