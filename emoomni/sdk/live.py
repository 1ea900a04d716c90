"""Live sessions from Python (`Agent.Session`): stream microphone audio and camera frames, get turns back.

    from emoomni.sdk.live import AsyncLiveSession, session_config
    async with AsyncLiveSession.connect("127.0.0.1:50051", session_config(sample_rate=16000)) as session:
        await session.send_audio(pcm16_bytes)        # 10-100 ms frames, as they are captured
        async for event in session.events():         # speech activity, transcript, E-CoT, audio, ...
            ...

`LiveSession` is the same with plain threads (for code without asyncio). Both drop nothing on their own: audio
of an interrupted turn simply stops coming; a client that queues audio for playback should drop what it holds
of a turn when `interrupted` names it, and report playback (`report_playback`) so the agent's memory keeps what
the user actually heard.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import grpc

from emoomni.core.channels import client_channel, read_file
from emoomni.core.limits import MAX_GRPC_MESSAGE
from emoomni.sdk.security import ClientSecurity
from emoomni.v1 import agent_pb2, agent_pb2_grpc

_END = object()
_OPTIONS = [("grpc.max_receive_message_length", MAX_GRPC_MESSAGE),
            ("grpc.max_send_message_length", MAX_GRPC_MESSAGE)]

OpenStream = Callable[[AsyncIterator[agent_pb2.SessionInput]], AsyncIterator[agent_pb2.SessionEvent]]


def session_config(sample_rate: int = 16000, **options) -> agent_pb2.SessionConfig:
    """The first message: sample_rate plus any SessionConfig field (session_id, resume_id and resume_token,
    language, talker, persona, video, no_ack, echo_guard)."""
    return agent_pb2.SessionConfig(sample_rate=sample_rate, **options)


def async_channel(target: str, *, tls_ca: str | None = None, token: str | None = None, client_cert: str | None = None,
                  client_key: str | None = None) -> tuple[grpc.aio.Channel, list[tuple[str, str]] | None]:
    """An asyncio channel to a gateway and the call metadata (the bearer token), with the same security options
    (and EMOOMNI_* variables) as `emoomni.Client`."""
    security = ClientSecurity.resolve(tls_ca, token, client_cert, client_key)
    if security.tls_ca:
        creds = grpc.ssl_channel_credentials(
            root_certificates=read_file(security.tls_ca),
            private_key=read_file(security.client_key) if security.client_key else None,
            certificate_chain=read_file(security.client_cert) if security.client_cert else None)
        channel = grpc.aio.secure_channel(target, creds, options=_OPTIONS)
    else:
        channel = grpc.aio.insecure_channel(target, options=_OPTIONS)
    return channel, security.metadata()


class _Inputs:
    """What the caller sends, as the message stream the RPC reads."""

    @staticmethod
    def audio(pcm16: bytes) -> agent_pb2.SessionInput:
        return agent_pb2.SessionInput(audio=pcm16)

    @staticmethod
    def frame(image: bytes, time_s: float) -> agent_pb2.SessionInput:
        return agent_pb2.SessionInput(video=agent_pb2.VideoFrame(image=image, time_s=time_s))

    @staticmethod
    def playback(turn_id: str, played_ms: float) -> agent_pb2.SessionInput:
        return agent_pb2.SessionInput(playback=agent_pb2.PlaybackReport(turn_id=turn_id, played_ms=played_ms))


class AsyncLiveSession:
    """A live session on asyncio. `connect` opens it over gRPC; an embedded stack passes its own `open_stream`."""

    def __init__(self, open_stream: OpenStream, config: agent_pb2.SessionConfig):
        self._inputs: asyncio.Queue = asyncio.Queue()
        self._inputs.put_nowait(agent_pb2.SessionInput(config=config))
        self._stream = open_stream(self._read_inputs())
        self._channel = None

    @classmethod
    def connect(cls, target: str, config: agent_pb2.SessionConfig, *, tls_ca: str | None = None,
                token: str | None = None, client_cert: str | None = None,
                client_key: str | None = None) -> AsyncLiveSession:
        """Over gRPC, with the same security options (and EMOOMNI_* variables) as `emoomni.Client`."""
        channel, metadata = async_channel(target, tls_ca=tls_ca, token=token, client_cert=client_cert,
                                          client_key=client_key)
        stub = agent_pb2_grpc.AgentStub(channel)
        session = cls(lambda inputs: stub.Session(inputs, metadata=metadata), config)
        session._channel = channel
        return session

    async def _read_inputs(self) -> AsyncIterator[agent_pb2.SessionInput]:
        while (message := await self._inputs.get()) is not _END:
            yield message

    def _send(self, message: agent_pb2.SessionInput) -> None:
        self._inputs.put_nowait(message)

    async def send_audio(self, pcm16: bytes) -> None:
        self._send(_Inputs.audio(pcm16))

    async def send_frame(self, image: bytes, time_s: float) -> None:
        """A JPEG/PNG camera frame; `time_s` on the session's audio clock (seconds of audio sent before it)."""
        self._send(_Inputs.frame(image, time_s))

    async def report_playback(self, turn_id: str, played_ms: float) -> None:
        self._send(_Inputs.playback(turn_id, played_ms))

    async def interrupt(self) -> None:
        self._send(agent_pb2.SessionInput(interrupt=agent_pb2.Interrupt()))

    async def text(self, message: str) -> None:
        self._send(agent_pb2.SessionInput(text=message))

    async def end(self) -> None:
        """Ask the server to close once the current turn is done (events go on until `ended`)."""
        self._send(agent_pb2.SessionInput(end=agent_pb2.EndSession()))
        self._send(_END)

    async def events(self) -> AsyncIterator[agent_pb2.SessionEvent]:
        """The server's events. After `ended` the session stops sending; the stream's own close is then quiet."""
        ended = False
        try:
            async for event in self._stream:
                if event.WhichOneof("event") == "ended":
                    ended = True
                    self._send(_END)
                yield event
        except grpc.aio.AioRpcError:
            if not ended:  # a write racing the server's close may fail after `ended`: that end was clean
                raise

    async def close(self) -> None:
        self._send(_END)
        cancel = getattr(self._stream, "cancel", None)
        if cancel is not None:
            cancel()
        if self._channel is not None:
            await self._channel.close()

    async def __aenter__(self) -> AsyncLiveSession:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class LiveSession:
    """A live session with plain threads: send from any thread, iterate `events()` in one."""

    def __init__(self, target: str, config: agent_pb2.SessionConfig, timeout_s: float | None = None, **security):
        """`timeout_s`: a deadline for the whole session (none by default: a conversation may go on for hours)."""
        self._channel = client_channel(target, **{k: v or "" for k, v in security.items()}, options=_OPTIONS)
        self._inputs: queue.Queue = queue.Queue()
        self._inputs.put(agent_pb2.SessionInput(config=config))
        self._call = agent_pb2_grpc.AgentStub(self._channel).Session(self._read_inputs(), timeout=timeout_s)
        self._lock = threading.Lock()

    def _read_inputs(self) -> Iterator[agent_pb2.SessionInput]:
        while (message := self._inputs.get()) is not _END:
            yield message

    def send_audio(self, pcm16: bytes) -> None:
        self._inputs.put(_Inputs.audio(pcm16))

    def send_frame(self, image: bytes, time_s: float) -> None:
        self._inputs.put(_Inputs.frame(image, time_s))

    def report_playback(self, turn_id: str, played_ms: float) -> None:
        self._inputs.put(_Inputs.playback(turn_id, played_ms))

    def interrupt(self) -> None:
        self._inputs.put(agent_pb2.SessionInput(interrupt=agent_pb2.Interrupt()))

    def text(self, message: str) -> None:
        self._inputs.put(agent_pb2.SessionInput(text=message))

    def end(self) -> None:
        self._inputs.put(agent_pb2.SessionInput(end=agent_pb2.EndSession()))
        self._inputs.put(_END)

    def events(self) -> Iterator[agent_pb2.SessionEvent]:
        """The server's events. After `ended` the session stops sending; the stream's own close is then quiet."""
        ended = False
        try:
            for event in self._call:
                if event.WhichOneof("event") == "ended":
                    ended = True
                    self._inputs.put(_END)
                yield event
        except grpc.RpcError:
            if not ended:
                raise

    def close(self) -> None:
        self._inputs.put(_END)
        self._call.cancel()
        self._channel.close()

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
