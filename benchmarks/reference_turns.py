"""One English and one Mandarin turn of the embedded default beside the paper's reference E-CoT for the same
shared clip (../shared/media/reference_ecot.json); writes docs/turns-vs-reference.md.

    .venv/bin/python benchmarks/reference_turns.py [--clips merged_7e578e0b.mp4,merged_b6b785ce.mp4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine  # noqa: E402
from benchmarks.embedded_turn import one_turn  # noqa: E402
from emoomni.core.aio import run_async  # noqa: E402
from emoomni.core.config import load_config  # noqa: E402
from emoomni.core.runtime import EmbeddedAgent  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
FIELDS = (("emotion_analysis", "Emotion"), ("intent", "Intent"), ("strategy", "Strategy"), ("response", "Reply"))


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


async def run(clips: list[str], media: Path) -> list[tuple[str, object]]:
    async with EmbeddedAgent(load_config()) as agent:
        await one_turn(agent, str(ROOT / "samples" / "hello.mp4"))  # warm-up, not shown
        return [(clip, await one_turn(agent, str(media / clip))) for clip in clips]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="merged_7e578e0b.mp4,merged_b6b785ce.mp4")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "turns-vs-reference.md")
    parser.add_argument("--media", type=Path, default=MEDIA, help="the shared clips and reference_ecot.json")
    args = parser.parse_args()
    reference = {r["clip"]: r for r in json.loads((args.media / "reference_ecot.json").read_text(encoding="utf-8"))}
    cfg = load_config()
    lines = ["# Two turns beside the paper's reference E-CoT", "",
             f"Written by `benchmarks/reference_turns.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
             f"({machine()['cpu']}, {machine()['cores']} cores, shared with other work). The stack's CPU default: "
             f"ASR {cfg.perception.asr.model_path or 'Whisper-base'} (languages {cfg.perception.asr.languages}), "
             f"reasoning {cfg.reasoning.llama_cpp.model} in llama.cpp, talker {cfg.talker.active}. The reference "
             "is what the paper's own system (Qwen2.5-Omni-7B fine-tuned, on a GPU) wrote for the same clip.", ""]
    for clip, turn in run_async(run(args.clips.split(","), args.media)):
        done, ref, p = turn.done, reference[clip], turn.perception
        lines += [f"## `{clip}` ({p.transcript.language}, {p.media_duration_s:.1f} s)", "",
                  f"Heard: \"{p.transcript.text}\"" + (f" (English rendering: \"{p.transcript.english_translation}\")"
                                                       if p.transcript.english_translation else ""), "",
                  "| part | EmoOmni CPU default | paper's reference |", "|---|---|---|"]
        for key, label in FIELDS:
            lines.append(f"| {label} | {cell(getattr(done.ecot, key))} | {cell(ref[key])} |")
        lines.append(f"| Instruction | {cell(done.instruction.text)} | {cell(ref['instruction'])} |")
        t = done.timings
        lines += ["", f"Spoken by {', '.join(sorted(turn.talkers))}"
                  + (f" (warnings: {'; '.join(turn.talker_warnings)})" if turn.talker_warnings else "")
                  + f"; first audio {t.first_audio_ms / 1e3:.2f} s, whole turn {t.total_ms / 1e3:.2f} s "
                  f"(perception {t.perception_ms / 1e3:.2f} s, reasoning {t.reasoning_ms / 1e3:.2f} s).", ""]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
