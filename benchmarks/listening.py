"""What listening costs a live session on this machine: Silero VAD per 32 ms window, Smart Turn per call (its
Whisper features and the model apart), and the whole TurnDetector's real-time factor and per-frame time on the
shared clips streamed as 20 ms PCM16 frames (at 16 and 48 kHz). One onnxruntime thread per model, as served
(`--threads 2` to compare).

    .venv/bin/python benchmarks/listening.py [--windows 2000] [--turn-calls 50] [--passes 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import save, summary  # noqa: E402
from conftest import ENGLISH_CLIP, MANDARIN_CLIPS, SHARED_MEDIA, clip_audio  # noqa: E402
from emoomni.services.gateway.listening import TurnDetector, load_models  # noqa: E402

FRAME_MS = 20


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def vad_windows(models, audio: np.ndarray, n: int) -> list[float]:
    stream, window = models.vad.stream(), models.vad.window_samples
    chunks = [audio[i:i + window] for i in range(0, len(audio) - window + 1, window)]
    times = []
    for i in range(n):
        start = time.perf_counter()
        stream.probability(chunks[i % len(chunks)])
        times.append(ms_since(start))
    return times


def turn_calls(models, audio: np.ndarray, n: int) -> tuple[list[float], list[float]]:
    """Whole calls, and the feature extraction alone, on 8 s windows ending at different places of the clips."""
    whole, features = [], []
    for i in range(n):
        end = len(audio) - (i * 1601) % (len(audio) - 8 * 16000)
        tail = audio[end - 8 * 16000:end]
        start = time.perf_counter()
        models.turn.completion_probability(tail)
        whole.append(ms_since(start))
        start = time.perf_counter()
        models.turn.features(tail)
        features.append(ms_since(start))
    return whole, features


def detector_pass(models, audio: np.ndarray, rate: int) -> tuple[float, list[float], int]:
    detector = TurnDetector(models, rate)
    data = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    size = 2 * rate * FRAME_MS // 1000
    frames, turns = [], 0
    start = time.perf_counter()
    for offset in range(0, len(data), size):
        frame_start = time.perf_counter()
        turns += sum(e.kind == "turn_ended" for e in detector.feed(data[offset:offset + size]))
        frames.append(ms_since(frame_start))
    return ms_since(start) / 1000 / (len(audio) / rate), frames, turns


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=2000)
    parser.add_argument("--turn-calls", type=int, default=50)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model (served: 1)")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]   # the machine is shared: say how busy it was
    start = time.perf_counter()
    models = load_models(threads=args.threads)
    load_s = time.perf_counter() - start
    names = (ENGLISH_CLIP, *MANDARIN_CLIPS)
    gap = np.zeros(16000 * 3, dtype=np.float32)
    session_16k = np.concatenate([part for name in names for part in (clip_audio(SHARED_MEDIA / name), gap)])
    vad = vad_windows(models, session_16k, args.windows)
    whole, features = turn_calls(models, session_16k, args.turn_calls)

    detector = {}
    for rate in (16000, 48000):
        gap = np.zeros(rate * 3, dtype=np.float32)
        audio = np.concatenate([part for name in names for part in (clip_audio(SHARED_MEDIA / name, rate), gap)])
        rtfs, frames, turns = [], [], 0
        for _ in range(args.passes):
            rtf, frame_ms, turns = detector_pass(models, audio, rate)
            rtfs.append(rtf)
            frames += frame_ms
        detector[str(rate)] = {"audio_s": round(len(audio) / rate, 2), "turns_per_pass": turns,
                               "real_time_factor": summary(rtfs), f"feed_ms_per_{FRAME_MS}ms_frame": summary(frames)}

    result = {"threads": args.threads, "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
              "load_s": round(load_s, 2), "vad_window_ms": summary(vad),
              "smart_turn_call_ms": summary(whole), "smart_turn_features_ms": summary(features), "detector": detector}
    path = save("listening" if args.threads == 1 else f"listening_{args.threads}threads", result)
    print(f"models loaded and warmed in {load_s:.2f} s; load average {result['load_average_1m']} (start, end)")
    print(f"VAD per 32 ms window: median {result['vad_window_ms']['median']} ms, p99 {result['vad_window_ms']['p99']}")
    print(f"Smart Turn per call: median {result['smart_turn_call_ms']['median']} ms, "
          f"p99 {result['smart_turn_call_ms']['p99']} (features alone: median "
          f"{result['smart_turn_features_ms']['median']} ms)")
    for rate, figures in detector.items():
        rtf, frame = figures["real_time_factor"], figures[f"feed_ms_per_{FRAME_MS}ms_frame"]
        print(f"detector at {rate} Hz on {figures['audio_s']} s ({figures['turns_per_pass']} turns): real-time factor "
              f"median {rtf['median']}, per {FRAME_MS} ms frame median {frame['median']} ms, p99 {frame['p99']} ms, "
              f"max {frame['max']} ms")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
