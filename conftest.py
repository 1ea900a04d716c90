"""Shared pytest fixtures: the real clips in ../shared/media and bad media made on the fly with PyAV."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent
SHARED_MEDIA = Path(os.environ.get("EMOOMNI_SHARED_MEDIA", ROOT.parent / "shared" / "media"))
ENGLISH_CLIP = "merged_7e578e0b.mp4"
MANDARIN_CLIPS = ("merged_b6b785ce.mp4", "samplenew3_00083538.mp4")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shared_media() -> Path:
    if not (SHARED_MEDIA / ENGLISH_CLIP).exists():
        pytest.fail(f"the shared clips are missing: expected them in {SHARED_MEDIA}")
    return SHARED_MEDIA


@pytest.fixture(scope="session")
def english_clip(shared_media) -> Path:
    return shared_media / ENGLISH_CLIP


def clip_audio(path: Path, rate: int = 16000) -> np.ndarray:
    """Mono float32 audio of a clip."""
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        parts = [f.to_ndarray().reshape(-1) for frame in container.decode(audio=0) for f in resampler.resample(frame)]
    return np.concatenate(parts)


def write_clip(path: Path, *, audio: np.ndarray | None, frames: list[np.ndarray] | None, rate: int = 16000,
               fps: int = 10) -> Path:
    """Mux an mp4 with optional mono audio (float32 in [-1, 1]) and optional RGB frames."""
    with av.open(str(path), mode="w") as out:
        vstream = astream = None
        if frames:
            vstream = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
            vstream.height, vstream.width = frames[0].shape[:2]
            vstream.pix_fmt = "yuv420p"
        if audio is not None:
            astream = out.add_stream("aac", rate=rate)
            astream.layout = "mono"
        if vstream:
            for i, rgb in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, fps)
                for packet in vstream.encode(frame):
                    out.mux(packet)
            for packet in vstream.encode():
                out.mux(packet)
        if astream:
            samples = audio.astype(np.float32).reshape(1, -1)
            step = 1024
            for start in range(0, samples.shape[1], step):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + step]), format="flt",
                                                   layout="mono")
                frame.sample_rate, frame.pts = rate, start
                for packet in astream.encode(frame):
                    out.mux(packet)
            for packet in astream.encode():
                out.mux(packet)
    return path


@pytest.fixture(scope="session")
def bad_media(tmp_path_factory, english_clip) -> dict[str, Path]:
    """One file per kind of bad input, with the words the error message must contain."""
    d = tmp_path_factory.mktemp("bad_media")
    speech = clip_audio(english_clip)
    gray = [np.full((120, 160, 3), 90, dtype=np.uint8) for _ in range(30)]
    files = {
        "empty": d / "empty.mp4",
        "not_media": d / "notes.mp4",
        "no_audio": write_clip(d / "no_audio.mp4", audio=None, frames=gray),
        "silent": write_clip(d / "silent.mp4", audio=np.zeros(16000 * 3, dtype=np.float32), frames=gray),
        "no_face": write_clip(d / "no_face.mp4", audio=speech, frames=gray),
        "audio_only": write_clip(d / "audio_only.m4a", audio=speech, frames=None),
        "truncated": d / "truncated.mp4",
    }
    files["empty"].write_bytes(b"")
    files["not_media"].write_text("this is a shopping list, not a video\n" * 50)
    files["truncated"].write_bytes(english_clip.read_bytes()[:2000])
    return files


# What the one-line error for each bad input must mention.
BAD_MEDIA_REASONS = {
    "empty": "empty",
    "not_media": "not a readable",
    "no_audio": "no audio",
    "silent": "silent",
    "no_face": "no face",
    "audio_only": "no video",
    "truncated": "not a readable",
}
