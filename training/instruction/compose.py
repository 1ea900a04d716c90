"""Builds the instruction mapper's training set from facets.yaml: strategies made of one emotion facet and up
to two modifier facets (or modifiers alone), phrased with varied sentence frames, each labelled with the
combined controls. Deterministic for a given seed."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import yaml
from pydantic import BaseModel

HERE = Path(__file__).resolve().parent
FACETS_FILE = HERE / "facets.yaml"
HELDOUT_FILE = HERE / "heldout.yaml"


class Facet(BaseModel):
    name: str
    controls: dict[str, float | str]
    verbs: list[str]
    tones: list[str]
    # Situations that call for this delivery ("they are panicking"), so that strategies which explain why
    # they speak a certain way map as well as ones that name the manner.
    situations: list[str] = []

    @property
    def sets_emotion(self) -> bool:
        return "emotion" in self.controls


class Example(BaseModel):
    text: str
    pitch: float = 1.0
    rate: float = 1.0
    energy: float = 1.0
    intensity: float = 0.3
    emotion: str = "neutral"
    voice_quality: str = "modal"
    age: str = ""
    gender: str = ""


def load_facets(path: Path = FACETS_FILE) -> tuple[list[Facet], list[str]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    facets = [Facet(name=name, **body) for name, body in data["facets"].items()]
    return facets, list(data.get("off_topic", []))


def combine(facets: list[Facet], text: str) -> Example:
    """Labels for a strategy built from `facets`: scales multiply, the first facet that sets a label wins."""
    example = Example(text=text)
    labels_set: set[str] = set()
    for facet in facets:
        for key, value in facet.controls.items():
            if key in ("pitch", "rate", "energy"):
                setattr(example, key, getattr(example, key) * float(value))
            elif key == "intensity":
                example.intensity = max(example.intensity, float(value))
            else:
                field = {"age_hint": "age", "gender_hint": "gender"}.get(key, key)
                if field not in labels_set:
                    setattr(example, field, str(value))
                    labels_set.add(field)
    return example


def _conflict(facets: list[Facet]) -> bool:
    """True when two facets push the same scale in opposite directions (e.g. loud + quiet)."""
    for key in ("pitch", "rate", "energy"):
        values = [float(f.controls[key]) for f in facets if key in f.controls]
        if any(v > 1.04 for v in values) and any(v < 0.96 for v in values):
            return True
    # Two different ages, genders or voice qualities cannot both hold.
    for key in ("age_hint", "gender_hint", "voice_quality"):
        if len({f.controls[key] for f in facets if key in f.controls}) > 1:
            return True
    return False


def _single(facet: Facet, rng: random.Random) -> list[str]:
    out = [f"I will {v}." for v in facet.verbs] + [f"{v[0].upper()}{v[1:]}." for v in facet.verbs]
    frames = ["Use a {t} voice.", "Reply in a {t} tone.", "I will respond in a {t} way.",
              "The answer should sound {t}.", "Keep the delivery {t}.", "I will respond, {t} throughout.",
              "Say it in a {t} way.", "Speak in a {t} manner.", "Sound {t}."]
    out += [frame.format(t=t) for t in facet.tones for frame in rng.sample(frames, 3)]
    situated = ["Since {s}, I will {v}.", "Because {s}, I will respond accordingly.", "{S}, so I will {v}.",
                "I will respond in a {t} way because {s}."]
    for situation in facet.situations:
        for frame in rng.sample(situated, 2):
            out.append(frame.format(s=situation, S=situation[0].upper() + situation[1:], v=rng.choice(facet.verbs),
                                    t=rng.choice(facet.tones)))
    return out


def _multi(parts: list[Facet], rng: random.Random) -> str:
    verbs = [rng.choice(f.verbs) for f in parts]
    tones = [rng.choice(f.tones) for f in parts]
    frames = [
        lambda: "I will " + " and ".join(verbs) + ".",
        lambda: "Use a " + ", ".join(tones) + " voice.",
        lambda: f"I will respond in a {tones[0]} tone and " + " and ".join(verbs[1:]) + ".",
        lambda: f"I will {verbs[0]}, " + " and ".join(tones[1:]) + ".",
        lambda: f"{verbs[0][0].upper()}{verbs[0][1:]}, in a " + " and ".join(tones[1:]) + " voice.",
        lambda: "Reply " + ", ".join(tones) + ", and " + verbs[-1] + ".",
    ]
    return rng.choice(frames)()


def build_examples(seed: int = 0, pairs: int = 900, triples: int = 500) -> list[Example]:
    rng = random.Random(seed)
    facets, _ = load_facets()
    examples = [combine([f], text) for f in facets for text in _single(f, rng)]
    emotional = [f for f in facets if f.sets_emotion]
    modifiers = [f for f in facets if not f.sets_emotion]
    combos = [list(c) for c in itertools.product(emotional, modifiers)] + \
             [list(c) for c in itertools.combinations(modifiers, 2)]
    combos = [c for c in combos if not _conflict(c)]
    for _ in range(pairs):
        parts = rng.choice(combos)
        rng.shuffle(parts)
        examples.append(combine(parts, _multi(parts, rng)))
    for _ in range(triples):
        parts = [rng.choice(emotional), *rng.sample(modifiers, 2)]
        if _conflict(parts):
            continue
        examples.append(combine(parts, _multi(parts, rng)))
    return examples


def anchor_texts() -> list[str]:
    """One sentence per facet phrasing: the relevance check compares a strategy against these."""
    facets, _ = load_facets()
    return [f"I will {v}." for f in facets for v in f.verbs] + \
           [f"Speak in a {t} voice." for f in facets for t in f.tones]


def load_heldout(path: Path = HELDOUT_FILE) -> list[dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


HELDOUT_INSTRUCTIONS_FILE = HERE / "heldout_instructions.yaml"


def load_heldout_instructions(path: Path = HELDOUT_INSTRUCTIONS_FILE) -> list[dict]:
    """Held-out acoustic instructions (English and Mandarin) with the audible directions expected."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))
