"""Process supervision for `emoomni up`, in the manner of systemd's `Restart=on-failure`.

- A child that exits is restarted after a backoff that doubles per quick crash (up to `max_backoff_s`). Before the
  stack has first come up, `max_quick_crashes` quick crashes in a row mean the child cannot start at all: it is
  given up on and the stack stops, naming it. Once the stack has served, a crash loop (say, inputs that crash a
  stage) never stops the other services: the child is restarted for ever, and each crash is said and counted.
- Exit codes that mean "this cannot work" (a taken port, an unsafe configuration) are never retried.
- Every child gets PR_SET_PDEATHSIG: the kernel kills it when `emoomni up` dies, even by SIGKILL, so no
  orphan is ever left behind.
- Stopping sends SIGTERM to everyone, waits `stop_grace_s`, then SIGKILLs what is left.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from emoomni.core.config import SupervisionConfig

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A `preexec_fn` that makes the child receive SIGKILL when its parent dies (Linux), and exit at once
    if the parent already died between fork and this call."""

    def preexec() -> None:
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


class GiveUp(Exception):
    """A child cannot be kept running; the message says which and why."""


class PortBusy(OSError):
    pass


def end_process(proc: subprocess.Popen, grace_s: float, sig: int = signal.SIGTERM) -> int:
    """Ask a child to stop with `sig`, SIGKILL it if it has not within `grace_s`; returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def ensure_port_free(host: str, port: int, what: str) -> None:
    """PortBusy naming the port when something already listens on it (checked before anything starts)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers do not count
        try:
            sock.bind((host, port))
            sock.listen(1)
        except OSError as exc:
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
            raise PortBusy(f"port {port} on {host} ({what}) {reason}; is another `emoomni up` running? "
                           "Stop it or choose other ports in the config") from exc


def descendants(pid: int) -> dict[int, list[str]]:
    """pid -> argv of every living process below `pid` (from /proc), for tests and benchmarks that check what a
    stack left behind or how much memory it holds."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                if fields[0] != "Z":
                    parents[int(entry.name)] = int(fields[1])
            except (OSError, ValueError, IndexError):
                continue
    found: dict[int, list[str]] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                try:
                    with open(f"/proc/{child}/cmdline", "rb") as cmdline:
                        found[child] = [part.decode() for part in cmdline.read().split(b"\0") if part]
                except OSError:
                    continue
                frontier.append(child)
    return found


@dataclass
class Child:
    name: str
    start: Callable[[], subprocess.Popen]  # starts the process (may raise: counted as a crash)
    fatal_codes: tuple[int, ...] = ()  # exit codes that are not retried
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_crashes: int = 0
    restart_at: float | None = None
    restarts: int = 0
    history: list[str] = field(default_factory=list)


class Supervisor:
    def __init__(self, cfg: SupervisionConfig, say: Callable[[str], None] | None = None):
        self.cfg = cfg
        self.children: dict[str, Child] = {}
        self.served = False  # set once every service has served (`emoomni up`): from then on nobody is given up
        self.say = say or (lambda text: print(f"emoomni up: {text}", file=sys.stderr, flush=True))

    def add(self, name: str, start: Callable[[], subprocess.Popen], fatal_codes: tuple[int, ...] = ()) -> None:
        self.children[name] = Child(name, start, fatal_codes)

    def start_all(self) -> None:
        for child in self.children.values():
            self._start(child)

    def _start(self, child: Child) -> None:
        child.restart_at = None
        child.started_at = time.monotonic()
        try:
            child.proc = child.start()
        except Exception as exc:
            child.proc = None
            self._crashed(child, f"failed to start ({exc})")

    def poll(self) -> None:
        """Restart children that exited (when their backoff is over); GiveUp when one cannot be kept up."""
        now = time.monotonic()
        for child in self.children.values():
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    self._start(child)
                    if child.proc is not None:
                        self.say(f"{child.name} restarted (restart {child.restarts})")
                continue
            if child.proc is None or child.proc.poll() is None:
                continue
            code = child.proc.returncode
            if code in child.fatal_codes:
                raise GiveUp(f"{child.name} exited with code {code} and cannot work as configured (see its "
                             "message above); stopping the stack")
            self._crashed(child, f"exited with code {code}" if code >= 0 else f"was killed by signal {-code}")

    def _crashed(self, child: Child, what: str) -> None:
        uptime = time.monotonic() - child.started_at
        child.quick_crashes = child.quick_crashes + 1 if uptime < self.cfg.quick_crash_s else 1
        child.history.append(what)
        if not self.served and child.quick_crashes >= self.cfg.max_quick_crashes:
            raise GiveUp(f"{child.name} {what}; it crashed {child.quick_crashes} times in a row within "
                         f"{self.cfg.quick_crash_s:.0f} s of starting, giving up and stopping the stack")
        delay = min(self.cfg.max_backoff_s, self.cfg.backoff_s * 2 ** min(child.quick_crashes - 1, 30))
        child.restart_at = time.monotonic() + delay
        self.say(f"{child.name} {what}; restarting in {delay:.1f} s (crash {len(child.history)})")

    def stop(self) -> None:
        """SIGTERM to every child, SIGKILL after `stop_grace_s` for those still running."""
        names = list(self.children)
        for name in names:
            child = self.children[name]
            child.restart_at = None
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.cfg.stop_grace_s
        for name in names:
            proc = self.children[name].proc
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
