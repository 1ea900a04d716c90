"""Shared helpers for the benchmarks: percentiles, machine description, result files."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def summary(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    return {"n": int(arr.size), "median": round(float(np.median(arr)), 2),
            "p99": round(float(np.percentile(arr, 99)), 2), "min": round(float(arr.min()), 2),
            "max": round(float(arr.max()), 2), "mean": round(statistics.fmean(arr), 2)}


def machine() -> dict:
    cpu = platform.processor()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), cpu)
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_gib, 1), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d")}


def save(name: str, data: dict) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    return path


SERVICES = ("perception", "reasoning", "instruction", "talker", "gateway")


@contextlib.contextmanager
def stack_processes(timeout_s: float = 600.0, config: dict | None = None):
    """`emoomni up` on free ports, without tracing; yields (service addresses, NATS URL) once every service
    serves, and stops the stack with Ctrl-C (SIGINT) afterwards. `config` adds stack config sections."""
    from emoomni.natsserver import free_port
    from emoomni.runtime import wait_until_serving

    tmp = Path(tempfile.mkdtemp(prefix="emoomni-bench-"))
    addrs = {name: f"127.0.0.1:{free_port()}" for name in SERVICES}
    port, password = free_port(), secrets.token_urlsafe(16)
    # The stack's bus takes only clients with its credentials; the yielded URL carries them.
    nats_url = f"nats://emoomni:{password}@127.0.0.1:{port}"
    (tmp / "stack.yaml").write_text(yaml.safe_dump({**(config or {}), "services": addrs, "nats": {
        "url": f"nats://127.0.0.1:{port}", "monitor_port": free_port(), "user": "emoomni", "password": password}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    proc = subprocess.Popen([sys.executable, "-m", "emoomni", "--config", str(tmp / "stack.yaml"), "up"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_until_serving(addrs, timeout_s=timeout_s):
            raise RuntimeError("the stack did not start")
        yield addrs, nats_url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
