"""Shared helpers for the benchmarks: percentiles, machine description, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

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


def stack_processes(timeout_s: float = 600.0, config: dict | None = None):
    """`emoomni up` on free ports (emoomni.testing.stack.running_stack, shared with the tests)."""
    from emoomni.testing.stack import running_stack

    return running_stack(timeout_s, config)
