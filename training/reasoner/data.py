"""E-CoT samples in the cascade backend's own prompt layout, with the loss on what the model writes there.

The cascade backend (services/reasoning/backends/llama_cpp_backend.py) never sees the clip: it reads perception's
measured cues. So a training line becomes exactly the text llama.cpp is given and continues at serving time, in
the tuned brain's compact layout (its short system prompt, no worked examples):

    <chat template: the tuned system prompt, the earlier conversation, "Cues: ..." and the reply's language>
    Emotion: Overall, the user seems[ excited and surprised, whispering fast, a big find.\n]
    Intent:[ wants help to check the record before telling anyone\n]
    Strategy:[ Softly and clearly, steady pace: share the thrill, give two checks.\n]
    Reply:[ What a find! Check the full name and the date first.\n]

Brackets mark the trained tokens: the reading (one or two of the backend's emotion words, which its grammar allows,
then the conclusion after a comma; an analysis that is not written that way gives its first emotion words and its
first sentence, cut to 12 words) and each line the model writes, with the newline that ends it. Everything else is
written by the backend's code and carries no loss. Any Unicode is trained: the reply is in the user's language (a
Mandarin reply has no Latin letters, which the backend bans there); the other lines are plain English, which the
instruction mapper reads and the backend's ASCII mask allows.

Where the cues come from: a line with a `<video>` clip (EmoOmniPipe's stage2.jsonl) goes through the cascade's
own perception backends (Whisper, the face model, prosody), as it would when served; a text-only line gives the
cues as the backend writes them, `Cues: said "..."; face mostly happy; fast speech`. The line's own system prompt
(the omni model's) is not used: the backend has its own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from google.protobuf import json_format

from emoomni.services.reasoning.backends.interface import EMOTION, EMOTION_LABELS, RESPONSE
from emoomni.services.reasoning.backends.llama_cpp_backend import LINES, line_start, turn_prompt
from emoomni.services.reasoning.prompt import LANGUAGE_NAMES, reply_language
from emoomni.v1 import perception_pb2
from training.common.messages import BadLine, Sample, ecot_parts
from training.common.run import sha256

IGNORE = -100
# Emotion words as analyses write them (nouns, other forms) -> the backend's emotion labels.
_FORMS = {"happiness": "happy", "excitement": "excited", "thrilled": "excited", "joy": "joyful", "relief": "relieved",
          "hope": "hopeful", "hopefulness": "hopeful", "pride": "proud", "amusement": "amused", "calmness": "calm",
          "curiosity": "curious", "surprise": "surprised", "shock": "surprised", "disbelief": "surprised",
          "confusion": "confused", "anxiety": "anxious", "worry": "worried", "nervousness": "nervous",
          "fear": "fearful", "afraid": "fearful", "sadness": "sad", "disappointment": "disappointed",
          "loneliness": "lonely", "tiredness": "tired", "fatigue": "tired", "frustration": "frustrated",
          "anger": "angry", "annoyance": "annoyed", "embarrassment": "embarrassed", "guilt": "guilty",
          "defensiveness": "defensive", "disgust": "disgusted", **{label: label for label in EMOTION_LABELS}}
_WORD = re.compile(r"[a-z]+")
# Typographic characters the backend's ASCII-only logit bias would ban, as their plain forms.
_PLAIN = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": " - ",
                        "\u2013": "-", "\u2026": "...", "\u00a0": " "})
_CONTEXT_HEADER = "Earlier in the conversation:"
_COMPACT = re.compile(r"^\s*(?P<labels>[a-z]+(?: and [a-z]+)?), (?P<note>.+)$", re.S)
_SAID = re.compile(r'said "(?P<text>.*?)"(?: \(in English: ".*"\))?$')
_HAN = re.compile(r"[\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")


def emotion_reading(analysis: str) -> str:
    """The backend's emotion reading for an analysis: its first one or two emotion words, "x and y."."""
    found: list[str] = []
    for word in _WORD.findall(analysis.lower()):
        label = _FORMS.get(word)
        if label and label not in found:
            found.append(label)
    if not found:
        raise BadLine("the emotion analysis names none of the emotion words the cascade backend reads out "
                      f"({', '.join(EMOTION_LABELS[:6])}, ...)")
    return " and ".join(found[:2]) + "."


def reading_line(analysis: str) -> str:
    """What the tuned brain writes after "Overall, the user seems": "x and y, conclusion." when the analysis is
    written that way (the project's corpus), else the analysis's first emotion words ("x and y.")."""
    compact = _COMPACT.match(" ".join(analysis.split()))
    if compact and all(label in EMOTION_LABELS for label in compact["labels"].split(" and ")):
        note = plain_line(compact["note"], "emotion analysis").rstrip(".")
        return f"{compact['labels']}, {note}."
    first = " ".join(re.split(r"(?<=[.!?])\s", " ".join(analysis.split()))[0].split()[:12]).rstrip(".")
    first = first[:1].lower() + first[1:]
    return f"{emotion_reading(analysis).rstrip('.')}, {plain_line(first, 'emotion analysis')}."


def plain_line(text: str, part: str, language: str = "en") -> str:
    """One line of text (the backend ends a part at a newline). Plain ASCII, except a Mandarin reply, which has
    no Latin letters (the backend's masks for each)."""
    line = " ".join(text.translate(_PLAIN).split()).strip()
    if not line:
        raise BadLine(f"the {part} is empty")
    if language == "zh":
        if _LATIN.search(line):
            raise BadLine(f"the {part} is Mandarin with Latin letters (the backend bans them in a Mandarin reply)")
    elif not line.isascii():
        raise BadLine(f"the {part} is not plain English text (the cascade backend writes ASCII only here)")
    return line


def cues_from_text(text: str) -> tuple[perception_pb2.PerceptionResult, str]:
    """A text-only line's `Cues: a; b; c` (and `Earlier conversation: ...`) as the backend's own inputs."""
    head, _, context = text.strip().partition("\nEarlier conversation:")
    if not head.startswith("Cues:"):
        raise BadLine("a line without a clip must give the cues as the backend writes them ('Cues: said \"...\"; "
                      "face mostly happy; ...')")
    briefs = [c.strip() for c in _split_cues(head.removeprefix("Cues:")) if c.strip()]
    result = perception_pb2.PerceptionResult(cues=[perception_pb2.Cue(brief=brief) for brief in briefs])
    said = next((m["text"] for m in map(_SAID.match, briefs) if m), "")
    if said:
        result.transcript.text = said
        result.transcript.language = "zh" if _HAN.search(said) else "en"
    return result, context.strip()


def _split_cues(text: str) -> list[str]:
    """The cues at their semicolons, except those inside the quoted words."""
    out, current, quoted = [], "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            out.append(current)
            current = ""
        else:
            current += char
    return [*out, current]


def context_of(user_text: str) -> str:
    """The dialogue so far from a stage-2 user turn (EmoOmniPipe writes it before the <video> placeholder)."""
    before = user_text.split("<video>", 1)[0].strip()
    return " ".join(before.removeprefix(_CONTEXT_HEADER).split())


class ReasonerEncoder:
    def __init__(self, tokenizer, formatter, *, openers: bool, max_length: int, perceive, cache_path: Path):
        """`perceive(path)` returns a PerceptionResult for a clip; results are kept in `cache_path` by hash."""
        self.tokenizer = tokenizer
        self.formatter = formatter
        self.openers = openers
        self.max_length = max_length
        self.perceive = perceive
        self.cache_path = cache_path
        self.cache: dict[str, dict] = {}
        if cache_path.is_file():
            self.cache = json.loads(cache_path.read_text(encoding="utf-8"))

    def perception(self, sample: Sample) -> tuple[perception_pb2.PerceptionResult, str]:
        user = next(m["content"] for m in reversed(sample.messages) if m["role"] == "user")
        if sample.audios or sample.images or len(sample.videos) > 1:
            raise BadLine("the reasoner reads one <video> clip or text cues per line (no <audio> or <image>)")
        if not sample.videos:
            return cues_from_text(user)
        key = sha256(sample.videos[0])
        if key not in self.cache:
            try:
                result = self.perceive(str(sample.videos[0]))
            except (ValueError, OSError) as exc:  # MediaError is a ValueError: silent, no speech, unreadable
                raise BadLine(f"perception of {sample.videos[0].name} failed: {exc}") from exc
            self.cache[key] = json_format.MessageToDict(result)
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            self.cache_path.write_text(json.dumps(self.cache, ensure_ascii=False), encoding="utf-8")
        return json_format.ParseDict(self.cache[key], perception_pb2.PerceptionResult()), context_of(user)

    def layout(self, sample: Sample) -> list[tuple[str, bool]]:
        """The sample as (text, trained) pieces in the backend's layout."""
        parts = ecot_parts(sample.messages[-1]["content"])
        perception, context = self.perception(sample)
        language = reply_language(perception, list(LANGUAGE_NAMES))
        pieces = [(turn_prompt(self.formatter, perception, context, language, tuned=True), False),
                  (f" {reading_line(parts[EMOTION])}\n", True)]
        for part, label, opener in LINES:
            opener = opener if self.openers else ""
            text = plain_line(parts[part], part, language if part == RESPONSE else "en")
            if opener:
                if not text.lower().startswith(opener.lower()):
                    raise BadLine(f"the {part} does not begin with {opener!r}, which the backend writes itself "
                                  "(train with prompt.openers: false)")
                text = text[len(opener):]
            else:
                text = f" {text}"
            pieces += [(line_start(label, opener).removeprefix("\n"), False), (text + "\n", True)]
        return pieces

    def encode(self, sample: Sample) -> dict:
        """input_ids, attention_mask and labels (on the trained pieces only) for one sample."""
        pieces = self.layout(sample)
        text = "".join(piece for piece, _ in pieces)
        spans, cursor = [], 0
        for piece, trained in pieces:
            if trained:
                spans.append((cursor, cursor + len(piece)))
            cursor += len(piece)
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = encoded["input_ids"]
        trained = [any(start <= begin < end for start, end in spans) for begin, _ in encoded["offset_mapping"]]
        return {"input_ids": ids, "attention_mask": [1] * len(ids),
                "labels": [token if keep else IGNORE for token, keep in zip(ids, trained, strict=True)]}

    def check(self, sample: Sample) -> str | None:
        """The trainer's own per-line check: cues can be had, the layout holds, the sample fits max_length."""
        try:
            length = len(self.encode(sample)["input_ids"])
        except BadLine as exc:
            return str(exc)
        if length > self.max_length:
            return f"{length} tokens, over the cap of {self.max_length} (data.max_length)"
        return None

