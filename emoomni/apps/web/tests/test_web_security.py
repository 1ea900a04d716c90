"""`emoomni web` exposed beyond loopback follows the stack's rules: no listen without TLS and a token; with them, the
page's calls need the token, and WebSockets from another origin are refused. Real `emoomni web` processes, real TLS
(certificates from `emoomni certs`); no stack behind them (none is needed to be refused)."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import aiohttp
import pytest
import yaml

from emoomni.core.certs import make_certs
from emoomni.core.natsserver import free_port

TOKEN = "web-test-token-7f3a"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "EMOOMNI_"))}


def test_an_exposed_address_without_tls_and_a_token_is_refused():
    done = subprocess.run([sys.executable, "-m", "emoomni", "web", "--host", "0.0.0.0", "--port", str(free_port()),
                           "--remote", "127.0.0.1:1"], env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "refusing to listen on 0.0.0.0" in done.stderr and "TLS" in done.stderr


@pytest.fixture(scope="module")
def exposed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web-tls")
    certs = make_certs(folder / "certs")
    (folder / "stack.yaml").write_text(yaml.safe_dump({"security": {
        "token": TOKEN, "tls": {"cert": str(certs / "server.pem"), "key": str(certs / "server.key")}}}))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "emoomni", "--config", str(folder / "stack.yaml"), "web",
                             "--host", "0.0.0.0", "--port", str(port), "--remote", "127.0.0.1:1"], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/", context=context, timeout=5).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "emoomni web did not start"
                time.sleep(0.2)
        yield base, context
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_exposed_the_page_is_https_and_its_calls_need_the_token(exposed):
    base, context = exposed
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base + "/api/info", context=context, timeout=10)
    assert refused.value.code == 401
    with urllib.request.urlopen(f"{base}/api/info?token={TOKEN}", context=context, timeout=10) as answer:
        assert answer.status == 200 and b"127.0.0.1:1" in answer.read()


def test_a_websocket_from_another_origin_is_refused(exposed):
    base, context = exposed
    ws_url = base.replace("https", "wss") + f"/ws?token={TOKEN}"

    async def connect(origin: str) -> int:
        async with aiohttp.ClientSession() as client:
            try:
                async with client.ws_connect(ws_url, ssl=context, origin=origin) as ws:
                    await ws.close()
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert asyncio.run(connect("https://evil.example")) == 403
    assert asyncio.run(connect(base)) == 101


def test_a_rebound_host_name_is_refused_on_loopback():
    """Issue 25, finding 6 (DNS rebinding): a page on evil.example whose name is re-pointed at 127.0.0.1 sends
    Host and Origin both naming evil.example, so they match. The server answers only to the names it knows."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "emoomni", "web", "--port", str(port), "--remote", "127.0.0.1:1",
                             "--allow-host", "robot.local"], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def status(path: str, host: str, origin: str = "") -> int:
        headers = {"Host": host, **({"Origin": origin} if origin else {})}
        try:
            with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers), timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/", timeout=5).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "emoomni web did not start"
                time.sleep(0.2)
        rebound = f"evil.example:{port}"
        for path in ("/", "/api/info", "/ws", "/static/app.js"):
            assert status(path, rebound, f"http://{rebound}") == 421, path
        assert status("/", f"localhost:{port}") == 200
        assert status("/", f"robot.local:{port}") == 200
        assert status("/", f"[::1]:{port}") == 200
    finally:
        proc.terminate()
        proc.wait(timeout=15)
