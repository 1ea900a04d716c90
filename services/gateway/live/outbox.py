"""What the client receives, in order: session events, and each reply's events, held while the reply is
preemptive (its turn may still go on) and released when it is confirmed."""

from __future__ import annotations

import asyncio

from emoomni.services.gateway.live.inputs import SessionError
from emoomni.services.gateway.live.reply import Reply
from emoomni.v1 import agent_pb2

MAX_BAD_INPUTS = 50  # refused messages before the session itself is ended


class Outbox:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[agent_pb2.SessionEvent | SessionError | None] = asyncio.Queue()
        self.bad_inputs = 0

    def put(self, event: agent_pb2.SessionEvent) -> None:
        self.queue.put_nowait(event)

    def emit(self, reply: Reply, event: agent_pb2.SessionEvent) -> None:
        """A reply's event: sent, or kept while the reply's turn is not decided."""
        (self.queue.put_nowait if reply.decided else reply.held.append)(event)

    def release(self, reply: Reply) -> None:
        """The reply's turn was decided: announce it and send what it held."""
        self.announce(reply)
        held, reply.held = reply.held, []
        for event in held:
            self.queue.put_nowait(event)

    def announce(self, reply: Reply) -> None:
        user = reply.user
        self.put(agent_pb2.SessionEvent(turn_started=agent_pb2.TurnStarted(
            turn_id=reply.turn_id, speech_start_ms=user.speech_start_ms, speech_end_ms=user.speech_end_ms,
            history_turns=reply.history_turns, trigger=user.trigger, preemptive=reply.preemptive)))

    def refuse(self, code: str, message: str) -> None:
        """A bad message: say why (the session goes on); too many end the session."""
        self.bad_inputs += 1
        self.put(agent_pb2.SessionEvent(error=agent_pb2.TurnError(code=code, message=message, stage="session")))
        if self.bad_inputs > MAX_BAD_INPUTS:
            self.end(SessionError("INVALID_ARGUMENT", f"over {MAX_BAD_INPUTS} invalid messages; the session is "
                                  "closed"))

    def end(self, error: SessionError | None = None) -> None:
        """Close the stream, with a status when `error` is given."""
        if error is not None:
            self.queue.put_nowait(error)
        self.queue.put_nowait(None)
