"""Compare reasoning brains on the E-CoT corpus's development set (training/data/ecot/dev.jsonl), in one run.

    python benchmarks/brain_compare.py                       # prompt-only and tuned 0.5B, every dev example
    python benchmarks/brain_compare.py --brains tuned --limit 20 --adapter runs/reasoner/final/adapter.gguf
    python benchmarks/brain_compare.py --rubric benchmarks/results/brain_rubric.jsonl   # add the read scores

For each brain and example: the four E-CoT parts as streamed by the llama.cpp backend (in process, the stack's
own config otherwise), the time to the reasoning's first reply token, the automatic reply checks
(training/reasoner/reply_checks.py) and the reading's family against the example's labels. Writes every reply to
benchmarks/results/brain_compare_replies.jsonl (for reading them: the rubric) and the summary per brain and per
situation to benchmarks/results/brain_compare.json.

The rubric (`--rubric`): a JSONL of {"id", "brain", "feeling", "content", "language", "no_retelling",
"no_insult", "strategy", "glad"} with 0/1 values, written by reading every reply (see RESULTS.md for who read).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import RESULTS_DIR, save, summary  # noqa: E402
from benchmarks.reasoning_quality import strategy_fits  # noqa: E402
from emoomni.core.config import load_config  # noqa: E402
from emoomni.services.instruction.core import InstructionCore  # noqa: E402
from emoomni.services.reasoning.backends.interface import EMOTION, INTENT, RESPONSE, STRATEGY  # noqa: E402
from emoomni.services.reasoning.backends.llama_cpp_backend import LlamaCppBackend  # noqa: E402
from emoomni.services.reasoning.core import WARMUP  # noqa: E402
from training.reasoner.corpus import (  # noqa: E402
    CORPUS,
    FAMILY_OF,
    Example,
    context_of,
    cue_line,
    load_parts,
    perception_of,
)
from training.reasoner.reply_checks import check  # noqa: E402

BRAINS = {"prompt": {"tuned": False}, "tuned": {"tuned": True}}
RUBRIC_KEYS = ("feeling", "content", "language", "no_retelling", "no_insult", "strategy", "glad")
_FIELDS = {EMOTION: "emotion", INTENT: "intent", STRATEGY: "strategy", RESPONSE: "reply"}
# The example's feeling family as the scenario set's feelings that `strategy_fits` judges a delivery against.
_CELEBRATION = re.compile(r"(?i)congratulat|\bcongrats\b|恭喜|太棒了|好消息")
_BAD_NEWS = {"sad", "afraid", "angry", "ashamed"}
_DELIVERY = {"sad": "sad", "afraid": "worried", "angry": "angry", "surprised": "surprised"}
# Bright feelings want a brighter delivery; relief, gratitude and hope may well be gentle.
_BRIGHT = {"happy", "excited", "joyful", "proud"}


def reading_labels(emotion: str) -> list[str]:
    """The labels of the brain's reading: the words after "the user seems", up to the comma or full stop."""
    found = re.search(r"the user seems ([a-z ]+?)[,.]", emotion)
    return found.group(1).split(" and ") if found else []


def run_brain(backend: LlamaCppBackend, mapper: InstructionCore, examples: list[Example], brain: str) -> list[dict]:
    rows = []
    for ex in examples:
        perception = perception_of(ex)
        parts = dict.fromkeys(_FIELDS.values(), "")
        started, first_reply = time.perf_counter(), None
        for piece in backend.stream(perception, context_of(ex)):
            if piece.part == RESPONSE and piece.text.strip() and first_reply is None:
                first_reply = time.perf_counter() - started
            parts[_FIELDS[piece.part]] += piece.text
        total = time.perf_counter() - started
        labels = reading_labels(parts["emotion"])
        gold = {FAMILY_OF[ex.label], *([FAMILY_OF[ex.label2]] if ex.label2 else [])}
        reply = parts["reply"].strip()
        controls = mapper.map(parts["strategy"].strip(), "en").controls
        rows.append({"brain": brain, "id": ex.id, "situation": ex.situation, "language": ex.language,
                     "history": [t.model_dump() for t in ex.history], "said": ex.said,
                     "cues": cue_line(ex),
                     "gold": [ex.label, ex.label2], "reading": labels,
                     "reading_ok": bool(labels) and FAMILY_OF.get(labels[0]) in gold,
                     **{k: v.strip() for k, v in parts.items()}, "reference_reply": ex.reply,
                     "delivery": {"emotion": controls.emotion, "pitch": round(controls.pitch_scale, 2),
                                  "rate": round(controls.rate_scale, 2), "energy": round(controls.energy_scale, 2)},
                     "celebrates_bad_news": FAMILY_OF[ex.label] in _BAD_NEWS and bool(_CELEBRATION.search(reply)),
                     "delivery_fits": strategy_fits("happy" if ex.label in _BRIGHT else
                                                    _DELIVERY.get(FAMILY_OF[ex.label], "neutral"), controls),
                     "first_reply_token_s": round(first_reply or total, 3), "total_s": round(total, 3),
                     **check(reply, ex.said, ex.language)})
        print(f"{brain} {ex.id}: [{', '.join(labels)}] {reply}", flush=True)
    return rows


def summarise(rows: list[dict], rubric: dict) -> dict:
    """Per brain: the automatic checks, reading accuracy, timings and (when read) the rubric, overall and per
    situation."""
    out = {}
    for brain in dict.fromkeys(r["brain"] for r in rows):
        mine = [r for r in rows if r["brain"] == brain]
        by_situation = defaultdict(list)
        for r in mine:
            by_situation[r["situation"]].append(r)

        def figures(rs: list[dict], brain=brain) -> dict:
            zh = [r for r in rs if r["language"] == "zh"]
            fig = {"n": len(rs), "reading_accuracy": _share(rs, "reading_ok"),
                   "language_ok": _share(rs, "language_ok"),
                   "language_ok_zh": _share(zh, "language_ok") if zh else None,
                   "insult_hits": sum(bool(r["insults"]) for r in rs),
                   "labels_user": sum(r["labels_user"] for r in rs), "retells": _share(rs, "retells"),
                   "delivery_fits": _share(rs, "delivery_fits"),
                   "celebrates_bad_news": sum(r["celebrates_bad_news"] for r in rs),
                   "mean_length_units": round(sum(r["length"] for r in rs) / max(1, len(rs)), 1)}
            scored = [rubric[(brain, r["id"])] for r in rs if (brain, r["id"]) in rubric]
            if scored:
                fig["rubric"] = {k: round(sum(s[k] for s in scored) / len(scored), 3) for k in RUBRIC_KEYS}
                fig["rubric"]["read"] = len(scored)
            return fig

        out[brain] = {**figures(mine), "first_reply_token_s": summary([r["first_reply_token_s"] for r in mine]),
                      "total_s": summary([r["total_s"] for r in mine]),
                      "situations": {s: figures(rs) for s, rs in sorted(by_situation.items())}}
    return out


def _share(rows: list[dict], key: str) -> float:
    return round(sum(bool(r[key]) for r in rows) / max(1, len(rows)), 3)


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--brains", nargs="+", default=list(BRAINS), choices=list(BRAINS))
    args.add_argument("--adapter", default="", help="the tuned brain's adapter (default: the shipped one)")
    args.add_argument("--limit", type=int, default=0, help="only the first N development examples")
    args.add_argument("--threads", type=int, default=2)
    args.add_argument("--rubric", default="", help="read scores (JSONL) to add; no brain is run again")
    args.add_argument("--tag", default="", help="suffix of the result files")
    args.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the config's)")
    opts = args.parse_args()
    replies = RESULTS_DIR / f"brain_compare_replies{opts.tag}.jsonl"
    if opts.rubric:
        rows = [json.loads(line) for line in replies.read_text(encoding="utf-8").splitlines()]
        rubric = {}
        for line in Path(opts.rubric).read_text(encoding="utf-8").splitlines():
            score = json.loads(line)
            rubric[(score["brain"], score["id"])] = score
    else:
        examples = [e for e in load_parts(CORPUS / "parts")[0] if e.split == "dev"]
        examples = examples[: opts.limit] if opts.limit else examples
        rows, rubric = [], {}
        for brain in opts.brains:
            cfg = load_config(env={})
            cfg.reasoning.llama_cpp.n_threads = opts.threads
            cfg.reasoning.llama_cpp.tuned = BRAINS[brain]["tuned"]
            if opts.temperature is not None:
                cfg.reasoning.llama_cpp.temperature = cfg.reasoning.llama_cpp.tuned_temperature = opts.temperature
            if brain == "tuned" and opts.adapter:
                cfg.reasoning.llama_cpp.adapter_path = opts.adapter
            backend, mapper = LlamaCppBackend(cfg.reasoning), InstructionCore(cfg)
            list(backend.stream(WARMUP, ""))  # the service's own first turn
            rows += run_brain(backend, mapper, examples, brain)
            del backend
        replies.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = summarise(rows, rubric)
    path = save(f"brain_compare{opts.tag}", {"dev_examples": len({r['id'] for r in rows}), "brains": result})
    for brain, fig in result.items():
        print(brain, {k: v for k, v in fig.items() if k != "situations"})
    print("wrote", path, "and", replies)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
