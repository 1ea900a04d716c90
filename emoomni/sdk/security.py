"""How a client reaches a secured stack, read once for every client (sync, asyncio, the web demo, the CLI): TLS
with the stack's CA, optionally a client certificate (mutual TLS), and a bearer token. A setting not given comes
from its environment variable."""

from __future__ import annotations

import os
from dataclasses import dataclass

ENVIRONMENT = {"tls_ca": "EMOOMNI_TLS_CA", "token": "EMOOMNI_TOKEN", "client_cert": "EMOOMNI_CLIENT_CERT",
               "client_key": "EMOOMNI_CLIENT_KEY"}


@dataclass(frozen=True)
class ClientSecurity:
    tls_ca: str = ""
    token: str = ""
    client_cert: str = ""
    client_key: str = ""

    @classmethod
    def resolve(cls, tls_ca: str | None = None, token: str | None = None, client_cert: str | None = None,
                client_key: str | None = None) -> ClientSecurity:
        """Each setting as given, or (None) from EMOOMNI_TLS_CA, EMOOMNI_TOKEN, EMOOMNI_CLIENT_CERT,
        EMOOMNI_CLIENT_KEY."""
        given = {"tls_ca": tls_ca, "token": token, "client_cert": client_cert, "client_key": client_key}
        return cls(**{name: os.environ.get(ENVIRONMENT[name], "") if value is None else value
                      for name, value in given.items()})

    def metadata(self) -> list[tuple[str, str]] | None:
        """The call metadata that carries the token."""
        return [("authorization", f"Bearer {self.token}")] if self.token else None
