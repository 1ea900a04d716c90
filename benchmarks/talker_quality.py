"""Does the spoken reply follow its instruction, and can people understand it? Every talker, measured by
emoomni.eval.talker_quality (pitch, loudness and rate against neutral; WER under Whisper-base; RTF, first chunk).

    python benchmarks/talker_quality.py [--talkers piper,espeak,kokoro] [--repeats 3] [--heldout]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: makes `benchmarks` importable

from benchmarks.common import save
from emoomni.core.config import load_config
from emoomni.eval.objective import load_asr
from emoomni.eval.talker_quality import INSTRUCTIONS, SENTENCES, evaluate_talker
from emoomni.services.instruction.core import InstructionCore
from emoomni.services.talker.core import TalkerCore


def heldout_instructions() -> dict[str, dict[str, str]]:
    """training/instruction/heldout_instructions.yaml as {instruction: {feature: direction}}."""
    from training.instruction.compose import load_heldout_instructions

    return {row["text"]: {k: v for k, v in row.items() if k in ("pitch", "loudness", "rate")}
            for row in load_heldout_instructions()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--talkers", default="piper,espeak,kokoro")
    parser.add_argument("--repeats", type=int, default=3, help="syntheses per clip (VITS voices vary per take)")
    parser.add_argument("--heldout", action="store_true",
                        help="the held-out instruction set (English and Mandarin, incl. neutral ones) instead of the "
                             "eight fixed instructions; directions only, no WER")
    args = parser.parse_args()
    cfg = load_config(env={})
    core, mapper = TalkerCore(cfg), InstructionCore(cfg)
    asr = None if args.heldout else load_asr()
    instructions = heldout_instructions() if args.heldout else INSTRUCTIONS
    results = []
    for talker in args.talkers.split(","):
        result = evaluate_talker(core, mapper, asr, talker, repeats=args.repeats, instructions=instructions)
        results.append(result)
        print(f"{talker:8s} directions {result['directions_met']}/{result['directions_checked']} "
              f"({result['direction_accuracy']:.0%})  WER {result['wer']}  RTF median {result['rtf_median']} "
              f"p99 {result['rtf_p99']}  first chunk median {result['first_chunk_ms_median']} ms "
              f"p99 {result['first_chunk_ms_p99']} ms", flush=True)
        for check in result["checks"]:
            if not check["met"]:
                print(f"         missed: {check['instruction']} {check['feature']} {check['expected']} "
                      f"(change {check['change']})")
    name = "talker_quality_heldout" if args.heldout else "talker_quality"
    path = save(name, {"benchmark": name, "default_talker": cfg.talker.active,
                       "goals": {"direction_accuracy": ">= 0.9", "wer": "<= 0.047", "rtf": "<= 0.15"},
                       "instructions": instructions, "sentences": SENTENCES, "results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
