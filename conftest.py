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
    files.update(hostile_media(d, speech))
    return files


def hostile_media(d: Path, speech: np.ndarray) -> dict[str, Path]:
    """Uploads a hostile caller would send. The playlists name a real clip beside them, so that a decoder that
    follows them would answer with that file's words; the SDP would bind a UDP port."""
    import soundfile as sf

    sf.write(d / "server_secret.wav", speech, 16000)
    files = {"ffconcat": d / "ffconcat.mp4", "hls": d / "playlist.mp4", "sdp": d / "stream.mp4",
             "flac_bomb": d / "long.flac", "pixel_bomb": write_big_frame(d / "big_frame.mkv", 6000, 6000)}
    files["ffconcat"].write_text("ffconcat version 1.0\nfile server_secret.wav\n")
    files["hls"].write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nserver_secret.wav\n#EXT-X-ENDLIST\n")
    files["sdp"].write_text("v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\n"
                            "m=audio 49170 RTP/AVP 0\n")
    # Ten minutes of near silence in about 100 KB, its STREAMINFO's total sample count zeroed ("unknown").
    sf.write(files["flac_bomb"], np.zeros(16000 * 600, dtype=np.float32), 16000, format="FLAC")
    data = bytearray(files["flac_bomb"].read_bytes())
    data[8 + 13] &= 0xF0
    data[8 + 14:8 + 18] = bytes(4)
    files["flac_bomb"].write_bytes(bytes(data))
    return files


def write_big_frame(path: Path, width: int, height: int) -> Path:
    """A Matroska file with speech-free audio and one real JPEG frame of width x height (about 0.6 MB at 6000x6000):
    cheap to send, costly to decode."""
    with av.open(str(path), mode="w", format="matroska") as out:
        video = out.add_stream("mjpeg", rate=10)
        video.width, video.height, video.pix_fmt = width, height, "yuvj420p"
        sound = out.add_stream("pcm_s16le", rate=16000)
        sound.layout = "mono"
        frame = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24")
        frame = frame.reformat(format="yuvj420p")
        frame.pts, frame.time_base = 0, Fraction(1, 10)
        out.mux(video.encode(frame))
        out.mux(video.encode())
        tone = (np.sin(np.arange(16000 * 2) * 2 * np.pi * 220 / 16000) * 8000).astype(np.int16).reshape(1, -1)
        samples = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        samples.sample_rate, samples.pts = 16000, 0
        out.mux(sound.encode(samples))
        out.mux(sound.encode())
    return path


# What the one-line error for each bad input must mention.
BAD_MEDIA_REASONS = {
    "empty": "empty",
    "not_media": "not a readable",
    "no_audio": "no audio",
    "silent": "silent",
    "no_face": "no face",
    "truncated": "not a readable",
    # Hostile uploads (issue 25): FFmpeg playlists and descriptions that would read server files or open sockets,
    # a FLAC whose header gives no length, a video whose frames are too large to decode.
    "ffconcat": "only MP4/MOV",
    "hls": "only MP4/MOV",
    "sdp": "only MP4/MOV",
    "flac_bomb": "past the",
    "pixel_bomb": "megapixel limit",
}
