"""The live sessions of one gateway replica: the store that remembers them, the locks that keep each on one replica,
the acknowledgements they share, and the caps on how many the replica and one caller hold (admission.py)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator

from emoomni.core.config import StackConfig
from emoomni.services.gateway.acks import AckBank
from emoomni.services.gateway.admission import Admission, Refused
from emoomni.services.gateway.core import GatewayCore
from emoomni.services.gateway.listening import ListeningModels, load_models
from emoomni.services.gateway.live.inputs import SessionError, quiet_limit_s
from emoomni.services.gateway.live.session import LiveSession
from emoomni.services.gateway.memory import SessionLocks, SessionStore
from emoomni.v1 import agent_pb2


class LiveSessions:
    def __init__(self, cfg: StackConfig, gateway: GatewayCore, models: ListeningModels | None = None):
        self.cfg, self.gateway = cfg, gateway
        self.store = SessionStore(gateway.bus, cfg.live.store_bucket, cfg.live.store_ttl_s)
        self.locks = SessionLocks(gateway.bus, cfg.live.lock_bucket, cfg.live.lock_ttl_s,
                                  holder=f"{socket.gethostname()}:{os.getpid()}")
        self.acks = AckBank(gateway.bus)
        self.active: dict[str, LiveSession] = {}
        self.admission = Admission(cfg.live.max_sessions, cfg.live.max_sessions_per_caller,
                                   retry_after_s=quiet_limit_s(cfg), what="live sessions")
        self.models = models

    def load(self) -> None:
        """Load the listening models (once per gateway; a gateway that never holds a session may skip it)."""
        if self.models is None:
            self.models = load_models()

    async def run(self, inputs: AsyncIterator[agent_pb2.SessionInput], caller: str = ""
                  ) -> AsyncIterator[agent_pb2.SessionEvent]:
        """A new session over `inputs`; raises SessionError for what ends it with a status. `caller` (a network
        address) may hold at most `live.max_sessions_per_caller` sessions at once, the replica `live.max_sessions`."""
        try:
            with self.admission.hold(caller):
                if self.models is None:
                    await asyncio.to_thread(self.load)
                session = LiveSession(self.cfg, self.gateway, self.store, self.locks, self.acks, self.active,
                                      self.models)
                async for event in session.run(inputs):
                    yield event
        except Refused as exc:
            raise SessionError("RESOURCE_EXHAUSTED", f"{exc} (a silent session is ended by then), or use another "
                               "replica") from exc
