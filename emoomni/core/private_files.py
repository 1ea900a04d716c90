"""Secrets (keys, the bus password, tokens) kept out of sight: files created readable by their owner only from the
first byte (a chmod after writing leaves a window in which another user can open the file), and config dumps and log
lines with the secrets masked."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, data: bytes | str) -> None:
    """Write `data` to `path` with mode 0600, replacing any file there (whatever its mode was)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data.encode() if isinstance(data, str) else data)


def read_secret_file(path: str) -> str:
    """A token or password kept in a file (its first line, stripped), so that it never appears in a command line."""
    return Path(path).read_text().splitlines()[0].strip() if Path(path).stat().st_size else ""


SECRET_KEYS = ("token", "password", "api_key")


def redacted_url(url: str) -> str:
    """A URL fit for a log line: its password (nats://user:PASSWORD@host) replaced by ***."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redacted(values):
    """A config dump fit to print: every non-empty token, password or API key shown as ***, URLs without their
    passwords."""
    if isinstance(values, dict):
        return {key: ("***" if key in SECRET_KEYS and value else redacted(value)) for key, value in values.items()}
    if isinstance(values, list):
        return [redacted(value) for value in values]
    if isinstance(values, str) and "://" in values and "@" in values:
        return redacted_url(values)
    return values
