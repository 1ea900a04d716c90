"""Cut several real clips into one "episode" video (640x360, 15 fps, 16 kHz mono, silence between the parts): test
and benchmark material for the pipeline with several speakers and languages in one file."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT, FPS, RATE = 640, 360, 15, 16000
GAP_S = 1.0
# (clip, start s, end s) from the shared clips (../shared/media): the English speaker's two sentences frame the two
# Mandarin speakers, so the episode has four utterances by three speakers and the first speaker comes back.
EPISODE = (("merged_7e578e0b.mp4", 0.0, 2.85), ("merged_b6b785ce.mp4", 0.0, None),
           ("samplenew3_00083538.mp4", 0.0, None), ("merged_7e578e0b.mp4", 2.85, None))


def clip_audio(path: Path, rate: int = RATE) -> np.ndarray:
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        return np.concatenate([f.to_ndarray().reshape(-1) for frame in container.decode(audio=0)
                               for f in resampler.resample(frame)])


def letterboxed_frames(path: Path, start: float, end: float | None) -> list[np.ndarray]:
    """RGB frames of [start, end) at FPS, scaled to fit WIDTH x HEIGHT on black."""
    frames, step, next_t = [], 1 / FPS, start
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        scale = min(WIDTH / stream.width, HEIGHT / stream.height)
        w, h = int(stream.width * scale) // 2 * 2, int(stream.height * scale) // 2 * 2
        for frame in container.decode(stream):
            if frame.time is None or frame.time < next_t:
                continue
            if end is not None and frame.time >= end:
                break
            canvas = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
            y, x = (HEIGHT - h) // 2, (WIDTH - w) // 2
            canvas[y:y + h, x:x + w] = frame.to_ndarray(format="rgb24", width=w, height=h)
            while next_t <= frame.time + 1e-6:
                frames.append(canvas)
                next_t += step
    return frames


def write_episode(path: Path, media: Path, parts=EPISODE) -> Path:
    """Write the parts (clip name in `media`, start s, end s or None) one after the other into `path`."""
    frames: list[np.ndarray] = []
    audio: list[np.ndarray] = []
    gap_frames = [np.zeros((HEIGHT, WIDTH, 3), np.uint8)] * int(GAP_S * FPS)
    for number, (clip, start, end) in enumerate(parts):
        if number:
            frames += gap_frames
            audio.append(np.zeros(len(gap_frames) * RATE // FPS, np.float32))
        picture = letterboxed_frames(media / clip, start, end)
        sound = clip_audio(media / clip, RATE)[int(start * RATE):None if end is None else int(end * RATE)]
        n = len(picture) * RATE // FPS  # cut both tracks to the same length, so they stay in step
        sound = np.pad(sound, (0, max(0, n - sound.size)))[:n]
        frames += picture
        audio.append(sound)
    samples = np.concatenate(audio).reshape(1, -1)
    with av.open(str(path), mode="w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"preset": "veryfast"}
        sound = out.add_stream("aac", rate=RATE)
        sound.layout = "mono"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        for offset in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, offset:offset + 1024]), format="flt",
                                               layout="mono")
            frame.sample_rate, frame.pts = RATE, offset
            out.mux(sound.encode(frame))
        out.mux(sound.encode())
    return path


