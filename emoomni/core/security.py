"""Who may talk to the stack and what a caller may make it read.

- gRPC servers: TLS (optionally mutual) from `security.tls`, and a bearer token checked on every RPC except
  gRPC health (so that orchestrators can probe without a secret).
- Clients: the same TLS material and token, for the CLI, the Python client and the stack's own probes.
- Listening beyond loopback without TLS and a token is refused, with what to set.
- Server-side paths (`MediaInput.path`): only under configured media roots, checked on the resolved path
  before anything is opened, with one message whatever the file's existence.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

import grpc

from emoomni.core.channels import client_channel, read_file
from emoomni.core.config import SecurityConfig, StackConfig

HEALTH_PREFIX = "/grpc.health.v1.Health/"
# One message for every refused path: whether the file exists, is a symlink or is unreadable must not show.
PATH_REFUSED = "the server reads media paths only under its configured media roots; upload the clip instead"


class PathNotAllowed(PermissionError):
    """A media path outside the configured roots (reported as PERMISSION_DENIED)."""


class InsecureListen(RuntimeError):
    """A non-loopback listen address without TLS and a token."""


# Paths ---------------------------------------------------------------------------------------------------


def check_media_path(path: str, roots: list[str]) -> str:
    """The resolved path if it lies under one of `roots`; PathNotAllowed otherwise.

    `realpath` resolves `..` and every symlink without opening the file, so a link inside a root that points
    out of it is refused like any other outside path."""
    if not roots or not path or "\0" in path:
        raise PathNotAllowed(PATH_REFUSED)
    resolved = os.path.realpath(path)
    for root in roots:
        real_root = os.path.realpath(root)
        if os.path.commonpath([resolved, real_root]) == real_root:
            return resolved
    raise PathNotAllowed(PATH_REFUSED)


# Listening -----------------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or an empty host (all interfaces)


def host_of(addr: str) -> str:
    return addr.rsplit(":", 1)[0] if ":" in addr else addr


def check_listen(addr: str, sec: SecurityConfig) -> None:
    """Refuse a non-loopback listen address unless TLS and a token are configured (or the user opted out)."""
    if is_loopback(host_of(addr)) or (sec.tls.enabled and sec.token) or sec.allow_insecure_listen:
        return
    raise InsecureListen(
        f"refusing to listen on {addr} without TLS and a token: set security.tls.cert and security.tls.key "
        "(PEM files) and a token (security.token or EMOOMNI_TOKEN), or listen on 127.0.0.1 "
        "(security.allow_insecure_listen: true only on a network you fully trust)")


# Servers -------------------------------------------------------------------------------------------------


def server_credentials(sec: SecurityConfig) -> grpc.ServerCredentials | None:
    """TLS credentials for a gRPC server (None: plaintext). A client CA turns on mutual TLS."""
    if not sec.tls.enabled:
        return None
    client_ca = read_file(sec.tls.client_ca) if sec.tls.client_ca else None
    return grpc.ssl_server_credentials([(read_file(sec.tls.key), read_file(sec.tls.cert))], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def bind(server: grpc.aio.Server, addr: str, sec: SecurityConfig) -> None:
    """Listen on `addr`, with TLS when configured; OSError naming the port when it is taken."""
    creds = server_credentials(sec)
    try:
        port = server.add_secure_port(addr, creds) if creds else server.add_insecure_port(addr)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {addr}: the port is in use or not allowed") from exc
    if port == 0:
        raise OSError(f"cannot listen on {addr}: the port is in use or not allowed")


class TokenAuth(grpc.aio.ServerInterceptor):
    """Every RPC but health must carry `authorization: Bearer <token>`; otherwise UNAUTHENTICATED."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

    def _allowed(self, details: grpc.HandlerCallDetails) -> bool:
        if details.method.startswith(HEALTH_PREFIX):
            return True
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
                return hmac.compare_digest(given, self._expected)
        return False

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        if handler is None or self._allowed(details):
            return handler
        return _refusal(handler)


def _refusal(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that refuses the call."""
    message = "missing or wrong bearer token (metadata `authorization: Bearer <token>`)"

    async def unary(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def streaming(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - makes this an async generator, as a streaming handler must be

    kwargs = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)
    return grpc.unary_unary_rpc_method_handler(unary, **kwargs)


def server_interceptors(sec: SecurityConfig) -> list[grpc.aio.ServerInterceptor]:
    return [TokenAuth(sec.token)] if sec.token else []


# Clients -------------------------------------------------------------------------------------------------


def stack_channel(target: str, cfg: StackConfig, options: list | None = None) -> grpc.Channel:
    """A channel from the stack's own tools (`emoomni up`'s readiness probe, `speak --remote`'s instruction
    call) to one of its servers, with the client side of `security`."""
    sec = cfg.security
    return client_channel(target, tls_ca=sec.tls.ca or (sec.tls.cert if sec.tls.enabled else ""), token=sec.token,
                          client_cert=sec.tls.client_cert, client_key=sec.tls.client_key, options=options)
