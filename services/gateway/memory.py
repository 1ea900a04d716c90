"""What a live session remembers, and where it is kept so that another gateway replica can resume it."""

from __future__ import annotations

import logging

from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from pydantic import BaseModel, Field

from emoomni.core.bus import Bus

log = logging.getLogger(__name__)


class RememberedTurn(BaseModel):
    turn_id: str
    user: str
    """What the user said (the final transcript) or typed."""
    feeling: str = ""
    """How the user seemed: the first sentence of the turn's emotion analysis."""
    reply_heard: str = ""
    """What the agent said, as far as the user heard it (cut at an interruption)."""
    interrupted: bool = False


class SessionMemory(BaseModel):
    """A session's history, bounded by turns and characters when it is given to reasoning."""

    session_id: str
    persona: str = ""
    turns: list[RememberedTurn] = Field(default_factory=list)
    keep_turns: int = 50
    """Turns stored at most (reasoning sees fewer, see `context`)."""

    def add(self, turn: RememberedTurn) -> None:
        self.turns.append(turn)
        del self.turns[: max(0, len(self.turns) - self.keep_turns)]

    def recent(self, max_turns: int, max_chars: int) -> list[RememberedTurn]:
        """The newest turns that fit both bounds, oldest first."""
        picked, used = [], 0
        for turn in reversed(self.turns[-max_turns:] if max_turns else []):
            size = len(_render(turn))
            if used + size > max_chars:
                break
            picked.append(turn)
            used += size
        return picked[::-1]

    def context(self, max_turns: int, max_chars: int) -> tuple[str, int]:
        """The text reasoning gets as the turn's context, and how many earlier turns it holds."""
        turns = self.recent(max_turns, max_chars)
        parts = []
        if self.persona:
            parts.append(f"About you and the scene: {self.persona}")
        if turns:
            parts.append("The conversation so far (oldest first):\n" + "\n".join(_render(t) for t in turns))
        return "\n".join(parts), len(turns)


def _render(turn: RememberedTurn) -> str:
    feeling = f" (seemed: {turn.feeling})" if turn.feeling else ""
    reply = turn.reply_heard or "(nothing yet)"
    cut = " [the user interrupted you here]" if turn.interrupted else ""
    return f"- User: {turn.user}{feeling}\n  You: {reply}{cut}"


class SessionStore:
    """Session memories in a NATS key-value bucket (JetStream), one key per session."""

    def __init__(self, bus: Bus, bucket: str, ttl_s: int):
        self.bus, self.bucket, self.ttl_s = bus, bucket, ttl_s
        self._kv = None

    async def _store(self):
        if self._kv is None:
            js = self.bus.nc.jetstream()
            try:
                self._kv = await js.key_value(self.bucket)
            except BucketNotFoundError:
                self._kv = await js.create_key_value(KeyValueConfig(bucket=self.bucket, history=1,
                                                                    ttl=float(self.ttl_s)))
        return self._kv

    async def load(self, session_id: str) -> SessionMemory | None:
        try:
            entry = await (await self._store()).get(session_id)
        except KeyNotFoundError:
            return None
        return SessionMemory.model_validate_json(entry.value) if entry.value else None

    async def save(self, memory: SessionMemory) -> None:
        """Best effort: a bus outage must not end the conversation; the session keeps its memory in process."""
        try:
            await (await self._store()).put(memory.session_id, memory.model_dump_json().encode())
        except Exception:
            self._kv = None
            log.warning("session %s: memory not saved to the store", memory.session_id, exc_info=True)
