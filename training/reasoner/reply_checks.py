"""Automatic checks of a reply, the same for the corpus (its test) and for a brain's replies (benchmarks/
brain_compare.py): the user's language, no insult or mockery, no label thrown at the user, not a retelling of the
user's words, length. They find the clear failures; whether a reply is one a person would be glad to hear is
judged by reading it (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import re

from emoomni.services.reasoning.prompt import INSULTS_EN, INSULTS_ZH

_HAN = re.compile(r"[\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
# A feeling named as a verdict on the user ("You are furious!", "你很生气").
_LABEL_EN = re.compile(r"\byou(?:'re| are| seem| sound| look)(?: so| really| very| clearly| absolutely)? "
                       r"(?:furious|angry|mad|upset|sad|depressed|anxious|hysterical|crazy|jealous|bitter)\b", re.I)
_LABEL_ZH = re.compile(r"你(?:很|真|太|好|非常|特别)?(?:生气|愤怒|暴躁|抑郁|焦虑|崩溃|嫉妒)(?:了|啊|呢|吧)?[。！!]")
# The share of the reply's word trigrams (English) or character 4-grams (Mandarin) found in the user's words over
# which a reply counts as a retelling.
OVERLAP_LIMIT = 0.35


def units(text: str) -> list[str]:
    """Words of English text, characters of Chinese text."""
    if _HAN.search(text):
        return [c for c in text if _HAN.match(c) or c.isalnum()]
    return re.findall(r"[a-z0-9']+", text.lower())


def language_ok(reply: str, language: str) -> bool:
    """A Mandarin reply is Chinese characters with no Latin letters; an English one has no Chinese."""
    if language == "zh":
        return bool(_HAN.search(reply)) and not _LATIN.search(reply)
    return bool(_LATIN.search(reply)) and not _HAN.search(reply)


def insults(reply: str) -> list[str]:
    """The insult or mockery words in a reply."""
    low = reply.lower()
    found = [w for w in INSULTS_EN if re.search(rf"\b{re.escape(w)}\b", low)]
    return found + [w for w in INSULTS_ZH if w in reply]


def labels_user(reply: str) -> bool:
    """Whether the reply names the user's feeling as a verdict."""
    return bool(_LABEL_EN.search(reply) or _LABEL_ZH.search(reply))


def overlap(reply: str, said: str) -> float:
    """The share of the reply's trigrams (Mandarin: 4-grams of characters) that are in the user's words."""
    n = 4 if _HAN.search(reply) else 3
    mine, theirs = units(reply), units(said)
    grams = [tuple(mine[i:i + n]) for i in range(len(mine) - n + 1)]
    if not grams:
        return 0.0
    heard = {tuple(theirs[i:i + n]) for i in range(len(theirs) - n + 1)}
    return sum(g in heard for g in grams) / len(grams)


def check(reply: str, said: str, language: str) -> dict:
    """Every automatic check of one reply."""
    return {"language_ok": language_ok(reply, language), "insults": insults(reply), "labels_user": labels_user(reply),
            "overlap": round(overlap(reply, said), 3), "retells": overlap(reply, said) > OVERLAP_LIMIT,
            "length": len(units(reply))}
