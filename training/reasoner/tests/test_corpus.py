"""The E-CoT corpus keeps its promises (training/data/ecot/README.md): size, Mandarin share, every situation, the
multi-turn share, varied replies, the word budgets, replies that pass the automatic checks, a development set
kept out of training, and training files that are what `build` makes of the hand-written parts."""

from __future__ import annotations

import json

import pytest

from training.reasoner.corpus import CORPUS, SITUATIONS, build, load_parts, statistics
from training.reasoner.reply_checks import check


@pytest.fixture(scope="module")
def examples():
    found, problems = load_parts()
    assert not problems, problems
    return found


def test_size_languages_situations_and_variety(examples):
    stats = statistics(examples)
    assert stats["train"] >= 800 and stats["dev"] >= 200 and stats["examples"] >= 1000
    assert stats["mandarin_share"] >= 0.40
    assert stats["multi_turn_share"] >= 0.20
    assert stats["reply_distinct_2"] >= 0.6
    for situation in SITUATIONS:
        counts = stats["situations"][situation]
        assert counts["train"] + counts["dev"] >= 30 and counts["dev"] >= 5, (situation, counts)


def test_every_reply_passes_the_automatic_checks(examples):
    failures = []
    for ex in examples:
        result = check(ex.reply, ex.said, ex.language)
        if not result["language_ok"] or result["insults"] or result["labels_user"] or result["retells"]:
            failures.append((ex.id, result, ex.reply))
    assert not failures, failures


def test_the_development_set_stays_out_of_training(examples):
    training_text = (CORPUS / "train.jsonl").read_text(encoding="utf-8")
    dev = [e for e in examples if e.split == "dev"]
    leaked = [e.id for e in dev if e.said in training_text or e.reply in training_text]
    assert not leaked, leaked


def test_the_training_files_are_built_from_the_parts(tmp_path, examples):
    (tmp_path / "parts").symlink_to(CORPUS / "parts")
    build(tmp_path)
    for name in ("train.jsonl", "dev.jsonl", "stats.json"):
        assert (tmp_path / name).read_text(encoding="utf-8") == (CORPUS / name).read_text(encoding="utf-8"), name
    first = json.loads((CORPUS / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["messages"][0]["content"].startswith("Cues: said ")
