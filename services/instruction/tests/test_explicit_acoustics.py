"""Explicit acoustic words and "neutral" reach the controls (issue 15), on the held-out instruction set
training/instruction/heldout_instructions.yaml (English and Mandarin phrasings the training bank never
uses), with the real MiniLM embedding model and the shipped head. The talker's audio on the same set is
measured by benchmarks/talker_quality.py --heldout."""

import re

import pytest

from emoomni.core.config import load_config
from emoomni.services.instruction.core import InstructionCore
from emoomni.services.instruction.explicit import read_explicit
from training.instruction.compose import build_examples, load_heldout_instructions

SCALE = {"pitch": "pitch_scale", "rate": "rate_scale", "loudness": "energy_scale"}


@pytest.fixture(scope="module")
def core():
    return InstructionCore(load_config(env={}))


def met(direction: str, value: float) -> bool:
    return value > 1.02 if direction == "up" else value < 0.98 if direction == "down" else abs(value - 1) <= 0.02


def test_held_out_set_is_big_bilingual_and_never_trained_on():
    rows = load_heldout_instructions()
    assert len(rows) >= 40 and sum(bool(re.search(r"[\u4e00-\u9fff]", r["text"])) for r in rows) >= 8
    words = lambda t: re.findall(r"[a-z']+", t.lower())  # noqa: E731
    grams = {tuple(w[i:i + 4]) for e in build_examples() for w in [words(e.text)] for i in range(len(w) - 3)}
    for row in rows:
        w = words(row["text"])
        shared = [g for g in (tuple(w[i:i + 4]) for i in range(len(w) - 3)) if g in grams]
        assert not shared, (row["text"], shared)


def test_mapped_controls_meet_90_percent_of_held_out_directions(core):
    hits, total, misses = 0, 0, []
    for row in load_heldout_instructions():
        controls = core.map(row["text"], "").controls
        for feature, direction in row.items():
            if feature in SCALE:
                ok = met(direction, getattr(controls, SCALE[feature]))
                hits, total = hits + ok, total + 1
                if not ok:
                    misses.append((row["text"], feature, direction, round(getattr(controls, SCALE[feature]), 3)))
    assert total >= 70
    assert hits / total >= 0.9, misses


def test_named_pace_and_pitch_survive_and_neutral_means_neutral(core):
    slow_low = core.map("Speak slowly, in a low voice.", "en").controls
    assert slow_low.rate_scale < 0.9 and slow_low.pitch_scale < 0.95
    for text in ("Describe the bus schedule in an ordinary, even way.", "用正常的语气读出来。"):
        c = core.map(text, "").controls
        assert (c.rate_scale, c.pitch_scale, c.energy_scale, c.emotion) == (1.0, 1.0, 1.0, "neutral"), text
    whisper = core.map("请悄悄地说", "zh")
    assert whisper.controls.voice_quality == "whisper" and whisper.controls.energy_scale < 0.7
    assert not whisper.warnings, "explicit words are understood even where the embedding is lost"


def test_negated_words_do_not_count():
    assert read_explicit("Not too fast, please.").directions == {}
    assert read_explicit("不要太快").directions == {}
    assert read_explicit("Say it quickly and loudly.").directions == {"rate": "up", "energy": "up"}
