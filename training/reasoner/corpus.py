"""The project's own bilingual E-CoT corpus (training/data/ecot): checked, measured and turned into the reasoner's
training lines.

Each example was written by hand (training/data/ecot/README.md) as one JSON line of `parts/*.jsonl`: the cues as
perception phrases them (what was said, the face model's class, the voice words), the earlier turns when there are
any, and the compact E-CoT: a feeling label with a short conclusion, the intent, the strategy and the reply.
`build` checks every line against the rules the corpus promises, writes `train.jsonl` and `dev.jsonl` in the
trainers' messages format (text cues, as `training/reasoner/data.py` reads them) and `stats.json`.

    python -m training.reasoner.corpus          # check the parts, rewrite train/dev/stats, print the figures
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from emoomni.services.gateway.memory import CONVERSATION_HEADER, RememberedTurn, render_turn
from emoomni.services.reasoning.backends.interface import EMOTION_LABELS
from emoomni.v1 import perception_pb2
from training.reasoner.reply_checks import units

CORPUS = Path(__file__).resolve().parents[1] / "data" / "ecot"
FACES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SITUATIONS = ("grief", "worry", "anger_other", "anger_agent", "frustration", "sadness", "pride", "joy", "relief",
              "teasing", "sarcasm", "mixed", "neutral", "confusion", "embarrassment", "small_talk", "advice")
# Word budgets of the generated lines (the reply's is in sentences): the compact E-CoT, so the reply starts early.
EMOTION_WORDS, INTENT_WORDS, STRATEGY_WORDS = 10, 12, 16
# Reading families: a reading is right when it names the family of the example's label (or its second label).
FAMILIES = {
    "positive": ("happy", "excited", "joyful", "grateful", "hopeful", "proud", "relieved"),
    "playful": ("amused", "playful"), "ironic": ("sarcastic",), "neutral": ("calm", "neutral", "curious"),
    "surprised": ("surprised",), "confused": ("confused",),
    "afraid": ("anxious", "worried", "nervous", "fearful"),
    "sad": ("sad", "grieving", "disappointed", "lonely", "tired"),
    "angry": ("frustrated", "angry", "annoyed", "disgusted", "defensive"), "ashamed": ("embarrassed", "guilty"),
}
FAMILY_OF = {label: family for family, labels in FAMILIES.items() for label in labels}
_HAN = re.compile(r"[\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
Label = Literal[tuple(EMOTION_LABELS)]  # type: ignore[valid-type]


class EarlierTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str
    agent: str
    feeling: Label
    interrupted: bool = False


class Example(BaseModel):
    """One corpus line; the validators are the corpus's promises."""

    model_config = ConfigDict(extra="forbid")
    id: str
    situation: Literal[SITUATIONS]  # type: ignore[valid-type]
    language: Literal["en", "zh"]
    split: Literal["train", "dev"]
    history: list[EarlierTurn] = Field(default_factory=list, max_length=3)
    said: str = Field(min_length=1)
    face: Literal[FACES] | None  # type: ignore[valid-type]
    face_also: Literal[FACES] | None  # type: ignore[valid-type]
    intonation: Literal["lively", "flat", "moderately varied"] | None
    loudness: Literal["very quiet", "quiet", "normal loudness", "loud"]
    pace: Literal["fast", "moderate", "slow"] | None
    pauses: bool
    label: Label
    label2: Label | None
    emotion: str
    intent: str
    strategy: str
    reply: str

    @field_validator("emotion", "intent", "strategy")
    @classmethod
    def _plain_english(cls, text: str, info) -> str:
        limit = {"emotion": EMOTION_WORDS, "intent": INTENT_WORDS, "strategy": STRATEGY_WORDS}[info.field_name]
        text = " ".join(text.split())
        if not text or not text.isascii():
            raise ValueError("must be plain ASCII English")
        if len(text.split()) > limit + 2:  # the writers' limit, with two words of slack for hyphens and "a"
            raise ValueError(f"over {limit} words")
        return text

    @field_validator("reply")
    @classmethod
    def _spoken(cls, text: str, info) -> str:
        text = " ".join(text.split())
        if info.data.get("language") == "zh" and (_LATIN.search(text) or not _HAN.search(text)):
            raise ValueError("a Mandarin reply is written in Chinese characters, with no Latin letters")
        if info.data.get("language") == "en" and not text.isascii():
            raise ValueError("an English reply is plain ASCII")
        return text


def cue_line(ex: Example) -> str:
    """The turn's cues as perception's brief words give them to the backend (services/perception/core.py)."""
    cues = [f'said "{ex.said}"']
    if ex.face:
        cues.append(f"face mostly {ex.face}")
        if ex.face_also:
            cues.append(f"face also {ex.face_also}")
    if ex.intonation:
        cues.append(f"{ex.intonation} intonation")
    cues.append(f"voice {ex.loudness}")
    if ex.pace:
        cues.append(f"{ex.pace} speech")
    if ex.pauses:
        cues.append("many pauses")
    return "Cues: " + "; ".join(cues)


def context_of(ex: Example) -> str:
    """The earlier turns as the gateway's session memory renders them for reasoning."""
    if not ex.history:
        return ""
    turns = [render_turn(RememberedTurn(turn_id=str(i), user=t.user, feeling=t.feeling, reply_heard=t.agent,
                                        interrupted=t.interrupted)) for i, t in enumerate(ex.history)]
    return CONVERSATION_HEADER + "\n" + "\n".join(turns)


def perception_of(ex: Example) -> perception_pb2.PerceptionResult:
    """The example as perception would have sent it: the transcript, each cue with its modality, and face scores
    that make its face words true (the dominant class at 0.6, the runner-up at 0.25), for brains that read more
    than the brief words (the prompt-only brain's classifier weighs the face's probabilities)."""
    result = perception_pb2.PerceptionResult(transcript=perception_pb2.Transcript(text=ex.said, language=ex.language))
    for brief in cue_line(ex).removeprefix("Cues: ").split("; "):
        modality = "speech" if brief.startswith("said ") else "face" if brief.startswith("face ") else "voice"
        text = f"The user said: {brief.removeprefix('said ')}" if modality == "speech" else brief
        result.cues.append(perception_pb2.Cue(modality=modality, text=text, brief=brief))
    if ex.face:
        scores = dict.fromkeys(FACES, 0.15 / (len(FACES) - 1 - bool(ex.face_also)))
        scores[ex.face] = 0.6
        if ex.face_also:
            scores[ex.face_also] = 0.25
        result.face.frames_sampled = result.face.frames_with_face = 8
        result.face.dominant_expression, result.face.dominant_expression_frames = ex.face, 6
        result.face.mean_expression_scores.update(scores)
    return result


def reading(ex: Example) -> str:
    """The emotion line the model writes after "Overall, the user seems ": its labels, then the conclusion."""
    labels = ex.label + (f" and {ex.label2}" if ex.label2 and ex.label2 != ex.label else "")
    return f"{labels}, {ex.emotion.rstrip('.')}."


def messages_line(ex: Example) -> dict:
    """The example as a training line in the messages format, with text cues (training/reasoner/data.py)."""
    user = cue_line(ex) + (f"\nEarlier conversation: {context_of(ex)}" if ex.history else "")
    answer = (f"<emotion>{reading(ex)}</emotion>\n<intent>{ex.intent}</intent>\n<strategy>{ex.strategy}</strategy>\n"
              f"<response>{ex.reply}</response>")
    return {"id": ex.id, "situation": ex.situation, "language": ex.language,
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def distinct_2(texts: list[str]) -> float:
    """Unique bigrams over all bigrams, each text's own bigrams (words in English, characters in Chinese)."""
    grams = [tuple(u[i:i + 2]) for t in texts for u in [units(t)] for i in range(len(u) - 1)]
    return len(set(grams)) / max(1, len(grams))


def load_parts(folder: Path = CORPUS / "parts") -> tuple[list[Example], list[str]]:
    """Every example of the parts, and the problems found (file:line: reason), duplicates included."""
    examples, problems = [], []
    for path in sorted(folder.glob("*.jsonl")):
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not text.strip():
                continue
            try:
                examples.append(Example.model_validate_json(text))
            except ValidationError as exc:
                first = exc.errors()[0]
                problems.append(f"{path.name}:{number}: {'.'.join(map(str, first['loc']))}: {first['msg']}")
    for what, key in (("id", lambda e: e.id), ("reply", lambda e: e.reply), ("said", lambda e: e.said)):
        for value, count in Counter(map(key, examples)).items():
            if count > 1:
                problems.append(f"{count} examples share one {what}: {value[:60]}")
    return examples, problems


def statistics(examples: list[Example]) -> dict:
    by = Counter((e.situation, e.split) for e in examples)
    return {
        "examples": len(examples), "train": sum(e.split == "train" for e in examples),
        "dev": sum(e.split == "dev" for e in examples),
        "mandarin_share": round(sum(e.language == "zh" for e in examples) / max(1, len(examples)), 3),
        "multi_turn_share": round(sum(bool(e.history) for e in examples) / max(1, len(examples)), 3),
        "no_face_share": round(sum(e.face is None for e in examples) / max(1, len(examples)), 3),
        "reply_distinct_2": round(distinct_2([e.reply for e in examples]), 3),
        "reply_distinct_2_en": round(distinct_2([e.reply for e in examples if e.language == "en"]), 3),
        "reply_distinct_2_zh": round(distinct_2([e.reply for e in examples if e.language == "zh"]), 3),
        "situations": {s: {"train": by[(s, "train")], "dev": by[(s, "dev")]} for s in SITUATIONS},
        "labels": dict(Counter(e.label for e in examples).most_common()),
    }


def build(folder: Path = CORPUS) -> dict:
    """Check the parts and write train.jsonl, dev.jsonl and stats.json; returns the statistics."""
    examples, problems = load_parts(folder / "parts")
    if problems:
        raise ValueError("the corpus has problems:\n" + "\n".join(problems))
    for split in ("train", "dev"):
        lines = [json.dumps(messages_line(e), ensure_ascii=False) for e in examples if e.split == split]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    stats = statistics(examples)
    (folder / "stats.json").write_text(json.dumps(stats, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return stats


if __name__ == "__main__":
    try:
        print(json.dumps(build(), indent=1, ensure_ascii=False))
    except ValueError as exc:
        sys.exit(str(exc))
