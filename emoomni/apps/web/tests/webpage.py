"""What the web demo's browser tests share, whichever browser drives the page: `emoomni web` as its own process
and reading the page's state (its data-* hooks, docs/web.md). The helpers take any driver with selenium's calls
`execute_script(script)` and `find_element(s)(by, value)`, which Marionette's client (Firefox) also has."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from emoomni.core.natsserver import free_port
from emoomni.testing.stack import RUNNING_LOGS


def programs(*names: str, install: str) -> list[str]:
    """The path of each program ("a|b": the first of these names on PATH); the test fails saying how to install
    them when one is missing."""
    found = [next(filter(None, map(shutil.which, name.split("|"))), None) for name in names]
    if not all(found):
        pytest.fail(f"the web demo's browser test needs {', '.join(names)}: {install}")
    return found


class WebServer:
    """`emoomni web --remote GATEWAY` as its own process on a fixed port, so that it can be killed and restarted."""

    def __init__(self, gateway: str, talkers: str = ""):
        self.gateway, self.talkers, self.port = gateway, talkers, free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(tempfile.mkdtemp(prefix="emoomni-web-")) / "web.log"
        RUNNING_LOGS.add(self.log_path)  # a failed test's report carries its tail

    def start(self) -> WebServer:
        command = [sys.executable, "-m", "emoomni", "web", "--port", str(self.port), "--remote", self.gateway]
        if self.talkers:
            command += ["--talkers", self.talkers]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "EMOOMNI_"))}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "api/info", timeout=5):
                    return self
            except OSError:
                assert self.proc.poll() is None, "emoomni web exited"
                time.sleep(0.2)
        raise RuntimeError("emoomni web did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        RUNNING_LOGS.discard(self.log_path)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def page(driver, name: str):
    return driver.execute_script(f"return document.body.dataset.{name} || ''")


def status(driver) -> str:
    return driver.execute_script("return document.getElementById('status').textContent")


def text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text.strip()


def wait(driver, check, timeout_s: float, what: str, every_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; {diagnosis(driver)}")


def diagnosis(driver) -> str:
    """What the page shows and holds, for a failure message: status, state, turns in flight and the transcript."""
    turns = driver.execute_script(
        "return [...document.querySelectorAll('#transcript li')].map((li) => [li.dataset.turnId, "
        "li.dataset.done || '', li.dataset.interrupted || '', li.dataset.clip || '', li.innerText.slice(0, 160)])")
    muted = driver.find_element("id", "mute").get_attribute("aria-pressed")
    return (f"status: {status(driver)!r}, state: {page(driver, 'state')!r}, in flight: "
            f"{page(driver, 'turnsInFlight')!r}, converse busy: {page(driver, 'converseBusy')!r}, muted: {muted}, "
            f"played ms: {page(driver, 'playedMs')}, transcript: {turns!r}")
