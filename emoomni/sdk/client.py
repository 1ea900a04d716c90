"""Python client for the public `Agent` API: what a robot or a game embeds.

    from emoomni import Client
    with Client("127.0.0.1:50051") as client:
        result = client.run_turn("clip.mp4")          # or iterate client.converse(...) for live events
        print(result.done.ecot.response)

A secured stack (docs/architecture.md, "Security"): Client("host:50051", tls_ca="ca.pem", token="...") or the
environment variables EMOOMNI_TLS_CA, EMOOMNI_TOKEN (and EMOOMNI_CLIENT_CERT / EMOOMNI_CLIENT_KEY for mutual TLS).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc

from emoomni.core.channels import client_channel
from emoomni.core.limits import MAX_GRPC_MESSAGE
from emoomni.sdk.result import TurnResult
from emoomni.sdk.security import ClientSecurity
from emoomni.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    instruction_pb2,
    instruction_pb2_grpc,
    media_pb2,
    talker_pb2,
    talker_pb2_grpc,
)

UPLOAD_CHUNK = 256 * 1024


def upload_messages(request: agent_pb2.ConverseRequest) -> Iterator[agent_pb2.ConverseUploadMessage]:
    """A turn with its clip's bytes in `media.data`, as an upload: the request without them, then the bytes in
    chunks (the server may be on another machine, and unary messages are kept small)."""
    data = request.media.data
    start = agent_pb2.ConverseRequest()
    start.CopyFrom(request)
    start.media.ClearField("data")
    yield agent_pb2.ConverseUploadMessage(start=start)
    for offset in range(0, len(data), UPLOAD_CHUNK):
        yield agent_pb2.ConverseUploadMessage(chunk=media_pb2.MediaChunk(data=data[offset:offset + UPLOAD_CHUNK]))


def _trace_metadata() -> list[tuple[str, str]]:
    """The caller's trace context as gRPC metadata; none in a client-only install (no OpenTelemetry there)."""
    try:
        from emoomni.core.telemetry import headers_with_trace
    except ImportError:
        return []
    return list(headers_with_trace().items())


class _Channel:
    """One gRPC channel with the stack's message-size limits, usable as a context manager.

    TLS when a CA is given (`tls_ca` or EMOOMNI_TLS_CA), a client certificate for mutual TLS (`client_cert` /
    `client_key` or EMOOMNI_CLIENT_CERT / EMOOMNI_CLIENT_KEY), and a bearer token (`token` or EMOOMNI_TOKEN)."""

    def __init__(self, target: str, timeout_s: float, tls_ca: str | None = None, token: str | None = None,
                 client_cert: str | None = None, client_key: str | None = None):
        self.timeout_s = timeout_s
        security = ClientSecurity.resolve(tls_ca, token, client_cert, client_key)
        self.channel = client_channel(
            target, tls_ca=security.tls_ca, token=security.token, client_cert=security.client_cert,
            client_key=security.client_key, options=[("grpc.max_receive_message_length", MAX_GRPC_MESSAGE),
                     ("grpc.max_send_message_length", MAX_GRPC_MESSAGE)])

    def close(self) -> None:
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Client(_Channel):
    def __init__(self, target: str = "127.0.0.1:50051", timeout_s: float = 180.0, **security):
        super().__init__(target, timeout_s, **security)
        self.stub = agent_pb2_grpc.AgentStub(self.channel)

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        grpc.channel_ready_future(self.channel).result(timeout=timeout_s)

    def converse(self, clip: str | Path | bytes, context: str = "", turn_id: str = "",
                 talker: str = "") -> Iterator[agent_pb2.TurnEvent]:
        """Stream a turn's events. A local file is uploaded in chunks (the server may be elsewhere). `talker`
        picks the engine for this turn only."""
        data = clip if isinstance(clip, bytes) else Path(clip).read_bytes()
        name = "clip" if isinstance(clip, bytes) else Path(clip).name
        start = agent_pb2.ConverseRequest(context=context, turn_id=turn_id, talker=talker,
                                          media=media_pb2.MediaInput(filename=name, data=data))
        yield from self.stub.ConverseUpload(upload_messages(start), timeout=self.timeout_s,
                                            metadata=_trace_metadata())

    def converse_path(self, server_path: str, context: str = "") -> Iterator[agent_pb2.TurnEvent]:
        """Stream a turn for a file the server itself can read (no upload)."""
        request = agent_pb2.ConverseRequest(context=context, media=media_pb2.MediaInput(path=server_path))
        yield from self.stub.Converse(request, timeout=self.timeout_s, metadata=_trace_metadata())

    def run_turn(self, clip: str | Path | bytes, context: str = "", talker: str = "") -> TurnResult:
        """Run a turn to the end and collect it. Raises grpc.RpcError with the server's status on failure."""
        result = TurnResult()
        for event in self.converse(clip, context, talker=talker):
            result.add(event)
        return result


class TalkerClient(_Channel):
    """The `Talker` service: speak text with an instruction, list engines, switch the active one."""

    def __init__(self, target: str = "127.0.0.1:50064", timeout_s: float = 120.0, **security):
        super().__init__(target, timeout_s, **security)
        self.stub = talker_pb2_grpc.TalkerStub(self.channel)

    def speak(self, text: str, instruction: instruction_pb2.AcousticInstruction | None = None,
              language: str = "en", talker: str = "") -> Iterator[media_pb2.AudioChunk]:
        request = talker_pb2.SpeakRequest(text=text, instruction=instruction, language=language, talker=talker)
        yield from self.stub.Speak(request, timeout=self.timeout_s, metadata=_trace_metadata())

    def talkers(self) -> talker_pb2.ListTalkersResponse:
        return self.stub.ListTalkers(talker_pb2.ListTalkersRequest(), timeout=self.timeout_s)

    def set_active(self, name: str) -> talker_pb2.SetActiveTalkerResponse:
        return self.stub.SetActiveTalker(talker_pb2.SetActiveTalkerRequest(name=name), timeout=self.timeout_s)


class InstructionClient(_Channel):
    """The `Instruction` service: an instruction or strategy text mapped to acoustic controls."""

    def __init__(self, target: str = "127.0.0.1:50063", timeout_s: float = 30.0, **security):
        super().__init__(target, timeout_s, **security)
        self.stub = instruction_pb2_grpc.InstructionStub(self.channel)

    def map(self, text: str, language: str = "en") -> instruction_pb2.AcousticInstruction:
        return self.stub.Map(instruction_pb2.MapRequest(strategy=text, language=language), timeout=self.timeout_s)
