"""Local devices for `emoomni live --mic/--camera/--speaker`: the microphone and loudspeaker through PortAudio
(sounddevice), the camera through OpenCV. Blocking device I/O runs in PortAudio's and a camera thread; the session
side reads 20 ms blocks and the newest camera frame."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque

import numpy as np

RATE = 16000
BLOCK = RATE // 50  # 20 ms


class DeviceError(RuntimeError):
    """A device that cannot be opened, said in words a user can act on."""


def _sounddevice():
    try:
        import sounddevice
    except OSError as exc:  # the PortAudio library itself is missing
        raise DeviceError("the microphone and loudspeaker need the PortAudio library: install libportaudio2 "
                          f"(Debian/Ubuntu) or portaudio ({exc})") from exc
    return sounddevice


def _device(name: str) -> int | str | None:
    return None if not name or name == "default" else int(name) if name.isdigit() else name


def _inputs(sd) -> str:
    names = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
    return ", ".join(names) or "none"


class Microphone:
    """16 kHz mono PCM16 in 20 ms blocks from a PortAudio input device (name, index or "default")."""

    def __init__(self, device: str = ""):
        sd = _sounddevice()
        # Up to 60 s waiting to be sent (a device delivers in real time; one that delivers faster, such as a file
        # behind ALSA's file plugin, is sent at real-time pace and what overflows is dropped and counted).
        self.blocks: queue.Queue[np.ndarray] = queue.Queue(maxsize=3000)
        self.dropped = 0
        try:
            self.stream = sd.InputStream(samplerate=RATE, channels=1, dtype="int16", blocksize=BLOCK,
                                         device=_device(device), callback=self._take)
            self.stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceError(f"no microphone '{device or 'default'}' could be opened ({exc}); input devices: "
                              f"{_inputs(sd)}") from exc

    def _take(self, data, frames, when, status) -> None:
        try:
            self.blocks.put_nowait(data[:, 0].copy())
        except queue.Full:
            self.dropped += 1

    def read(self, timeout_s: float = 2.0) -> np.ndarray:
        """The next 20 ms block; DeviceError when the device delivers nothing for `timeout_s`."""
        try:
            return self.blocks.get(timeout=timeout_s)
        except queue.Empty as exc:
            raise DeviceError(f"the microphone delivered no audio for {timeout_s:.0f} s") from exc

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()


class Loudspeaker:
    """Plays the agent's audio on a PortAudio output device; a turn's queued audio can be dropped at once."""

    def __init__(self, device: str = ""):
        sd = _sounddevice()
        self.pieces: deque[tuple[str, np.ndarray]] = deque()
        self.lock = threading.Lock()
        try:
            self.stream = sd.OutputStream(samplerate=RATE, channels=1, dtype="int16", blocksize=BLOCK,
                                          device=_device(device), callback=self._give)
            self.stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceError(f"no loudspeaker '{device or 'default'}' could be opened ({exc})") from exc

    def play(self, turn_id: str, pcm: np.ndarray) -> None:
        with self.lock:
            self.pieces.append((turn_id, pcm))

    def drop(self, turn_id: str) -> None:
        with self.lock:
            self.pieces = deque(p for p in self.pieces if p[0] != turn_id)

    def _give(self, out, frames, when, status) -> None:
        out.fill(0)
        filled = 0
        with self.lock:
            while filled < frames and self.pieces:
                turn_id, pcm = self.pieces[0]
                n = min(frames - filled, pcm.size)
                out[filled:filled + n, 0] = pcm[:n]
                filled += n
                if n == pcm.size:
                    self.pieces.popleft()
                else:
                    self.pieces[0] = (turn_id, pcm[n:])

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()


class Camera:
    """The newest frame of a camera (an OpenCV device index such as "0", or a video file or stream URL, read at its
    own pace), as JPEG."""

    def __init__(self, source: str, max_side_px: int = 640):
        import cv2

        self.capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
        if not self.capture.isOpened():
            raise DeviceError(f"the camera '{source}' could not be opened (a device index such as 0, or a video "
                              "file or stream URL)")
        self.max_side_px, self.latest, self.running = max_side_px, None, True
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.pause_s = 1.0 / fps if 0 < fps <= 120 and not source.isdigit() else 0.0  # a file plays in real time
        self.thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import cv2

        while self.running:
            ok, frame = self.capture.read()
            if not ok:
                break  # the end of a file, or the device is gone: no newer frame
            scale = min(1.0, self.max_side_px / max(frame.shape[:2]))
            if scale < 1.0:
                frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
            if ok:
                self.latest = jpeg.tobytes()
            if self.pause_s:
                time.sleep(self.pause_s)

    def frame(self) -> bytes | None:
        return self.latest

    def close(self) -> None:
        self.running = False
        self.thread.join(timeout=2)
        self.capture.release()
