"""`emoomni up` survives what happens to a long-running agent, in its secure configuration (TLS on every gRPC
server and on the bus, a bearer token, bus credentials): a stage or the nats-server killed with SIGKILL
mid-turn, a second `emoomni up` on the same ports, SIGTERM, and `emoomni up` itself killed with SIGKILL.

All faults share one stack (module scope), in this order; the last tests end it. Each fault: the turn in
flight ends within 10 s (or completes), the stack serves full turns again within 90 s, nothing is left."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from emoomni.core.certs import make_certs
from emoomni.core.natsserver import free_port
from emoomni.core.security import client_channel
from emoomni.core.supervisor import descendants
from emoomni.sdk.client import Client

SERVICES = ("perception", "reasoning", "instruction", "talker", "gateway")
TOKEN = "fault-test-token"
RECOVERY_S = 90
ENDS_WITHIN_S = 10


def alive(pids) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def up(config_path: Path, log_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "NATS_", "EMOOMNI_"))}
    return subprocess.Popen([sys.executable, "-m", "emoomni", "--config", str(config_path), "up"], env=env,
                            stdout=log_path.open("w"), stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def secure_stack(tmp_path_factory):
    """`emoomni up` with TLS + token on free ports; records the gateway's health while the stages load."""
    d = tmp_path_factory.mktemp("faults")
    certs = make_certs(d / "certs")
    addrs = {name: f"127.0.0.1:{free_port()}" for name in SERVICES}
    # The default models, as a new user runs them. A turn whose instruction service is killed at perception ends
    # within the 10 s bound because the gateway ends a turn once a stage it still needs has answered no presence
    # check for `stall_s`, even when the strategy was already handed on but taken by no replica (before that rule,
    # with the Qwen default, it ended 10.5-17 s after the kill).
    config = {"services": addrs, "nats": {"url": f"nats://127.0.0.1:{free_port()}", "monitor_port": free_port()},
              "security": {"token": TOKEN, "tls": {"cert": str(certs / "server.pem"), "key": str(certs / "server.key"),
                                                   "ca": str(certs / "ca.pem")}}}
    (d / "stack.yaml").write_text(yaml.safe_dump(config))
    proc = up(d / "stack.yaml", d / "up.log")
    stack = {"proc": proc, "addrs": addrs, "config": d / "stack.yaml", "log": d / "up.log", "ca": certs / "ca.pem",
             "dir": d, "health": []}
    try:
        deadline = time.monotonic() + 900
        while not all(health(stack, name) == "SERVING" for name in SERVICES):
            assert proc.poll() is None and time.monotonic() < deadline, stack["log"].read_text()[-3000:]
            # The gateway first: a stage probed after it that is SERVING was already so when the gateway was.
            stack["health"].append({name: health(stack, name) for name in reversed(SERVICES)})
            time.sleep(0.5)
        wait_for_line(stack, "EmoOmni is up")
        yield stack
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_for_line(stack, text: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in stack["log"].read_text():
        assert time.monotonic() < deadline, f"{text!r} not in the log: {stack['log'].read_text()[-2000:]}"
        time.sleep(0.2)


def health(stack, name: str) -> str:
    try:
        with client_channel(stack["addrs"][name], tls_ca=str(stack["ca"])) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.RpcError as exc:
        return exc.code().name


def wait_serving(stack, timeout_s: float = RECOVERY_S) -> float:
    started = time.monotonic()
    while health(stack, "gateway") != "SERVING":
        assert time.monotonic() - started < timeout_s, stack["log"].read_text()[-3000:]
        time.sleep(0.5)
    return time.monotonic() - started


def pid_of(stack, needle: str) -> int:
    return next(pid for pid, argv in descendants(stack["proc"].pid).items() if needle in " ".join(argv))


def turn_with_fault(stack, clip: Path, when: str, victim: str) -> tuple[str, float]:
    """Run a turn, SIGKILL `victim` when the event `when` arrives ("start": one second after sending); returns
    how the turn ended ("done" or a status code) and the seconds from the kill to that end."""
    pid = pid_of(stack, victim)
    killed_at: list[float] = []

    def kill() -> None:
        if not killed_at:
            os.kill(pid, signal.SIGKILL)
            killed_at.append(time.monotonic())

    timer = threading.Timer(1.0, kill) if when == "start" else None
    outcome = "no events"
    with Client(stack["addrs"]["gateway"], tls_ca=str(stack["ca"]), token=TOKEN) as client:
        try:
            if timer:
                timer.start()
            for event in client.converse(clip):
                kind = event.WhichOneof("event")
                if kind == when:
                    kill()
                outcome = kind
        except grpc.RpcError as exc:
            outcome = f"{exc.code().name}: {exc.details()}"
    if timer:
        timer.join()
    assert killed_at, f"the turn ended ({outcome}) before {victim} could be killed"
    return outcome, time.monotonic() - killed_at[0]


def test_gateway_is_not_serving_until_every_stage_is(secure_stack):
    samples = secure_stack["health"]
    assert samples, "the stack was up before the first health probe"
    for sample in samples:
        stages_ready = all(sample[name] == "SERVING" for name in SERVICES[:-1])
        assert sample["gateway"] != "SERVING" or stages_ready, sample
    assert any(sample["gateway"] == "NOT_SERVING" for sample in samples), "the gateway was seen before it was ready"
    log = secure_stack["log"].read_text()
    assert "EmoOmni is up" in log


@pytest.mark.parametrize(("victim", "when"), [("serve perception", "start"), ("serve reasoning", "perception"),
                                              ("serve talker", "audio"), ("serve instruction", "perception"),
                                              ("nats-server", "ecot_delta")])
def test_sigkill_mid_turn_ends_the_turn_fast_and_the_stack_recovers(secure_stack, english_clip, victim, when):
    wait_serving(secure_stack)
    outcome, seconds = turn_with_fault(secure_stack, english_clip, when, victim)
    print(f"{victim} killed at {when}: {outcome} after {seconds:.1f} s")  # shown with a failure, or with -s
    assert outcome == "done" or outcome.startswith("UNAVAILABLE"), outcome
    # Saved (the restarted replica took the work from the queue) or ended fast.
    assert outcome == "done" or seconds < ENDS_WITHIN_S, (outcome, seconds)
    assert secure_stack["proc"].poll() is None, "emoomni up keeps running"
    wait_serving(secure_stack)  # restarted (or reconnected) within RECOVERY_S
    wait_for_line(secure_stack, f"{victim.split()[-1]} restarted")


def rss_mb(pid: int) -> float:
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_an_unauthenticated_60_mb_request_is_refused_unread_and_memory_stays_flat(secure_stack):
    """Issue 25, finding 5: a unary request is read whole before the token is checked, so servers read at most
    MAX_REQUEST_MESSAGE per message; big clips go through the upload stream."""
    from emoomni.v1 import agent_pb2, agent_pb2_grpc, media_pb2

    wait_serving(secure_stack)
    gateway = pid_of(secure_stack, "serve gateway")
    before = rss_mb(gateway)
    request = agent_pb2.ConverseRequest(media=media_pb2.MediaInput(data=os.urandom(60 * 1024 * 1024)))
    for _ in range(5):
        with client_channel(secure_stack["addrs"]["gateway"], tls_ca=str(secure_stack["ca"])) as channel, \
                pytest.raises(grpc.RpcError) as err:
            list(agent_pb2_grpc.AgentStub(channel).Converse(request, timeout=60))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value
    # Read whole (before the fix), each request stayed: +60 MB per request, 300 MB here. Refused unread, the
    # gateway grows by gRPC's buffers only (measured 2026-12-07: +4 MB a request on average, +69 MB at most over
    # three requests with TLS).
    grown = rss_mb(gateway) - before
    assert grown < 100, f"the gateway grew by {grown:.0f} MB after five 60 MB requests"
    assert health(secure_stack, "gateway") == "SERVING"


def replaced_pid(stack, needle: str, old: int, timeout_s: float = 60) -> int:
    """The pid of `needle` once the supervisor has started a new one in place of `old`."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid = next((p for p, argv in descendants(stack["proc"].pid).items() if needle in " ".join(argv)), old)
        if pid != old and pid in alive([pid]):
            return pid
        assert time.monotonic() < deadline and stack["proc"].poll() is None, stack["log"].read_text()[-3000:]
        time.sleep(0.05)


def test_reasoning_killed_mid_turn_three_times_in_a_row_comes_back_each_time(secure_stack, english_clip):
    """Issue 25, finding 7: a reasoning replica killed with SIGKILL mid-turn was once still not serving 90 s later.
    Killed three times, each while it works on a turn, it serves again each time within RECOVERY_S."""
    recovered = []
    for _ in range(5):
        wait_serving(secure_stack)
        outcome, _ = turn_with_fault(secure_stack, english_clip, "perception", "serve reasoning")
        assert outcome == "done" or outcome.startswith("UNAVAILABLE"), outcome
        recovered.append(round(wait_serving(secure_stack), 1))
    print(f"reasoning back after {recovered} s")


def test_a_stage_in_a_crash_loop_never_stops_the_stack(secure_stack, english_clip):
    """Issue 25, finding 3: perception killed as soon as it starts, more times than `max_quick_crashes` (before,
    `emoomni up` then gave up and stopped every service). The others keep serving; perception comes back."""
    wait_serving(secure_stack)
    pid = pid_of(secure_stack, "serve perception")
    for _ in range(7):
        os.kill(pid, signal.SIGKILL)
        pid = replaced_pid(secure_stack, "serve perception", pid)
    assert secure_stack["proc"].poll() is None, secure_stack["log"].read_text()[-3000:]
    assert health(secure_stack, "talker") == "SERVING", "the other services were never stopped"
    wait_serving(secure_stack)
    assert secure_stack["log"].read_text().count("perception was killed by signal 9") >= 7
    with Client(secure_stack["addrs"]["gateway"], tls_ca=str(secure_stack["ca"]), token=TOKEN) as client:
        events = list(client.converse(english_clip))
    assert events[-1].WhichOneof("event") == "done"


def test_full_turn_from_the_cli_after_the_faults(secure_stack, english_clip, tmp_path):
    wait_serving(secure_stack)
    env = dict(os.environ, EMOOMNI_TOKEN=TOKEN)
    run = subprocess.run([sys.executable, "-m", "emoomni", "chat", str(english_clip), "--out", str(tmp_path),
                          "--remote", secure_stack["addrs"]["gateway"], "--tls-ca", str(secure_stack["ca"])],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "reply.wav").stat().st_size > 10_000


def test_a_second_up_on_the_same_ports_exits_at_once(secure_stack, tmp_path):
    started = time.monotonic()
    second = up(secure_stack["config"], tmp_path / "second.log")
    assert second.wait(timeout=60) != 0
    message = (tmp_path / "second.log").read_text()
    config = yaml.safe_load(secure_stack["config"].read_text())
    ports = [config["nats"]["url"].rsplit(":", 1)[1], *(a.rsplit(":", 1)[1] for a in secure_stack["addrs"].values())]
    assert "already in use" in message and any(f"port {p} " in message for p in ports), message
    assert time.monotonic() - started < 30
    assert not descendants(second.pid)
    assert health(secure_stack, "gateway") == "SERVING", "the first stack is untouched"


def test_sigterm_stops_everything_within_10_s(secure_stack, english_clip):
    proc = secure_stack["proc"]
    children = descendants(proc.pid)
    assert len(children) >= 6, children  # nats-server and five services
    # Mid-turn: a busy model thread must not hold a service past the budget.
    turn = threading.Thread(target=turn_with_fault_free, args=(secure_stack, english_clip), daemon=True)
    turn.start()
    time.sleep(3)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)
    while alive(children) and time.monotonic() - started < 10:
        time.sleep(0.1)
    assert time.monotonic() - started < 10 and not alive(children), {p: children[p] for p in alive(children)}


def turn_with_fault_free(stack, clip) -> None:
    with Client(stack["addrs"]["gateway"], tls_ca=str(stack["ca"]), token=TOKEN) as client, \
            contextlib.suppress(grpc.RpcError):
        list(client.converse(clip))


def test_sigkill_of_up_leaves_no_process(tmp_path):
    addrs = {name: f"127.0.0.1:{free_port()}" for name in SERVICES}
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump({"services": addrs, "nats": {
        "url": f"nats://127.0.0.1:{free_port()}", "monitor_port": free_port()}}))
    proc = up(tmp_path / "stack.yaml", tmp_path / "up.log")
    deadline = time.monotonic() + 60
    while len(descendants(proc.pid)) < 6:  # nats-server and five services (loading their models)
        assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "up.log").read_text()
        time.sleep(0.2)
    children = descendants(proc.pid)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while alive(children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(children), {p: children[p] for p in alive(children)}
