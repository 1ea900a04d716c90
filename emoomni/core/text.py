"""Incremental sentence splitting, so the talker can start on the first complete reply sentence."""

from __future__ import annotations

import functools
import re

# A sentence ends at . ! ? (or their CJK forms, or an ellipsis) followed by whitespace or a closing quote.
_NOT_AFTER = r"(?<!\b[A-Z])(?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bDr)(?<!\bSt)"  # initials and titles
_END = re.compile(_NOT_AFTER + r"""[.!?…]+["')\]]*(?=\s)|[。！？]+["'”’)]*""")


class SentenceSplitter:
    """Feed text deltas; get back the sentences completed so far. `flush` returns the remainder."""

    def __init__(self, min_chars: int = 8):
        self._buf = ""
        self.min_chars = min_chars

    def feed(self, delta: str) -> list[str]:
        self._buf += delta
        out: list[str] = []
        while True:
            match = next((m for m in _END.finditer(self._buf) if m.end() >= self.min_chars), None)
            if match is None:
                return out
            sentence, self._buf = self._buf[: match.end()].strip(), self._buf[match.end():]
            if sentence:
                out.append(sentence)

    def flush(self) -> str:
        rest, self._buf = self._buf.strip(), ""
        return rest


_HAN_CHAR = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def speech_chunks(text: str, max_chars: int = 320) -> list[str]:
    """Split text to speak into sentences, and sentences longer than `max_chars` at the last comma or space
    before the limit: engines then stream long text piece by piece and never see an oversized input."""
    splitter = SentenceSplitter(min_chars=1)
    sentences = splitter.feed(text.strip() + " ")
    rest = splitter.flush()
    out: list[str] = []
    for sentence in sentences + ([rest] if rest else []):
        while len(sentence) > max_chars:
            head = sentence[:max_chars]
            cut = max(head.rfind(", "), head.rfind("; "))
            cut = cut + 1 if cut > max_chars // 3 else head.rfind(" ")
            cut = cut if cut > 0 else max_chars
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            out.append(sentence)
    return out


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_NON_LATIN_LANGUAGES = {"zh", "ja", "ko", "ru", "uk", "el", "ar", "fa", "he", "hi", "th"}


def spoken_language(text: str, heard_language: str) -> str:
    """The language to speak `text` in. The reply is usually in the language that was heard, but an
    English-only reasoning model answers a Mandarin speaker in English: Latin-script text after non-Latin
    speech is spoken as English, and CJK text as the CJK language heard (Mandarin when none was)."""
    heard = (heard_language or "en").split("-")[0].lower()
    if _CJK.search(text):
        return heard if heard in ("zh", "ja", "ko") else "zh"
    if heard in _NON_LATIN_LANGUAGES:
        return "en"
    return heard


@functools.cache
def _traditional_to_simplified():
    from opencc import OpenCC  # opencc-python-reimplemented (Apache-2.0): OpenCC's tables, in pure Python

    return OpenCC("t2s")


def simplified(text: str) -> str:
    """Chinese text in Simplified characters (Whisper often writes Traditional ones for a Mandarin speaker);
    other text is returned as it is."""
    return _traditional_to_simplified().convert(text) if _HAN_CHAR.search(text) else text

