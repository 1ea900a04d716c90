"""`emoomni up` on free ports, as a context manager for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from emoomni.core.natsserver import free_port
from emoomni.core.registry import service_names
from emoomni.core.runtime import wait_until_serving
from emoomni.core.supervisor import end_process

# The logs of the processes a test harness runs now (`emoomni up` stacks, `emoomni web`): a failed test's report
# carries their tails (plugin.py), since a process that dies under a test otherwise leaves no word of why.
RUNNING_LOGS: set[Path] = set()


def log_tail(path: Path, max_chars: int = 6000) -> str:
    """The end of a stack log, for a failure report."""
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-max_chars:]


@contextlib.contextmanager
def running_stack(timeout_s: float = 600.0, config: dict | None = None):
    """`emoomni up` on free ports, without tracing; yields (service addresses, NATS URL with the bus credentials)
    once every service serves, and stops the stack with Ctrl-C (SIGINT) afterwards. `config` adds stack config
    sections."""
    tmp = Path(tempfile.mkdtemp(prefix="emoomni-stack-"))
    addrs = {name: f"127.0.0.1:{free_port()}" for name in service_names()}
    port, password = free_port(), secrets.token_urlsafe(16)
    # The stack's bus takes only clients with its credentials; the yielded URL carries them.
    nats_url = f"nats://emoomni:{password}@127.0.0.1:{port}"
    (tmp / "stack.yaml").write_text(yaml.safe_dump({**(config or {}), "services": addrs, "nats": {
        "url": f"nats://127.0.0.1:{port}", "monitor_port": free_port(), "user": "emoomni", "password": password}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    log_path = tmp / "stack.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "emoomni", "--config", str(tmp / "stack.yaml"), "up"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    RUNNING_LOGS.add(log_path)
    try:
        if not wait_until_serving(addrs, timeout_s=timeout_s):
            raise RuntimeError("the stack did not start")
        yield addrs, nats_url
    finally:
        end_process(proc, 30, signal.SIGINT)
        RUNNING_LOGS.discard(log_path)


@contextlib.contextmanager
def serving(name: str, config: dict, folder: Path):
    """`emoomni serve NAME` with `config` as its stack.yaml (in `folder`), without tracing or the caller's EMOOMNI_
    and NATS_ settings; yields the process once it says it is ready, and stops it (SIGTERM) afterwards."""
    (folder / "stack.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "NATS_", "EMOOMNI_"))}
    proc = subprocess.Popen([sys.executable, "-m", "emoomni", "--config", str(folder / "stack.yaml"), "serve", name],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        if "ready on" not in line:
            raise RuntimeError(f"emoomni serve {name} did not start: {line}{proc.stdout.read()[-2000:]}")
        yield proc
    finally:
        end_process(proc, 15)
