"""A session's conversation memory: opened new (its id claimed in the store, a resume token made for its owner) or
resumed (only by whoever shows that session's resume token), and each answered or interrupted turn written to it
and saved, so that another gateway replica can take the session over."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets

from emoomni.core.config import LiveConfig
from emoomni.services.gateway.live.inputs import SessionError
from emoomni.services.gateway.live.reply import Reply
from emoomni.services.gateway.memory import RememberedTurn, SessionMemory, SessionStore
from emoomni.v1 import agent_pb2

log = logging.getLogger(__name__)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Conversation:
    def __init__(self, store: SessionStore, memory: SessionMemory, resume_token: str):
        self.store, self.memory, self.resume_token = store, memory, resume_token

    @classmethod
    async def open(cls, store: SessionStore, options: agent_pb2.SessionConfig, session_id: str) -> Conversation:
        if options.resume_id:
            return cls(store, await _resumed(store, options), options.resume_token)
        try:
            used = await store.load(session_id) is not None
        except Exception:  # best effort, like the lock: with the store out, a new session still opens
            log.warning("session %s: the store is unreachable; the id's earlier use is not checked", session_id)
            used = False
        if used:
            raise SessionError("ALREADY_EXISTS", f"session id {session_id} was used before; resume it with resume_id "
                               "and its resume_token, or choose a new id")
        token = secrets.token_urlsafe(24)
        memory = SessionMemory(session_id=session_id, persona=options.persona, resume_token_sha256=token_hash(token))
        await store.save(memory)  # at once, so that every replica knows the id as used
        return cls(store, memory, token)

    def context(self, live: LiveConfig) -> tuple[str, int]:
        """The remembered conversation as reasoning sees it, and how many turns it holds."""
        return self.memory.context(live.history_turns, live.history_chars)

    def last_user_text(self) -> str:
        return self.memory.turns[-1].user if self.memory.turns else ""

    def knows(self, turn_id: str) -> bool:
        return any(t.turn_id == turn_id for t in self.memory.turns)

    def remember_answered(self, reply: Reply) -> None:
        """An answered turn, once its end is decided: a preemptive turn the user went on over never happened."""
        if reply.decided and reply.remembered is None:
            self.remember(reply, reply.text.strip(), interrupted=False)

    def remember(self, reply: Reply, reply_heard: str, interrupted: bool) -> None:
        if not reply.user.text:
            return  # nothing was understood (perception failed or the turn was cut before it)
        entry = RememberedTurn(turn_id=reply.turn_id, user=reply.user.text, feeling=reply.feeling,
                               reply_heard=reply_heard, interrupted=interrupted)
        if reply.remembered is not None and reply.remembered in self.memory.turns:
            self.memory.turns[self.memory.turns.index(reply.remembered)] = entry
        else:
            self.memory.add(entry)
        reply.remembered = entry
        asyncio.get_running_loop().create_task(self.store.save(self.memory.model_copy(deep=True)))


async def _resumed(store: SessionStore, options: agent_pb2.SessionConfig) -> SessionMemory:
    try:
        memory = await store.load(options.resume_id)
    except Exception as exc:  # a bus outage or timeout: the client retries (UNAVAILABLE), not a bug
        raise SessionError("UNAVAILABLE", f"the session store is unreachable ({type(exc).__name__}); try "
                           "again") from exc
    # The same answer whether the session does not exist or the token is wrong: an id reveals nothing.
    if memory is None or not hmac.compare_digest(memory.resume_token_sha256.encode(),
                                                 token_hash(options.resume_token).encode()):
        raise SessionError("NOT_FOUND", f"no remembered session {options.resume_id} with that resume_token "
                           "(SessionStarted.resume_token of the session's first connection)")
    memory.persona = options.persona or memory.persona
    return memory
