"""pytest plugin (entry point `pytest11: emoomni`): markers and fixtures on real components.

Fixtures: `nats_server` (a real nats-server with JetStream, one per module), `stack_config` (the default stack
config, environment overrides ignored), `serve_stage` (starts `emoomni serve NAME` as its own process on the
module's nats-server and a free port; returns the gRPC address), `talker_engine` (a loaded and warmed talker
plugin by name, loaded once per session and shared by every test that asks for it), `tiny_omni_checkpoint` (a
random-weight Qwen2.5-Omni checkpoint of the real architecture, session-wide).
Markers: `slow` (minutes, not seconds), `gpu` (needs CUDA; skipped with the reason where there is none).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from emoomni.core.torchvision_compat import install_import_hook

install_import_hook()  # the tests load models that import torchvision beside a CPU-only torch


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes minutes (a whole stack, a fresh venv, a large model)")
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        for item in items:
            if item.get_closest_marker("gpu"):
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU (marked gpu)"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed test's report ends with the tail of every harness process log (`emoomni up`, `emoomni web`) open
    under it."""
    report = yield
    if report.failed:
        from emoomni.testing.stack import RUNNING_LOGS, log_tail

        for path in sorted(RUNNING_LOGS):
            report.sections.append((f"log {path}", log_tail(path)))
    return report


@pytest.fixture(scope="module")
def nats_server():
    """A real nats-server with JetStream on a free port, for every test in the module."""
    from emoomni.core.natsserver import NatsServer

    with NatsServer() as server:
        yield server


@pytest.fixture
def stack_config():
    """The default stack config, without the environment's overrides (a test sets what it needs)."""
    from emoomni.core.config import load_config

    return load_config(env={})


@pytest.fixture(scope="module")
def serve_stage(nats_server, tmp_path_factory):
    """`serve_stage("talker", config={...})` starts that service as its own process, as `emoomni up` does, on the
    module's nats-server; returns its gRPC address once it reports SERVING. Stopped after the module."""
    import yaml

    from emoomni.core.natsserver import free_port
    from emoomni.core.runtime import wait_until_serving

    procs: list[subprocess.Popen] = []

    def start(name: str, config: dict | None = None, timeout_s: float = 600.0) -> str:
        folder = tmp_path_factory.mktemp(f"stage-{name}")
        addr = f"127.0.0.1:{free_port()}"
        config = {**(config or {}), "nats": {"url": nats_server.url}}
        config.setdefault("services", {})[name] = addr
        (folder / "stack.yaml").write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "NATS_URL", "EMOOMNI_"))}
        log = open(folder / "serve.log", "w")  # noqa: SIM115 - the process owns it until the module ends
        proc = subprocess.Popen([sys.executable, "-m", "emoomni", "--config", str(folder / "stack.yaml"), "serve",
                                 name], env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        if not wait_until_serving({name: addr}, {name: proc}, timeout_s):
            raise RuntimeError(f"{name} did not start: {(folder / 'serve.log').read_text()[-2000:]}")
        return addr

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


class _Engines:
    """Loaded talker engines by name, shared for the whole session (loading is the slow part)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.loaded: dict = {}

    def get(self, name: str):
        if name not in self.loaded:
            from emoomni.services.talker.registry import discover

            cls = discover()[name]
            folder = self.workdir / name
            folder.mkdir(exist_ok=True)
            engine = cls(cls.test_options(folder))
            engine.load()
            engine.warm()
            self.loaded[name] = engine
        return self.loaded[name]


@pytest.fixture(scope="session")
def talker_engines(tmp_path_factory) -> _Engines:
    return _Engines(tmp_path_factory.mktemp("talker-engines"))


@pytest.fixture(scope="session")
def tiny_omni_checkpoint(tmp_path_factory) -> Path:
    """A tiny random-weight Qwen2.5-Omni checkpoint (training/thinker/random_checkpoint.py; needs a checkout)."""
    try:
        from training.thinker.random_checkpoint import write_tiny_checkpoint
    except ImportError as exc:
        pytest.fail(f"the tiny Omni checkpoint is written by training/thinker (run from a checkout): {exc}")
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-omni"))
