"""A real service on a real bus, in this process: the same `start_service` that `emoomni serve` runs."""

from __future__ import annotations

import contextlib

from emoomni.core.config import StackConfig
from emoomni.core.natsserver import free_port
from emoomni.core.runtime import start_service
from emoomni.core.service import StageService


class RunningStage:
    """`async with RunningStage("instruction", cfg, nats.url) as stage:` loads the registered service (or uses the
    `service` instance given), joins the bus and, with `grpc=True`, serves gRPC on a free port (`stage.addr`)."""

    def __init__(self, name: str, cfg: StackConfig, nats_url: str, *, grpc: bool = False,
                 service: StageService | None = None):
        self.name, self.cfg, self.nats_url = name, cfg, nats_url
        self.addr = f"127.0.0.1:{free_port()}" if grpc else None
        self.service = service

    async def __aenter__(self) -> RunningStage:
        self.service, self._server, self.bus = await start_service(self.name, self.cfg, self.nats_url, self.addr,
                                                                   self.service)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._server is not None:
            await self._server.stop(grace=1)
        with contextlib.suppress(Exception):
            await self.bus.close()
