"""Explicit acoustic words: when an instruction says outright how to sound ("slowly", "a low voice",
"louder", "in a whisper", "慢慢地", "大声"), the controls follow those words, whatever the embedding head
guessed from the rest; and "neutral" / "normal" / "正常" means neutral on every scale the instruction does not
name. The head reads manner and situation by meaning; these words are too important to leave to a guess
(a frozen English sentence embedding also reads Mandarin poorly).

Each rule is a regular expression for one direction of one scale. A match preceded closely by a negation
("not too fast", "no rush", "不要太快") is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# How far an explicit word moves a scale when the head did not already move it further the same way.
TARGET = {("rate", "down"): 0.8, ("rate", "up"): 1.25, ("pitch", "down"): 0.88, ("pitch", "up"): 1.15,
          ("energy", "down"): 0.65, ("energy", "up"): 1.35}

_EN = {
    ("rate", "down"): r"slow(?:ly|er|ed)?|unhurried|leisurely|snail|drawn[- ]out|drag(?:ged)? out|deliberate(?:ly)?"
                      r"|one word at a time|take (?:it|your|my) time|no rush|lower (?:the )?(?:pace|tempo|speed)",
    ("rate", "up"): r"fast(?:er)?|quick(?:ly|er)|quick(?= pace| tempo| and|,)|rapid(?:ly)?|brisk(?:ly)?"
                    r"|hurr(?:y|ied|iedly)|rush(?:ed)?|speed(?:y| it up| up)|high speed|top speed"
                    r"|(?:faster|quicker|higher) (?:tempo|pace)|pick up the pace",
    ("pitch", "down"): r"deep(?:er)?(?= voice| tone| register| pitch| sound|,)|bass|baritone"
                       r"|low(?:er)?[- ]pitch(?:ed)?|low(?:er)? (?:voice|register|tone|note)s?"
                       r"|(?:lower|drop|bring down)(?: the| your| my)? pitch|pitch(?::| is| it)? (?:low|down)"
                       r"|down low|low in pitch|rumbl\w*",
    ("pitch", "up"): r"high(?:er)?[- ](?:pitch(?:ed)?|toned?)|high(?:er)? (?:voice|register|tone|note)s?|squeak\w*"
                     r"|shrill|falsetto|piping|(?:raise|lift)(?: the| your| my)? pitch|pitch(?::| it| is)? "
                     r"(?:up|high(?:er)?)|soaring|high in pitch|higher than usual",
    ("energy", "down"): r"quiet(?:ly|er)?|soft(?:ly|er)?|hush(?:ed)?|whisper\w*|murmur\w*|barely audible|faint(?:ly)?"
                        r"|volume (?:(?!and\b)\w+ ){0,2}?(?:down|low|gentle|soft)|keep (?:your|my|the) voice down"
                        r"|(?:lower|turn down)(?: the)? volume"
                        r"|under (?:my|your) breath|gentle volume",
    ("energy", "up"): r"loud(?:ly|er)?|shout\w*|yell\w*|boom\w*|belt\w*|bellow\w*|at the top of (?:my|your) lungs"
                      r"|volume (?:(?!and\b)\w+ ){0,2}?up|more volume|amplif\w*|full volume|(?:raise|turn up)"
                      r"(?: the| your| my)? (?:volume|voice)|project (?:my|your|the) voice",
}
_ZH = {
    ("rate", "down"): r"慢|一个字一个字",
    ("rate", "up"): r"快|急促",
    ("pitch", "down"): r"低沉|低音|低的?音调|音调(?:放|降)?低|降低音调|粗",
    ("pitch", "up"): r"高音|尖|高的?音调|音调(?:提|升)?高|提高音调|细声",
    ("energy", "down"): r"小声|轻声|轻轻|悄悄|耳语|低声|音量(?:放|调)?小",
    ("energy", "up"): r"大声|喊|音量(?:放|调)?大|声音大|响亮",
}
_NEUTRAL_EN = r"neutral(?:ly)?|ordinary|normal(?:ly)?|plain(?:ly)?|flat(?:ly)?|as usual|no emotion|without emotion" \
              r"|nothing special|usual (?:voice|pace|way)|natural(?:ly)?|even(?:ly)? tone"
_NEUTRAL_ZH = r"正常|自然|平常|不带感情|中性|平淡"
# Manner words that rule out a louder or faster delivery without naming a level: "calmly" is never shouted.
_CALM_EN = r"calm(?:ly|ing)?|gentl[ey]|sooth(?:e|ing|ingly)|tender(?:ly)?|steady|steadily|reassuring(?:ly)?"
_CALM_ZH = r"平静|冷静|温柔|轻柔|安抚|平稳|安慰"
# Manner words of sadness: a sad delivery is lower, slower and quieter, at least by IMPLIED_SAD on each scale the
# instruction does not name (the head alone gave "Say it sadly." pitch 0.975 and energy 0.90, which Piper renders
# below what a listener, or the talker check, can hear).
_SAD_EN = r"sad(?:ly|ness)?|sorrowful(?:ly)?|mournful(?:ly)?|griev(?:e|ing)|gloom(?:y|ily)|melanchol\w*" \
          r"|heavy[- ]hearted"
_SAD_ZH = r"难过|伤心|悲伤|哀伤|沉痛"
IMPLIED_SAD = {"pitch": 0.94, "rate": 0.88, "energy": 0.78}
_NEGATION_EN = re.compile(r"\b(?:not|no|don't|do not|never|without|nor|less)\s+(?:\w+\s+){0,1}$", re.I)
_NEGATION_ZH = re.compile(r"(?:不要|别|不|勿)(?:太|很|那么)?$")

_RULES = [(key, re.compile(rf"\b(?:{pattern})\b", re.I), _NEGATION_EN) for key, pattern in _EN.items()] + \
         [(key, re.compile(pattern), _NEGATION_ZH) for key, pattern in _ZH.items()]
_NEUTRAL = [(re.compile(rf"\b(?:{_NEUTRAL_EN})\b", re.I), _NEGATION_EN), (re.compile(_NEUTRAL_ZH), _NEGATION_ZH)]
_CALM = [(re.compile(rf"\b(?:{_CALM_EN})\b", re.I), _NEGATION_EN), (re.compile(_CALM_ZH), _NEGATION_ZH)]
_SAD = [(re.compile(rf"\b(?:{_SAD_EN})\b", re.I), _NEGATION_EN), (re.compile(_SAD_ZH), _NEGATION_ZH)]


@dataclass
class ExplicitWords:
    """Directions named outright ({"rate": "down"}), whether a whisper was asked for, whether the
    instruction asks for a neutral delivery, and whether it asks for a calm one (no louder, no faster)."""

    directions: dict[str, str] = field(default_factory=dict)
    whisper: bool = False
    neutral: bool = False
    calm: bool = False
    sad: bool = False


def _found(pattern: re.Pattern, negation: re.Pattern, text: str) -> bool:
    return any(not negation.search(text[: m.start()]) for m in pattern.finditer(text))


def read_explicit(text: str) -> ExplicitWords:
    found = ExplicitWords()
    votes: dict[str, set[str]] = {}
    for (scale, direction), pattern, negation in _RULES:
        if _found(pattern, negation, text):
            votes.setdefault(scale, set()).add(direction)
    # A scale named both ways ("lower the volume, then louder") is left to the head.
    found.directions = {scale: next(iter(ds)) for scale, ds in votes.items() if len(ds) == 1}
    found.whisper = bool(re.search(r"\bwhisper\w*|耳语|悄悄", text, re.I))
    found.neutral = any(_found(pattern, negation, text) for pattern, negation in _NEUTRAL)
    found.calm = any(_found(pattern, negation, text) for pattern, negation in _CALM)
    found.sad = any(_found(pattern, negation, text) for pattern, negation in _SAD)
    return found


def apply_explicit(scales: dict[str, float], words: ExplicitWords) -> dict[str, float]:
    """The head's scales with the explicit directions enforced; with a neutral request, every scale the
    instruction does not name returns to 1.0; with a calm one, loudness and pace it does not name stay at or
    under 1.0; with a sad one, every scale it does not name is at least IMPLIED_SAD lower."""
    out = dict(scales)
    for scale, value in scales.items():
        direction = words.directions.get(scale)
        if direction == "down":
            out[scale] = min(value, TARGET[(scale, "down")])
        elif direction == "up":
            out[scale] = max(value, TARGET[(scale, "up")])
        elif words.neutral:
            out[scale] = 1.0
        elif words.sad and not words.neutral:
            out[scale] = min(value, IMPLIED_SAD[scale])
        elif words.calm and scale in ("energy", "rate"):
            out[scale] = min(value, 1.0)
    return out
