"""The supervisor's policy on real child processes: restart with backoff, give up loudly on a crash loop, never
retry a configuration error, refuse a busy port up front. (The whole stack under faults: tests/test_stack_faults.py.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from emoomni.core.config import SupervisionConfig
from emoomni.core.supervisor import GiveUp, PortBusy, Supervisor, die_with_parent, end_process, ensure_port_free

FAST = SupervisionConfig(backoff_s=0.05, max_backoff_s=0.2, max_quick_crashes=3, quick_crash_s=30, stop_grace_s=2)


def child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], preexec_fn=die_with_parent(os.getpid()))


def run_until_give_up(supervisor: Supervisor, timeout_s: float = 30) -> str:
    supervisor.start_all()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            supervisor.poll()
            time.sleep(0.02)
    except GiveUp as exc:
        return str(exc)
    finally:
        supervisor.stop()
    raise AssertionError("the supervisor never gave up")


def test_a_crash_loop_is_restarted_with_backoff_then_given_up_on_loudly():
    said: list[str] = []
    supervisor = Supervisor(FAST, say=said.append)
    supervisor.add("crasher", lambda: child("import sys; sys.exit(7)"))
    message = run_until_give_up(supervisor)
    assert "crasher exited with code 7" in message and "3 times in a row" in message
    assert [line for line in said if "restarting in" in line] == [
        "crasher exited with code 7; restarting in 0.1 s (crash 1)",
        "crasher exited with code 7; restarting in 0.1 s (crash 2)"]
    assert supervisor.children["crasher"].restarts == 2


def test_once_the_stack_has_served_a_crash_loop_is_restarted_for_ever_and_counted():
    """Issue 25, finding 3: inputs that crash a stage again and again must not stop the other services."""
    said: list[str] = []
    supervisor = Supervisor(FAST, say=said.append)
    supervisor.add("crasher", lambda: child("import sys; sys.exit(7)"))
    supervisor.add("steady", lambda: child("import time; time.sleep(60)"))
    supervisor.start_all()
    supervisor.served = True
    steady = supervisor.children["steady"].proc
    deadline = time.monotonic() + 30
    try:
        while supervisor.children["crasher"].restarts < 4 * FAST.max_quick_crashes:
            assert time.monotonic() < deadline, said[-3:]
            supervisor.poll()  # never raises GiveUp now
            time.sleep(0.02)
        assert steady.poll() is None and supervisor.children["steady"].proc is steady, "the others keep running"
        assert any("restarting in 0.2 s (crash 12)" in line for line in said), said[-3:]
    finally:
        supervisor.stop()


def test_a_configuration_error_is_not_retried():
    supervisor = Supervisor(FAST, say=lambda _: None)
    supervisor.add("bad", lambda: child("import sys; sys.exit(3)"), fatal_codes=(3,))
    message = run_until_give_up(supervisor)
    assert "bad exited with code 3" in message and supervisor.children["bad"].restarts == 0


def test_a_killed_child_comes_back_and_stop_ends_it():
    supervisor = Supervisor(FAST, say=lambda _: None)
    supervisor.add("sleeper", lambda: child("import time; time.sleep(60)"))
    supervisor.start_all()
    first = supervisor.children["sleeper"].proc
    first.kill()
    deadline = time.monotonic() + 10
    while supervisor.children["sleeper"].proc is first or supervisor.children["sleeper"].proc is None:
        assert time.monotonic() < deadline
        supervisor.poll()
        time.sleep(0.02)
    second = supervisor.children["sleeper"].proc
    assert second.poll() is None
    started = time.monotonic()
    supervisor.stop()
    assert second.poll() is not None and time.monotonic() - started < FAST.stop_grace_s + 1


def test_a_busy_port_is_named():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(PortBusy, match=f"port {port} on 127.0.0.1 \\(gateway gRPC\\) is already in use"):
            ensure_port_free("127.0.0.1", port, "gateway gRPC")


def test_end_process_asks_first_and_kills_what_does_not_listen():
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                                 "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True)\n"
                                 "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout.readline().strip() == "ready"
    started = time.monotonic()
    assert end_process(polite, 5) == -15, "SIGTERM ended it"
    assert end_process(stubborn, 0.5) == -9, "SIGKILL after the grace time"
    assert time.monotonic() - started < 4
    assert end_process(polite, 5) == -15, "an ended process just reports its code"
