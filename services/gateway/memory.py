"""What a live session remembers, and where it is kept so that another gateway replica can resume it."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from pydantic import BaseModel, Field

from emoomni.core.bus import Bus

log = logging.getLogger(__name__)


CONVERSATION_HEADER = "The conversation so far (oldest first):"


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
    resume_token_sha256: str = ""
    """The hash of the secret handed to the session's owner (SessionStarted.resume_token); resuming needs it."""
    turns: list[RememberedTurn] = Field(default_factory=list)
    keep_turns: int = 50
    """Turns stored at most (reasoning sees fewer, see `context`)."""

    def add(self, turn: RememberedTurn) -> None:
        self.turns.append(turn)
        del self.turns[: max(0, len(self.turns) - self.keep_turns)]

    window_from: str = ""
    """The turn id where the turns reasoning sees begin (see `recent`)."""

    def recent(self, max_turns: int, max_chars: int) -> list[RememberedTurn]:
        """The turns reasoning sees, oldest first, within both bounds.

        The window's start stays put while the turns after it fit, and when they no longer do it jumps ahead to
        keep about half the bounds. Each turn's prompt then begins with the previous turn's history, which
        llama.cpp has cached; a window sliding one turn at a time would change the prompt's start every turn."""
        if not max_turns or max_chars <= 0:
            return []
        ids = [t.turn_id for t in self.turns]
        window = self.turns[ids.index(self.window_from):] if self.window_from in ids else self.turns
        if len(window) <= max_turns and _size(window) <= max_chars:
            return list(window)
        window = (_newest_fitting(self.turns, max(1, max_turns // 2), max_chars // 2)
                  or _newest_fitting(self.turns, max_turns, max_chars))
        self.window_from = window[0].turn_id if window else ""
        return window

    def context(self, max_turns: int, max_chars: int) -> tuple[str, int]:
        """The text reasoning gets as the turn's context, and how many earlier turns it holds."""
        turns = self.recent(max_turns, max_chars)
        parts = []
        if self.persona:
            parts.append(f"About you and the scene: {self.persona}")
        if turns:
            parts.append(CONVERSATION_HEADER + "\n" + "\n".join(render_turn(t) for t in turns))
        return "\n".join(parts), len(turns)


def _size(turns: list[RememberedTurn]) -> int:
    return sum(len(render_turn(t)) + 1 for t in turns)


def _newest_fitting(turns: list[RememberedTurn], max_turns: int, max_chars: int) -> list[RememberedTurn]:
    picked: list[RememberedTurn] = []
    for turn in reversed(turns[-max_turns:]):
        if _size(picked) + len(render_turn(turn)) + 1 > max_chars:
            break
        picked.append(turn)
    return picked[::-1]


def render_turn(turn: RememberedTurn) -> str:
    """One earlier turn as reasoning reads it (the E-CoT corpus renders its histories with this too)."""
    feeling = f" (seemed: {turn.feeling})" if turn.feeling else ""
    reply = turn.reply_heard or "(nothing yet)"
    cut = " [the user interrupted you here]" if turn.interrupted else ""
    return f"- User: {turn.user}{feeling}\n  You: {reply}{cut}"


class _Bucket:
    """A NATS key-value bucket opened on first use (and again after a failure reset `_kv`)."""

    def __init__(self, bus: Bus, bucket: str, ttl_s: float):
        self.bus, self.bucket, self.ttl_s = bus, bucket, ttl_s
        self._kv = None

    async def _store(self):
        if self._kv is None:
            self._kv = await self.bus.key_value(self.bucket, self.ttl_s)
        return self._kv


class SessionStore(_Bucket):
    """Session memories in a NATS key-value bucket (JetStream), one key per session."""

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


class SessionLocks(_Bucket):
    """Which gateway replica holds each live session, in a NATS key-value bucket whose entries expire after
    `ttl_s`: the holder renews its entry while the session lives, so a replica that dies frees its sessions
    within `ttl_s` and another replica may then resume them."""

    def __init__(self, bus: Bus, bucket: str, ttl_s: float, holder: str):
        super().__init__(bus, bucket, ttl_s)
        self.holder = holder

    async def claim(self, session_id: str) -> asyncio.Task | None:
        """Hold the session until the returned task is cancelled; None when another replica holds it. Best
        effort like the memory: with the bus out, the session goes on unlocked (and a warning is logged)."""
        try:
            kv = await self._store()
            revision = await kv.create(session_id, self.holder.encode())
        except KeyWrongLastSequenceError:
            return None
        except Exception:
            self._kv = None
            log.warning("session %s: not locked (the lock store is unreachable)", session_id, exc_info=True)
            return asyncio.create_task(asyncio.sleep(float("inf")))
        return asyncio.create_task(self._hold(kv, session_id, revision))

    async def _hold(self, kv, session_id: str, revision: int) -> None:
        held = True
        try:
            while held:
                await asyncio.sleep(self.ttl_s / 3)
                try:
                    revision = await kv.update(session_id, self.holder.encode(), last=revision)
                except KeyWrongLastSequenceError:
                    # The entry lapsed (a long bus outage) and another replica claimed the session: it is theirs
                    # now, so stop renewing and leave their entry alone.
                    held = False
                    log.warning("session %s: the lock lapsed and another gateway replica holds it now", session_id)
                except Exception:  # a bus outage: renewed at the next beat, or it lapses
                    log.debug("session %s: lock not renewed", session_id, exc_info=True)
            await asyncio.sleep(float("inf"))
        finally:
            if held:
                with contextlib.suppress(Exception):
                    await asyncio.shield(kv.delete(session_id))
