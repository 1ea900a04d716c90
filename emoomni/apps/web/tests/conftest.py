"""The browser tests' stack: `emoomni up` and `emoomni web --remote` against it, one of each per test module."""

from __future__ import annotations

import pytest

from emoomni.apps.web.tests.webpage import WebServer
from emoomni.testing.stack import running_stack


@pytest.fixture(scope="module")
def stack():
    # One llama.cpp thread: the browser shares the 2 cores, and two llama.cpp threads stall when one of them is
    # descheduled (README, Limitations).
    config = {"listening": {"idle_s": 300.0}, "live": {"provisional_every_ms": 1500.0},
              "reasoning": {"llama_cpp": {"n_threads": 1}}}
    with running_stack(config=config) as (addrs, _):
        yield addrs


@pytest.fixture(scope="module")
def web(stack):
    server = WebServer(stack["gateway"], stack["talker"]).start()
    try:
        yield server
    finally:
        server.stop()
