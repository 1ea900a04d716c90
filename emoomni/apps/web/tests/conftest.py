"""The browser tests' stack: `emoomni up` and `emoomni web --remote` against it, one of each per test module."""

from __future__ import annotations

import pytest

from emoomni.apps.web.tests.webpage import WebServer
from emoomni.testing.stack import running_stack


@pytest.fixture(scope="module")
def stack():
    with running_stack(config={"listening": {"idle_s": 300.0}, "live": {"provisional_every_ms": 1500.0}}) as (addrs, _):
        yield addrs


@pytest.fixture(scope="module")
def web(stack):
    server = WebServer(stack["gateway"], stack["talker"]).start()
    try:
        yield server
    finally:
        server.stop()
