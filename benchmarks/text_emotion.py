"""Accuracy of the text-emotion cue (services/reasoning/reading.py) on the labelled set
services/reasoning/data/text_emotion_set.yaml (English and Mandarin), and its time per utterance.

    .venv/bin/python benchmarks/text_emotion.py [--model qwen2.5-coder-0.5b]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import save, summary  # noqa: E402
from emoomni.services.reasoning.models import model_file  # noqa: E402
from emoomni.services.reasoning.reading import TextEmotionClassifier  # noqa: E402

SET_FILE = ROOT / "services" / "reasoning" / "data" / "text_emotion_set.yaml"


def load_set() -> list[dict]:
    return yaml.safe_load(SET_FILE.read_text(encoding="utf-8"))["items"]


def evaluate(classifier: TextEmotionClassifier, items: list[dict]) -> dict:
    """Accuracy overall, per language and per label, the confusions, and milliseconds per utterance."""
    rows, times = [], []
    for item in items:
        started = time.perf_counter()
        scores = classifier.scores(item["text"])
        times.append((time.perf_counter() - started) * 1e3)
        rows.append({**item, "predicted": max(scores, key=scores.get)})

    def accuracy(subset):
        return round(sum(r["predicted"] == r["label"] for r in subset) / max(len(subset), 1), 3)

    return {"n": len(rows), "accuracy": accuracy(rows),
            "by_language": {lang: {"n": sum(r["lang"] == lang for r in rows),
                                   "accuracy": accuracy([r for r in rows if r["lang"] == lang])}
                            for lang in sorted({r["lang"] for r in rows})},
            "by_label": {label: accuracy([r for r in rows if r["label"] == label])
                         for label in sorted({r["label"] for r in rows})},
            "confusions": Counter(f"{r['label']}->{r['predicted']}" for r in rows
                                  if r["predicted"] != r["label"]).most_common(),
            "ms_per_utterance": summary(times),
            "misses": [f"{r['text']} ({r['label']} -> {r['predicted']})" for r in rows if r["predicted"] != r["label"]]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    args = parser.parse_args()
    classifier = TextEmotionClassifier(str(model_file(args.model)))
    classifier.scores("warm-up")
    result = evaluate(classifier, load_set())
    print(f"accuracy {result['accuracy']:.1%} over {result['n']}; by language {result['by_language']}")
    print(f"by label {result['by_label']}\nconfusions {result['confusions']}")
    print(f"ms per utterance {result['ms_per_utterance']}")
    path = save("text_emotion", {"benchmark": "text_emotion", "model": args.model, **result})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
