"""Client channels to a stack server: TLS (optionally mutual) and a bearer token on every call.

Only grpc here, so that the Python client works in a client-only install (`pip install "emoomni[client]"`);
the server side of the same settings is emoomni.core.security."""

from __future__ import annotations

from pathlib import Path

import grpc


def read_file(path: str) -> bytes:
    return Path(path).expanduser().read_bytes()


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the bearer token to every call's metadata."""

    def __init__(self, token: str):
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details):
        metadata = [*(details.metadata or ()), self._header]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = credentials, wait_for_ready, compression


def client_channel(target: str, *, tls_ca: str = "", token: str = "", client_cert: str = "",
                   client_key: str = "", options: list | None = None) -> grpc.Channel:
    """A channel to a stack server: TLS when `tls_ca` is given (plus a client certificate for mutual TLS),
    and the bearer token on every call when `token` is given."""
    if tls_ca:
        cert_chain = read_file(client_cert) if client_cert else None
        key = read_file(client_key) if client_key else None
        creds = grpc.ssl_channel_credentials(root_certificates=read_file(tls_ca), private_key=key,
                                             certificate_chain=cert_chain)
        channel = grpc.secure_channel(target, creds, options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    return grpc.intercept_channel(channel, _BearerToken(token)) if token else channel


