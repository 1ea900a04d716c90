"""The web demo in a real headless Firefox (Debian's firefox-esr), driven over Mozilla's Marionette protocol with
its Python client (`marionette-driver`): no geckodriver can be installed from the package registries, and Firefox
speaks Marionette itself. The stack is `emoomni up` and `emoomni web --remote`, as in test_web.py.

Firefox's fake devices (`media.navigator.streams.fake`) are a tone and a test pattern, not a clip, so this test
cannot steer speech: it proves what differs between browsers (the page's modules, the devices, the AudioWorklet
capture, the WebSocket, WebAudio playback) with a typed turn, and leaves speech, barge-in and recovery to the
Chromium test. Script errors are read from Firefox's own console (chrome context).

Unlike headless Chromium, headless Firefox has no fake audio output: with no sound server its AudioContext never
leaves "suspended" and the page cannot start. The test gives it one, as a machine with speakers has: a private
PulseAudio server (Debian's pulseaudio) with a null sink, reached through PULSE_SERVER.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from emoomni.apps.web.tests.webpage import diagnosis, page, programs, status, text, wait
from emoomni.core.natsserver import free_port

pytestmark = pytest.mark.slow

FAKE_DEVICES = {
    "media.navigator.streams.fake": True,  # a fake tone and a fake video instead of real devices
    "media.navigator.permission.disabled": True,  # the user's "allow", answered without a prompt
}
# Errors and uncaught exceptions of the page's own scripts, from Firefox's console service.
SCRIPT_ERRORS = """
const [origin] = arguments;
return Services.console.getMessageArray()
  .filter((m) => m instanceof Ci.nsIScriptError && !(m.flags & Ci.nsIScriptError.warningFlag)
                 && (m.sourceName || '').startsWith(origin))
  .map((m) => `${m.sourceName}:${m.lineNumber}: ${m.errorMessage}`);
"""


def _binaries() -> list[str]:
    return programs("firefox-esr|firefox", "pulseaudio", install="bash scripts/setup.sh --dev installs Debian's "
                    "firefox-esr and pulseaudio")


@pytest.fixture(scope="module")
def speakers(tmp_path_factory):
    """A private PulseAudio server whose only output is a null sink: somewhere for Firefox's audio to go."""
    _, pulseaudio = _binaries()
    folder = tmp_path_factory.mktemp("pulse")
    socket = folder / "native"
    env = {"HOME": str(folder), "XDG_RUNTIME_DIR": str(folder), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [pulseaudio, "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no", "--log-target=stderr",
         "-L", f"module-native-protocol-unix socket={socket} auth-anonymous=1", "-L", "module-null-sink"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not socket.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "pulseaudio did not start"
            time.sleep(0.1)
        yield f"unix:{socket}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def firefox(tmp_path_factory, speakers):
    from marionette_driver.marionette import Marionette

    binary, _ = _binaries()
    log = tmp_path_factory.mktemp("firefox") / "gecko.log"
    with pytest.MonkeyPatch.context() as env:  # Firefox takes this process's environment
        env.setenv("MOZ_HEADLESS", "1")
        env.setenv("PULSE_SERVER", speakers)
        driver = Marionette(bin=binary, headless=True, port=free_port(), prefs=FAKE_DEVICES, gecko_log=str(log),
                            startup_timeout=120)
        driver.start_session()
    try:
        driver.set_window_rect(width=1400, height=1100)
        yield driver
    finally:
        driver.cleanup()  # ends the session, quits Firefox and removes its profile


def script_errors(driver, url: str) -> list[str]:
    with driver.using_context(driver.CONTEXT_CHROME):
        return driver.execute_script(SCRIPT_ERRORS, script_args=[url.rstrip("/")])


def test_firefox_goes_live_answers_a_typed_message_aloud_and_stops(firefox, web):
    firefox.navigate(web.url)
    wait(firefox, lambda: firefox.find_elements("css selector", "#talker option[value='espeak']"), 20,
         "the talker list")
    assert page(firefox, "state") == "idle" and not script_errors(firefox, web.url)

    firefox.find_element("id", "start").click()
    wait(firefox, lambda: page(firefox, "status") == "live", 30, "the live session")
    firefox.find_element("id", "mute").click()  # the fake tone is no speech to answer
    assert "Camera: on" in text(firefox, "devices"), text(firefox, "devices")
    wait(firefox, lambda: float(page(firefox, "micMs") or 0) > 500, 10, "captured microphone audio")
    firefox.find_element("css selector", "#talker option[value='espeak']").click()  # the fastest talker
    wait(firefox, lambda: page(firefox, "status") == "live" and "espeak" in status(firefox), 30, "the talker switch")

    played = float(page(firefox, "playedMs") or 0)
    box = firefox.find_element("id", "text")
    box.send_keys("Hello, how are you today?")
    box.send_keys("\ue007")  # Enter submits the form
    done = "#transcript li[data-done='true'][data-talker='espeak']"
    wait(firefox, lambda: firefox.find_elements("css selector", done), 90, "the typed turn's reply")
    wait(firefox, lambda: float(page(firefox, "playedMs") or 0) > played + 500, 30, "the reply to be played")
    assert text(firefox, "reply"), f"#reply is empty; {diagnosis(firefox)}"
    wait(firefox, lambda: page(firefox, "state") == "listening", 60, "the reply to be played to its end")

    firefox.find_element("id", "start").click()  # Stop
    wait(firefox, lambda: page(firefox, "state") == "idle", 10, "the page to stop")
    assert text(firefox, "start") == "Start"
    assert not script_errors(firefox, web.url), script_errors(firefox, web.url)
