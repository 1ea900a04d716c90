"""The web demo end to end: a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium) with
fake camera and microphone devices fed from a real clip, `emoomni web --remote` as its own process, and `emoomni up`
(real nats-server, every service its own process, real models).

The page asks for the devices as it would a user; the test answers for the user through the DevTools protocol
(Browser.setPermission), so that it can also refuse them. Chromium loops its fake microphone file (the clip, then
1.5 s of silence), so the test steers what reaches the agent with the page's own mute button, timed on the page's
count of captured microphone audio (`data-mic-ms`): one utterance for the first turn, then speech over the agent's
reply for a barge-in.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import cv2
import numpy as np
import psutil
import pytest
import soundfile as sf

from emoomni.apps.web.tests.webpage import WebServer, diagnosis, page, programs, status, text, wait
from emoomni.core.config import load_config
from emoomni.core.media import decode_audio, decode_frames, read_source
from emoomni.core.natsserver import free_port

pytestmark = pytest.mark.slow

ENGLISH = "merged_7e578e0b.mp4"
MIC_RATE = 48000
SILENCE_S = 1.5
SPEECH_END_S = 5.1  # the clip's voice runs to its end (speech at 0.2-2.7 s and 3.3-5.1 s)
SCREENSHOT = Path(__file__).resolve().parents[4] / "docs" / "web-demo.png"


@pytest.fixture(scope="module")
def fake_devices(shared_media, tmp_path_factory) -> tuple[Path, Path, float]:
    """The clip as Chromium's fake devices: mic.wav (the clip's voice, then silence; it loops) and camera.y4m."""
    folder = tmp_path_factory.mktemp("fake-devices")
    cfg = load_config(env={})
    source = read_source(str(shared_media / ENGLISH), None, cfg.limits)
    media = decode_audio(source, cfg.limits, MIC_RATE)
    audio = np.concatenate([media.audio, np.zeros(int(MIC_RATE * SILENCE_S), np.float32)])
    sf.write(folder / "mic.wav", (np.clip(audio, -1, 1) * 32767).astype(np.int16), MIC_RATE, subtype="PCM_16")
    fps = 10
    with open(folder / "camera.y4m", "wb") as y4m:
        for index, (_, rgb) in enumerate(decode_frames(source, media.duration_s, int(media.duration_s * fps), 640)):
            height, width = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
            if index == 0:
                y4m.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
            bgr = np.ascontiguousarray(rgb[:height, :width, ::-1])
            y4m.write(b"FRAME\n" + cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes())
    return folder / "mic.wav", folder / "camera.y4m", audio.size / MIC_RATE * 1000


@pytest.fixture(scope="module")
def browser(fake_devices):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = programs("chromium|chromium-browser", "chromedriver", install="bash scripts/setup.sh "
                                     "--dev installs Debian's chromium and chromium-driver")
    mic, camera, _ = fake_devices
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100",
                 "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-video-capture={camera}", f"--use-file-for-fake-audio-capture={mic}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def allow_devices(driver, url: str, setting: str = "granted") -> None:
    """What a user answers to the page's camera and microphone prompt ("granted" or "denied"), for that origin."""
    for name in ("microphone", "camera"):
        driver.execute_cdp_cmd("Browser.setPermission", {"origin": url.rstrip("/"), "permission": {"name": name},
                                                         "setting": setting})


def phase_ms(driver, period_ms: float) -> float:
    """Where the looping microphone file is now, by the page's count of captured audio."""
    return float(page(driver, "micMs") or 0) % period_ms


def set_muted(driver, muted: bool) -> None:
    button = driver.find_element("id", "mute")
    if (button.get_attribute("aria-pressed") == "true") != muted:
        button.click()


def mute_after_speech(driver, period_ms: float) -> None:
    """Mute in the file's silence, before its voice starts again."""
    wait(driver, lambda: SPEECH_END_S * 1000 + 150 < phase_ms(driver, period_ms) < period_ms - 250, 30,
         "the silence after the clip's voice", every_s=0.03)
    set_muted(driver, True)


def test_refused_devices_and_a_stack_that_is_down_are_told_in_words(browser, shared_media):
    clip = shared_media / ENGLISH
    server = WebServer(f"127.0.0.1:{free_port()}").start()  # nothing listens at that gateway address
    try:
        browser.get(server.url)
        allow_devices(browser, server.url, "denied")
        browser.find_element("id", "start").click()
        wait(browser, lambda: "microphone was refused" in status(browser), 15, "the refused microphone reported")
        assert page(browser, "state") == "idle"

        allow_devices(browser, server.url)
        browser.execute_cdp_cmd("Browser.setPermission", {"origin": server.url.rstrip("/"),
                                                          "permission": {"name": "camera"}, "setting": "denied"})
        browser.find_element("id", "start").click()  # the microphone alone: the page goes on without video
        wait(browser, lambda: "cannot reach the emoomni stack" in status(browser).lower(), 20, "the stack down")
        assert "Camera: refused (talking without video)" in text(browser, "devices")
        assert page(browser, "state") == "idle" and page(browser, "status") == "stack_down"
        browser.find_element("id", "start").click()  # Stop

        browser.find_element("id", "clip").send_keys(str(clip))  # the upload mode says so too
        browser.find_element("id", "send-clip").click()
        wait(browser, lambda: "the clip's turn failed (unavailable" in status(browser).lower(), 20, "the failed upload")
    finally:
        server.stop()


def test_a_spoken_turn_fills_the_page_and_its_reply_is_played(browser, web, fake_devices):
    from selenium.webdriver.common.keys import Keys

    period_ms = fake_devices[2]
    browser.get(web.url)
    allow_devices(browser, web.url)
    wait(browser, lambda: browser.find_elements("css selector", "#talker option[value='espeak']"), 20,
         "the talker list")
    browser.find_element("id", "start").send_keys(Keys.ENTER)  # from the keyboard
    wait(browser, lambda: page(browser, "status") == "live", 30, "the live session")
    mute_after_speech(browser, period_ms)  # one utterance only: the clip's voice once

    done = "#transcript li[data-done='true']"
    wait(browser, lambda: browser.find_elements("css selector", done), 150, "the first turn's reply")
    wait(browser, lambda: page(browser, "state") == "listening", 60, "the reply to be played to its end")
    heard = text(browser, "transcript").lower()
    assert "burial record" in heard, heard
    for part in ("emotion", "intent", "strategy", "reply", "instruction"):
        assert text(browser, part), f"#{part} is empty"
    assert float(page(browser, "playedMs")) > 1000, "the reply's audio was not played"
    assert int(page(browser, "provisional") or 0) >= 1, "no provisional transcript while the user spoke"
    assert "voice to voice" in text(browser, "latency")
    browser.save_screenshot(str(Path(os.environ.get("EMOOMNI_SCREENSHOT_DIR", "/tmp")) / "web-demo.png"))
    if os.environ.get("EMOOMNI_UPDATE_SCREENSHOT"):
        browser.save_screenshot(str(SCREENSHOT))


def test_a_new_talker_speaks_the_next_turn_and_speech_over_it_interrupts(browser, web, fake_devices):
    from selenium.webdriver.support.ui import Select

    period_ms = fake_devices[2]
    assert page(browser, "status") == "live", "runs after the spoken turn, in its session"
    session = page(browser, "sessionId")
    Select(browser.find_element("id", "talker")).select_by_value("espeak")
    wait(browser, lambda: page(browser, "status") == "live" and "espeak" in status(browser), 30, "the talker switch")
    assert page(browser, "sessionId") == session, "the conversation goes on in the same session"

    box = browser.find_element("id", "text")
    box.send_keys("Tell me more about what you found in that record, please.")
    box.submit()
    wait(browser, lambda: page(browser, "state") == "speaking", 120, "the typed turn's reply to play")
    # Unmute where the looping file has voice ahead: speech over the reply, long enough to interrupt it.
    wait(browser, lambda: 300 < phase_ms(browser, period_ms) < 2200 or 3400 < phase_ms(browser, period_ms) < 4600,
         10, "voice in the microphone file", every_s=0.03)
    assert page(browser, "state") == "speaking", "the reply ended before the voice came; it cannot be interrupted"
    set_muted(browser, False)
    wait(browser, lambda: browser.find_elements("css selector", "#transcript li[data-interrupted='barge_in']"), 30,
         "the reply interrupted by speech")
    mute_after_speech(browser, period_ms)
    item = browser.find_element("css selector", "#transcript li[data-interrupted='barge_in']")
    assert item.get_attribute("data-talker") == "espeak", item.get_attribute("outerHTML")
    assert "interrupted" in item.text
    assert int(page(browser, "interrupted")) >= 1


def test_lost_connections_are_told_and_the_page_recovers(browser, web, stack):
    wait(browser, lambda: page(browser, "state") == "listening", 150, "the turn in flight to finish")
    session = page(browser, "sessionId")

    web.kill()  # the web server is gone
    wait(browser, lambda: "Lost the connection to the EmoOmni web server" in status(browser), 15, "the lost server")
    assert page(browser, "state") == "idle"
    web.start()
    wait(browser, lambda: page(browser, "status") == "live", 30, "the page to reconnect")
    assert page(browser, "sessionId") == session, "the page resumes its conversation"

    gateway_port = int(stack["gateway"].rsplit(":", 1)[1])
    (pid,) = {c.pid for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == gateway_port
              and c.status == psutil.CONN_LISTEN}
    os.kill(pid, signal.SIGKILL)  # the gateway dies; `emoomni up` restarts it
    wait(browser, lambda: page(browser, "status") == "stack_down", 15, "the lost stack")
    assert "EmoOmni stack" in status(browser) and page(browser, "state") == "idle"
    wait(browser, lambda: page(browser, "status") == "live", 90, "the page to come back with the stack")
    assert page(browser, "sessionId") == session, "the conversation is remembered across the gateway's restart"
    wait(browser, lambda: page(browser, "state") == "listening", 30, "the page to listen again")


def test_an_uploaded_clip_is_answered_through_converse(browser, web, shared_media):
    played_before = float(page(browser, "playedMs") or 0)
    browser.find_element("id", "clip").send_keys(str(shared_media / ENGLISH))
    browser.find_element("id", "send-clip").click()
    done = f"#transcript li[data-done='true'][data-clip='{ENGLISH}']"
    item = wait(browser, lambda: browser.find_elements("css selector", done), 150, "the clip's turn")[0]
    assert "burial record" in item.text.lower() and item.find_element("css selector", ".agent .said").text
    wait(browser, lambda: page(browser, "state") in ("listening", "idle"), 60, "the clip's reply to be played")
    assert float(page(browser, "playedMs")) > played_before + 1000, diagnosis(browser)
