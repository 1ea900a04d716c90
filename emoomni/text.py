"""Incremental sentence splitting, so the talker can start on the first complete reply sentence."""

from __future__ import annotations

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
