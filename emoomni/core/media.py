"""Decoding a clip into 16 kHz mono audio and a few evenly spaced RGB frames, with clear errors.

PyAV (bundled FFmpeg libraries) does the decoding. Every failure a user can cause raises MediaError,
whose message is shown to the caller as gRPC INVALID_ARGUMENT / CLI exit code 2.

Only the containers we accept are ever opened, whatever the name says: the format is read from the first bytes
and the demuxer forced, so that an upload cannot be an FFmpeg playlist (concat, HLS, DASH), a network
description (SDP) or an image sequence that reads other files or opens sockets. Limits hold while decoding:
samples are counted (a header need not say how long a stream is) and a video's frame size is checked before any
frame is decoded (docs/security.md).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from emoomni.core.config import LimitsConfig


class MediaError(ValueError):
    """The input cannot be used; the message says why in one line."""


@dataclass
class DecodedMedia:
    audio: np.ndarray  # float32 mono at `sample_rate`
    sample_rate: int
    frames: list[tuple[float, np.ndarray]] = field(default_factory=list)  # (time_s, HxWx3 uint8 RGB)
    duration_s: float = 0.0
    has_video: bool = False


def read_source(path: str | None, data: bytes | None, limits: LimitsConfig) -> bytes | str:
    """Validate size/existence before any decoding; returns what PyAV should open."""
    if data is not None:
        if len(data) == 0:
            raise MediaError("the media is empty (0 bytes)")
        if len(data) > limits.max_media_bytes:
            raise MediaError(f"the media is {len(data) / 1e6:.1f} MB, over the "
                             f"{limits.max_media_bytes / 1e6:.0f} MB limit")
        return data
    if not path:
        raise MediaError("no media given: send a path, inline bytes or an upload")
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"no such file: {path}")
    size = p.stat().st_size
    if size == 0:
        raise MediaError(f"the file is empty (0 bytes): {p.name}")
    if size > limits.max_media_bytes:
        raise MediaError(f"{p.name} is {size / 1e6:.1f} MB, over the {limits.max_media_bytes / 1e6:.0f} MB limit")
    return str(p)


# The containers accepted, as FFmpeg demuxer names. Anything else (concat, hls, dash, sdp, image2, tee, rtp, ...)
# is never opened.
ACCEPTED_CONTAINERS = ("mov", "matroska", "wav", "flac", "ogg", "mp3")
# Nested opens (a reference inside a container) may use no protocol at all; the input itself is a local file or
# bytes in memory. Network reads would time out after this long.
_CONTAINER_OPTIONS = {"protocol_whitelist": "file", "format_whitelist": ",".join(ACCEPTED_CONTAINERS),
                      "rw_timeout": "5000000", "probesize": "5000000"}
_MP4_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"}


def container_of(head: bytes) -> str | None:
    """The accepted demuxer that the first bytes of a file announce, or None."""
    if len(head) >= 8 and head[4:8] in _MP4_BOXES:
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def _open(source: bytes | str) -> av.container.InputContainer:
    if isinstance(source, bytes):
        head = source[:16]
    else:
        with open(source, "rb") as file:
            head = file.read(16)
    container = container_of(head)
    if container is None:
        raise MediaError("not a readable audio/video file: only MP4/MOV, Matroska/WebM, WAV, FLAC, Ogg and MP3 are "
                         "accepted")
    try:
        return av.open(io.BytesIO(source) if isinstance(source, bytes) else source, mode="r", format=container,
                       container_options=_CONTAINER_OPTIONS)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(f"not a readable {container} file ({type(exc).__name__})") from exc


def _duration_s(container: av.container.InputContainer) -> float:
    if container.duration:
        return container.duration / av.time_base
    best = 0.0
    for stream in container.streams:
        if stream.duration and stream.time_base:
            best = max(best, float(stream.duration * stream.time_base))
    return best


def _check_container(container: av.container.InputContainer, limits: LimitsConfig) -> float:
    """Audio track present and duration within the limit; returns the duration."""
    if not container.streams.audio:
        raise MediaError("the clip has no audio track: the agent needs to hear the user")
    duration = _duration_s(container)
    if duration > limits.max_media_duration_s:
        raise MediaError(f"the clip lasts {duration:.1f} s, over the {limits.max_media_duration_s:.0f} s limit")
    return duration


def probe(source: bytes | str, limits: LimitsConfig) -> float:
    """Cheap checks without decoding (readable container, audio track, duration); returns the duration."""
    with _open(source) as container:
        return _check_container(container, limits)


def decode_audio(source: bytes | str, limits: LimitsConfig, sample_rate: int = 16000) -> DecodedMedia:
    """Validate the clip and decode its audio; frames come separately (`decode_frames`) so that speech
    recognition can start while the video is still being decoded."""
    with _open(source) as container:
        duration = _check_container(container, limits)
        audio = _decode_audio(container, sample_rate, int(limits.max_media_duration_s * sample_rate))
        has_video = bool(container.streams.video)
    if audio.size < limits.min_media_duration_s * sample_rate:
        raise MediaError(f"the clip's audio lasts {audio.size / sample_rate:.2f} s, under the "
                         f"{limits.min_media_duration_s} s minimum")
    return DecodedMedia(audio=audio, sample_rate=sample_rate, duration_s=duration or audio.size / sample_rate,
                        has_video=has_video)


def decode_frames(source: bytes | str, duration_s: float, n_frames: int = 8, max_side_px: int = 480,
                  max_pixels: int = LimitsConfig().max_video_pixels) -> list[tuple[float, np.ndarray]]:
    """`n_frames` RGB frames spread evenly over the clip (empty when it has no video). A video whose frames are
    over `max_pixels` is refused before any frame is decoded."""
    with _open(source) as container:
        if not container.streams.video:
            return []
        context = container.streams.video[0].codec_context
        _check_pixels(context.width, context.height, max_pixels)
        return _decode_frames(container, duration_s, n_frames, max_side_px, max_pixels)


def check_image(data: bytes, max_pixels: int) -> tuple[int, int]:
    """A camera frame's (width, height) from its header alone, so that a pixel bomb is refused before it is
    decoded; only JPEG and PNG are accepted."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=("JPEG", "PNG")) as image:
            width, height = image.size
    except Image.DecompressionBombError as exc:
        raise MediaError(f"a video frame is over the {max_pixels / 1e6:.1f} megapixel limit") from exc
    except Exception as exc:  # Pillow raises several types for a bad header (OSError, SyntaxError, ...)
        raise MediaError("a video frame is not a decodable JPEG or PNG image") from exc
    _check_pixels(width, height, max_pixels, "a video frame is")
    return width, height


def _check_pixels(width: int, height: int, max_pixels: int, what: str = "the video's frames are") -> None:
    if width * height > max_pixels:
        raise MediaError(f"{what} {width}x{height}, over the {max_pixels / 1e6:.1f} megapixel "
                         "limit")


def decode(source: bytes | str, limits: LimitsConfig, *, sample_rate: int = 16000, n_frames: int = 8,
           max_side_px: int = 480) -> DecodedMedia:
    """Decode audio (resampled) and `n_frames` frames spread evenly over the clip."""
    media = decode_audio(source, limits, sample_rate)
    media.frames = decode_frames(source, media.duration_s, n_frames, max_side_px, limits.max_video_pixels)
    return media


def _decode_audio(container: av.container.InputContainer, sample_rate: int, max_samples: int) -> np.ndarray:
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks: list[np.ndarray] = []
    count = 0
    try:
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
                count += chunks[-1].size
            if count > max_samples:  # the header said less, or nothing: the samples decide
                raise MediaError(f"the clip's audio runs past the {max_samples / sample_rate:.0f} s limit")
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        if not chunks:
            raise MediaError(f"the audio track cannot be decoded ({type(exc).__name__})") from exc
    if not chunks:
        raise MediaError("the audio track holds no samples")
    return np.concatenate(chunks).astype(np.float32, copy=False)


def _decode_frames(container: av.container.InputContainer, duration: float, n_frames: int,
                   max_side_px: int, max_pixels: int) -> list[tuple[float, np.ndarray]]:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    targets = [(i + 0.5) * duration / n_frames for i in range(n_frames)]
    frames: list[tuple[float, np.ndarray]] = []
    next_target = 0
    try:
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            if frame.time + 1e-6 < targets[next_target]:
                continue
            _check_pixels(frame.width, frame.height, max_pixels)  # a stream may change size midway
            scale = min(1.0, max_side_px / max(frame.width, frame.height))
            width, height = max(2, int(frame.width * scale) // 2 * 2), max(2, int(frame.height * scale) // 2 * 2)
            frames.append((float(frame.time), frame.to_ndarray(format="rgb24", width=width, height=height)))
            while next_target < len(targets) and targets[next_target] <= frame.time + 1e-6:
                next_target += 1
            if next_target >= len(targets):
                break
    except av.error.FFmpegError:
        pass  # keep the frames decoded so far; a damaged tail should not lose the whole turn
    return frames
