"""One way to talk to the agent, wherever it runs: `AgentPort` (a clip turn, a live session, the talkers).

`RemoteAgent` reaches a gateway over gRPC (TLS and token as every client: emoomni.sdk.security); `LocalAgent`
wraps an agent running in this process (`emoomni.core.runtime.EmbeddedAgent`). The web demo and `emoomni live`
use only this interface, so they work the same against either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from emoomni.sdk.client import upload_messages
from emoomni.sdk.live import AsyncLiveSession, OpenStream, async_channel
from emoomni.sdk.security import ClientSecurity
from emoomni.v1 import agent_pb2, agent_pb2_grpc, talker_pb2, talker_pb2_grpc


class AgentPort(Protocol):
    name: str

    def converse(self, request: agent_pb2.ConverseRequest) -> AsyncIterator[agent_pb2.TurnEvent]:
        """One clip turn (the clip's bytes in `request.media.data`), its events as they come."""
        ...

    def session(self, config: agent_pb2.SessionConfig) -> AsyncLiveSession:
        """A live session, not yet opened (`async with` it)."""
        ...

    async def talkers(self) -> talker_pb2.ListTalkersResponse:
        ...


class InProcessAgent(Protocol):
    """What an agent in this process offers (EmbeddedAgent)."""

    def run_turn(self, request: agent_pb2.ConverseRequest) -> AsyncIterator[agent_pb2.TurnEvent]: ...

    def session_stream(self) -> OpenStream: ...

    async def talkers(self) -> talker_pb2.ListTalkersResponse: ...


class LocalAgent:
    name = "the embedded agent"

    def __init__(self, agent: InProcessAgent):
        self.agent = agent

    def converse(self, request: agent_pb2.ConverseRequest) -> AsyncIterator[agent_pb2.TurnEvent]:
        return self.agent.run_turn(request)

    def session(self, config: agent_pb2.SessionConfig) -> AsyncLiveSession:
        return AsyncLiveSession(self.agent.session_stream(), config)

    async def talkers(self) -> talker_pb2.ListTalkersResponse:
        return await self.agent.talkers()


class RemoteAgent:
    """A running gateway (and its talker service, for the talker list) over gRPC."""

    def __init__(self, target: str, talker_target: str = "", security: ClientSecurity | None = None):
        self.target, self.talker_target = target, talker_target or target
        self.security = security or ClientSecurity.resolve()
        self.name = f"the EmoOmni stack at {target}"
        self._channels: list = []

    async def start(self) -> None:
        for target in (self.target, self.talker_target):
            channel, self.metadata = async_channel(target, **vars(self.security))
            self._channels.append(channel)
        self.stub = agent_pb2_grpc.AgentStub(self._channels[0])
        self.talker_stub = talker_pb2_grpc.TalkerStub(self._channels[1])

    async def stop(self) -> None:
        for channel in self._channels:
            await channel.close()
        self._channels.clear()

    def converse(self, request: agent_pb2.ConverseRequest) -> AsyncIterator[agent_pb2.TurnEvent]:
        return self.stub.ConverseUpload(upload_messages(request), metadata=self.metadata)

    def session(self, config: agent_pb2.SessionConfig) -> AsyncLiveSession:
        return AsyncLiveSession.connect(self.target, config, **vars(self.security))

    async def talkers(self) -> talker_pb2.ListTalkersResponse:
        return await self.talker_stub.ListTalkers(talker_pb2.ListTalkersRequest(), metadata=self.metadata,
                                                  timeout=5)
