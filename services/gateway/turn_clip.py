"""A live turn as a clip: the user's speech (16 kHz PCM) and the camera frames of the turn muxed into one
Matroska file, so the turn goes through the same perception path as an uploaded clip."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import cv2
import numpy as np

SAMPLE_RATE = 16000


def turn_clip(audio: np.ndarray, frames: list[tuple[float, bytes]], max_frames: int) -> bytes:
    """`audio`: int16 mono at 16 kHz; `frames`: (seconds from the turn's first sample, JPEG/PNG bytes), decodable
    ones only. Up to `max_frames` frames evenly spread over the turn are kept; none gives an audio-only clip."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="matroska") as container:
        images = [(t, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
                  for t, data in _spread(frames, max_frames)]
        images = [(t, image) for t, image in images if image is not None]
        video = None
        if images:
            height, width = images[0][1].shape[:2]
            video = container.add_stream("mjpeg", rate=Fraction(1000, 1))
            video.width, video.height = width - width % 2, height - height % 2
            video.pix_fmt = "yuvj420p"
            video.time_base = Fraction(1, 1000)
        sound = container.add_stream("pcm_s16le", rate=SAMPLE_RATE)
        sound.layout = "mono"
        if video is not None:
            for t, image in images:
                if image.shape[:2] != (video.height, video.width):
                    image = cv2.resize(image, (video.width, video.height))
                frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuvj420p")
                frame.pts = max(0, round(t * 1000))
                frame.time_base = Fraction(1, 1000)
                container.mux(video.encode(frame))
            container.mux(video.encode())
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, dtype=np.int16).reshape(1, -1), format="s16",
                                           layout="mono")
        frame.sample_rate, frame.pts = SAMPLE_RATE, 0
        container.mux(sound.encode(frame))
        container.mux(sound.encode())
    return buffer.getvalue()


def _spread(frames: list[tuple[float, bytes]], n: int) -> list[tuple[float, bytes]]:
    frames = sorted(frames, key=lambda f: f[0])
    if len(frames) <= n:
        return frames
    picks = np.linspace(0, len(frames) - 1, n).round().astype(int)
    return [frames[i] for i in sorted(set(picks.tolist()))]
