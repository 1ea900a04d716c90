"""Media stages on PyAV: ingest (probe, chunk, 16 kHz mono audio) and clip (each utterance's video and audio)."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from emoomni.pipe.stage import Drop, Resources, Result, Stage, temp_path


def _open(path: str) -> av.container.InputContainer:
    try:
        return av.open(path, mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise Drop(f"not a readable video file ({type(exc).__name__}: {exc})") from exc


class IngestStage(Stage):
    """Probe a video, cut it into chunks of `chunk_minutes`, and write each chunk's audio as 16 kHz mono WAV.

    Chunks reference the source by time range; video is only cut later, per utterance, so nothing is re-encoded."""

    name = "ingest"
    resources = Resources(cpus=1)

    def process(self, item: dict) -> Result:
        path = item["path"]
        if Path(path).stat().st_size == 0:
            raise Drop("the file is empty (0 bytes)")
        s = self.settings
        with _open(path) as container:
            if not container.streams.audio:
                raise Drop("no audio track")
            if not container.streams.video:
                raise Drop("no video track")
            chunk_s = s.chunk_minutes * 60
            folder = self.out_dir / "work" / "audio"
            folder.mkdir(parents=True, exist_ok=True)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=s.sample_rate)
            chunk_samples = int(chunk_s * s.sample_rate)
            outputs, files, written = [], {}, 0
            current: sf.SoundFile | None = None
            tmp = final = None

            def close_chunk() -> None:
                nonlocal current
                if current is None:
                    return
                current.close()
                index = len(outputs)
                start = index * chunk_s
                frames = sf.info(tmp).frames
                self.finish_file(tmp, final, files)
                outputs.append({"id": f"{item['id']}-c{index:03d}", "kind": "chunk", "video_id": item["id"],
                                "source": path, "source_sha256": item["sha256"], "index": index,
                                "start_s": start, "end_s": start + frames / s.sample_rate,
                                "audio": str(final.relative_to(self.out_dir)), "sample_rate": s.sample_rate})
                current = None

            def write(samples: np.ndarray) -> None:
                nonlocal current, tmp, final, written
                while samples.size:
                    if current is None:
                        final = folder / f"{item['id']}-c{len(outputs):03d}.wav"
                        tmp = temp_path(final)
                        current = sf.SoundFile(tmp, "w", samplerate=s.sample_rate, channels=1, subtype="PCM_16")
                    room = chunk_samples - (written % chunk_samples)
                    current.write(samples[:room])
                    written += min(room, samples.size)
                    samples = samples[room:]
                    if written % chunk_samples == 0:
                        close_chunk()

            try:
                for frame in container.decode(container.streams.audio[0]):
                    for out in resampler.resample(frame):
                        write(out.to_ndarray().reshape(-1))
                for out in resampler.resample(None):
                    write(out.to_ndarray().reshape(-1))
            except av.error.FFmpegError as exc:
                if not written:
                    if current is not None:
                        current.close()
                        Path(tmp).unlink(missing_ok=True)
                    raise Drop(f"the audio track cannot be decoded ({type(exc).__name__})") from exc
            close_chunk()
        if written < s.min_seconds * s.sample_rate:
            for rel in files:
                (self.out_dir / rel).unlink(missing_ok=True)
            raise Drop(f"the audio lasts {written / s.sample_rate:.2f} s, under the {s.min_seconds} s minimum")
        return Result("ok", outputs=outputs, files=files)


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def cut_clip(source: str, start_s: float, end_s: float, video_out: Path, audio_out: Path, max_side_px: int,
             sample_rate: int = 16000) -> None:
    """Re-encode [start_s, end_s) of `source` into an H.264/AAC mp4 (scaled to `max_side_px`) and a 16 kHz mono
    WAV. Writes exactly the two paths given (the caller renames them into place)."""
    with av.open(source) as src:
        vin = src.streams.video[0]
        rate = vin.average_rate or Fraction(25)
        fps = max(1, round(float(rate)))
        scale = min(1.0, max_side_px / max(vin.width, vin.height))
        width, height = _even(vin.width * scale), _even(vin.height * scale)
        # Audio first, into memory (an utterance is seconds long).
        src.seek(max(0, int((start_s - 1.0) / vin.time_base)), stream=vin, backward=True)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        pieces: list[np.ndarray] = []
        origin = None
        for frame in src.decode(src.streams.audio[0]):
            if frame.time is None:
                continue
            if frame.time > end_s:
                break
            for out in resampler.resample(frame):
                if origin is None:
                    origin = frame.time
                pieces.append(out.to_ndarray().reshape(-1))
        audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        first = round((start_s - (origin or 0.0)) * sample_rate)
        audio = audio[max(0, first):max(0, first) + round((end_s - start_s) * sample_rate)]
        if audio.size == 0:
            raise Drop(f"no audio between {start_s:.2f} s and {end_s:.2f} s")
        sf.write(audio_out, audio, sample_rate, subtype="PCM_16")
        src.seek(max(0, int((start_s - 1.0) / vin.time_base)), stream=vin, backward=True)
        with av.open(str(video_out), mode="w", format="mp4") as out:
            vstream = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
            vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
            vstream.options = {"preset": "veryfast", "crf": "23"}
            astream = out.add_stream("aac", rate=sample_rate)
            astream.layout = "mono"
            count = 0
            for frame in src.decode(vin):
                if frame.time is None or frame.time < start_s:
                    continue
                if frame.time >= end_s:
                    break
                picture = frame.reformat(width=width, height=height, format="yuv420p")
                picture.pts, picture.time_base = count, Fraction(1, fps)
                count += 1
                for packet in vstream.encode(picture):
                    out.mux(packet)
            if count == 0:
                raise Drop(f"no video frames between {start_s:.2f} s and {end_s:.2f} s")
            for packet in vstream.encode():
                out.mux(packet)
            samples = audio.reshape(1, -1)
            for offset in range(0, samples.shape[1], 1024):
                piece = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, offset:offset + 1024]),
                                                   format="flt", layout="mono")
                piece.sample_rate, piece.pts = sample_rate, offset
                for packet in astream.encode(piece):
                    out.mux(packet)
            for packet in astream.encode():
                out.mux(packet)


class ClipStage(Stage):
    """Cut each utterance's video and audio out of the source by its timestamps (paper 3.1)."""

    name = "clip"
    resources = Resources(cpus=1)

    def process(self, item: dict) -> Result:
        s = self.settings
        folder = self.out_dir / "clips"
        folder.mkdir(parents=True, exist_ok=True)
        start = max(0.0, item["start_s"] - s.pad_s)
        end = item["end_s"] + s.pad_s
        video, audio = folder / f"{item['id']}.mp4", folder / f"{item['id']}.wav"
        tmp_video, tmp_audio = temp_path(video), temp_path(audio)
        try:
            cut_clip(item["source"], start, end, tmp_video, tmp_audio, s.max_side_px)
            files: dict[str, str] = {}
            self.finish_file(tmp_audio, audio, files)
            self.finish_file(tmp_video, video, files)
        finally:
            tmp_video.unlink(missing_ok=True)
            tmp_audio.unlink(missing_ok=True)
        clipped = {**item, "clip_video": f"clips/{video.name}", "clip_audio": f"clips/{audio.name}",
                   "clip_start_s": start, "clip_end_s": math.floor(end * 1000) / 1000}
        return Result("ok", outputs=[clipped], files=files)
