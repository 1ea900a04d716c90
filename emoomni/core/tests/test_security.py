"""Who may call the stack and what it may make the server read.

Real processes: a nats-server with credentials and `emoomni serve gateway` with mutual TLS, a bearer token and
one media root, certificates made by `emoomni certs`. No stage runs, so every call here is answered by the
gateway's own checks (authentication, path policy) or by its report that no perception replica is on the bus."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import grpc
import nats
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from emoomni.core.certs import make_certs
from emoomni.core.natsserver import NatsServer, free_port
from emoomni.core.security import PATH_REFUSED, PathNotAllowed, check_media_path, client_channel
from emoomni.testing.stack import serving
from emoomni.v1 import agent_pb2, agent_pb2_grpc, media_pb2

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    return {"good": make_certs(d / "good"), "other": make_certs(d / "other", ca_name="Someone Else's CA")}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A media root with a clip-named file and a symlink out of it, and a secret beside the root."""
    d = tmp_path_factory.mktemp("paths")
    root = d / "media"
    root.mkdir()
    (root / "inside.mp4").write_bytes(b"not really a clip")
    secret = d / "secret.txt"
    secret.write_text("do not read me")
    (root / "escape.mp4").symlink_to(secret)
    return {"root": root, "secret": secret}


@pytest.fixture(scope="module")
def gateway(pki, files, tmp_path_factory):
    d = tmp_path_factory.mktemp("gateway")
    good = pki["good"]
    with NatsServer(user="bus-user", password="bus-pass") as bus:
        addr = f"127.0.0.1:{free_port()}"
        config = {"nats": {"url": bus.url, "user": "bus-user", "password": "bus-pass"}, "services": {"gateway": addr},
                  "security": {"token": TOKEN, "media_roots": [str(files["root"])],
                               "tls": {"cert": str(good / "server.pem"), "key": str(good / "server.key"),
                                       "client_ca": str(good / "ca.pem")}}}
        with serving("gateway", config, d):
            yield {"addr": addr, "bus": bus}


def _channel(gateway, pki, *, token=TOKEN, ca="good", client_cert=True):
    good = pki["good"]
    return client_channel(gateway["addr"], tls_ca=str(pki[ca] / "ca.pem"), token=token,
                          client_cert=str(good / "client.pem") if client_cert else "",
                          client_key=str(good / "client.key") if client_cert else "")


def _converse(channel, path: str):
    stub = agent_pb2_grpc.AgentStub(channel)
    request = agent_pb2.ConverseRequest(media=media_pb2.MediaInput(path=path))
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Converse(request, timeout=20))
    return err.value


def test_health_needs_no_token_and_is_not_serving_without_stages(gateway, pki):
    with _channel(gateway, pki, token="") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.parametrize("token", ["", "wrong-token"])
def test_a_call_without_the_right_token_is_unauthenticated(gateway, pki, files, token):
    with _channel(gateway, pki, token=token) as channel:
        err = _converse(channel, str(files["root"] / "inside.mp4"))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_right_token_passes(gateway, pki, files):
    with _channel(gateway, pki) as channel:
        err = _converse(channel, str(files["root"] / "inside.mp4"))
    # Past authentication and the path policy: the turn is refused only because no stage is running.
    assert err.code() == grpc.StatusCode.UNAVAILABLE and "perception" in err.details()


@pytest.mark.parametrize("case", ["wrong_ca", "no_client_cert"])
def test_tls_handshake_failures_are_refused(gateway, pki, files, case):
    kwargs = {"ca": "other"} if case == "wrong_ca" else {"client_cert": False}
    with _channel(gateway, pki, **kwargs) as channel:
        err = _converse(channel, str(files["root"] / "inside.mp4"))
    assert err.code() == grpc.StatusCode.UNAVAILABLE  # no TLS session, so no call ever reaches the server


def test_paths_outside_the_roots_are_refused_alike(gateway, pki, files):
    root = files["root"]
    paths = {"outside": "/etc/passwd", "dotdot": f"{root}/../{files['secret'].name}",
             "symlink": str(root / "escape.mp4"), "missing": "/nonexistent/clip.mp4",
             "missing_outside_dotdot": f"{root}/../nothing.mp4"}
    with _channel(gateway, pki) as channel:
        errors = {name: _converse(channel, path) for name, path in paths.items()}
    assert {name: e.code() for name, e in errors.items()} == dict.fromkeys(paths, grpc.StatusCode.PERMISSION_DENIED)
    assert {e.details() for e in errors.values()} == {PATH_REFUSED}


def test_path_policy_resolves_before_deciding(files, tmp_path):
    root = files["root"]
    assert check_media_path(str(root / "inside.mp4"), [str(root)]) == str((root / "inside.mp4").resolve())
    (root / "alias.mp4").symlink_to(root / "inside.mp4")  # a link that stays inside is fine
    assert check_media_path(str(root / "alias.mp4"), [str(root)]).endswith("inside.mp4")
    sibling = tmp_path / f"{root.name}-evil"  # shares the root's name as a prefix, but is outside it
    sibling.mkdir()
    for path, roots in [(str(sibling / "x.mp4"), [str(root)]), (str(root / "inside.mp4"), [])]:
        with pytest.raises(PathNotAllowed):
            check_media_path(path, roots)


def test_the_bus_refuses_clients_without_credentials(gateway):
    bus = gateway["bus"]

    async def attempt(**creds):
        nc = await nats.connect(bus.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3, **creds)
        await nc.close()

    with pytest.raises(Exception, match=r"(?i)authorization"):
        asyncio.run(attempt())
    with pytest.raises(Exception, match=r"(?i)authorization"):
        asyncio.run(attempt(user="bus-user", password="guess"))
    asyncio.run(attempt(user="bus-user", password="bus-pass"))


def test_non_loopback_listen_without_tls_refuses_to_start(tmp_path):
    config = {"services": {"gateway": f"0.0.0.0:{free_port()}"},
              "nats": {"url": f"nats://127.0.0.1:{free_port()}", "monitor_port": 0}}
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "EMOOMNI_"))}
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "emoomni", "--config", str(tmp_path / "stack.yaml"), "up"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert "0.0.0.0" in run.stderr and "security.tls.cert" in run.stderr and "EMOOMNI_TOKEN" in run.stderr
    assert time.monotonic() - started < 30
