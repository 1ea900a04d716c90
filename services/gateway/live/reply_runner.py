"""One reply's work on the stack: the user's turn as a clip (or text) through the gateway's chain, the quick
acknowledgement first, reply audio paced to the client's playback, the figures at the end.

What it sends goes through `emit`, which holds a preemptive reply's events until its turn is decided; it waits on
`Changes` (a playback report, the turn decided, the user stopping), never on a timer poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from emoomni.core.config import LiveConfig
from emoomni.core.media import MediaError
from emoomni.core.text import SentenceSplitter
from emoomni.services.gateway.acks import AckBank, tone_of
from emoomni.services.gateway.core import GatewayCore, TurnFailed, written_language
from emoomni.services.gateway.live.floor import Floor
from emoomni.services.gateway.live.inputs import FrameBuffer
from emoomni.services.gateway.live.reply import Reply
from emoomni.services.gateway.live.signal import Changes
from emoomni.services.gateway.turn_clip import turn_clip
from emoomni.v1 import agent_pb2, media_pb2, reasoning_pb2

Emit = Callable[[Reply, agent_pb2.SessionEvent], None]


@dataclass
class ReplyRunner:
    """Runs replies for one session; keeps what one reply tells the next (the last ack, the last reply's speed)."""

    session_id: str
    live: LiveConfig
    gateway: GatewayCore
    options: agent_pb2.SessionConfig
    frames: FrameBuffer
    acks: AckBank
    floor: Floor
    changes: Changes
    emit: Emit
    remember: Callable[[Reply], None]  # an answered turn into the memory (before the client sees `done`)
    last_user_text: Callable[[], str]
    last_ack: str = ""
    last_first_audio_ms: float = 0.0

    def prepare_acks(self) -> None:
        """Have the acknowledgements of this session's talker synthesized before its first turn needs one."""
        if self.live.ack and not self.options.no_ack:
            for language in [self.options.language] if self.options.language else ["en", "zh"]:
                self.acks.prepare(self.options.talker, language)

    async def run(self, reply: Reply, context: str) -> None:
        with self.gateway.tracer.start_as_current_span("live.turn") as span:
            span.set_attribute("emoomni.session_id", self.session_id)
            span.set_attribute("emoomni.turn_id", reply.turn_id)
            try:
                await self._events(reply, context)
            except asyncio.CancelledError:
                span.set_attribute("emoomni.interrupted", reply.cancelled or "cancelled")
                raise
            if not reply.cancelled:
                figures = latency_of(reply)
                self.emit(reply, agent_pb2.SessionEvent(latency=figures))
                for name in ("end_of_turn_ms", "ack_ms", "first_audio_ms", "voice_to_voice_ms"):
                    span.set_attribute(f"emoomni.live.{name}", getattr(figures, name))

    async def _events(self, reply: Reply, context: str) -> None:
        ack = None
        if reply.user.spoken:
            ack = asyncio.create_task(self._ack(reply))
            events = await self._spoken_turn(reply, context)
        else:
            events = self.gateway.run_text_turn(reply.turn_id, reply.user.text, self.options.language, context,
                                                self.options.talker)
            self.emit(reply, agent_pb2.SessionEvent(transcript=agent_pb2.UserTranscript(turn_id=reply.turn_id,
                                                                                        text=reply.user.text)))
        try:
            async for event in events:
                await self._on_event(reply, event, ack)
        except (TurnFailed, MediaError) as exc:
            # The turn is lost, the session goes on. TurnFailed was already sent as the turn's error event.
            if not isinstance(exc, TurnFailed):
                self.emit(reply, agent_pb2.SessionEvent(turn=agent_pb2.TurnEvent(
                    turn_id=reply.turn_id, error=agent_pb2.TurnError(code="INVALID_ARGUMENT", message=str(exc),
                                                                     stage="gateway"))))
            return
        finally:
            if ack is not None and not ack.done():
                ack.cancel()
            with contextlib.suppress(Exception):
                await events.aclose()
        first = reply.playout.first_audio_wall
        self.last_first_audio_ms = (first - reply.user.decided_wall) * 1000 if first else 0.0
        self.remember(reply)

    async def _spoken_turn(self, reply: Reply, context: str):
        user = reply.user
        frames = self.frames.between(user.audio_start_ms / 1000 - 0.5, user.speech_end_ms / 1000 + 0.2,
                                     origin_s=user.audio_start_ms / 1000)
        clip = await asyncio.to_thread(turn_clip, user.audio, frames, self.live.frames_per_turn)
        return self.gateway.run_turn(agent_pb2.ConverseRequest(
            turn_id=reply.turn_id, context=context, talker=self.options.talker, face_optional=True,
            media=media_pb2.MediaInput(data=clip, filename=f"{reply.turn_id}.mkv", mime_type="video/x-matroska")))

    async def _on_event(self, reply: Reply, event: agent_pb2.TurnEvent, ack: asyncio.Task | None) -> None:
        which = event.WhichOneof("event")
        if which == "perception":
            transcript = event.perception.transcript
            reply.user.text = transcript.text
            self.emit(reply, agent_pb2.SessionEvent(transcript=agent_pb2.UserTranscript(
                turn_id=reply.turn_id, text=transcript.text, language=transcript.language)))
        elif which == "ecot_delta" and event.ecot_delta.part == reasoning_pb2.ECOT_PART_RESPONSE:
            reply.text += event.ecot_delta.text
        elif which == "audio":
            if ack is not None:
                await ack  # the acknowledgement plays first
            await self._pace(reply)
            self._sent(reply, event.audio, sentence=event.audio.sentence_index)
        elif which == "done":
            reply.done = event.done
            reply.feeling = feeling_of(event.done.ecot.emotion_analysis)
            self.remember(reply)  # before the client sees `done`: its next turn must see this one
        self.emit(reply, agent_pb2.SessionEvent(turn=event))

    async def _ack(self, reply: Reply) -> None:
        """Send the quick acknowledgement if one fits (see LiveConfig for when it is skipped)."""
        await self.changes.wait_until(lambda: 0 if reply.decided or reply.cancelled else None)
        user = reply.user
        if (not self.live.ack or self.options.no_ack
                or user.speech_end_ms - user.speech_start_ms < self.live.ack_min_speech_ms
                or 0 < self.last_first_audio_ms < self.live.ack_skip_if_reply_within_ms
                or time.monotonic() - user.decided_wall > 1.0):  # it waited behind another turn: too late
            return
        tone = await asyncio.to_thread(tone_of, user.audio)
        language = self.options.language or written_language(self.last_user_text())
        choices = [a for a in self.acks.get(self.options.talker, language, tone) if a.text != self.last_ack]
        if not choices or reply.cancelled:
            return
        ack = choices[self.floor.counts.turns % len(choices)]
        self.last_ack = ack.text
        self._sent(reply, ack.audio, sentence=None)
        self.emit(reply, agent_pb2.SessionEvent(ack=agent_pb2.QuickAck(turn_id=reply.turn_id, text=ack.text,
                                                                       tone=ack.tone, audio=ack.audio)))

    async def _pace(self, reply: Reply) -> None:
        """Hold reply audio until the client is within `audio_lead_ms` of needing it; start no reply over the user
        (they took the floor while the agent was still thinking)."""
        await self.changes.wait_until(
            lambda: reply.send_wait_s(time.monotonic(), self.live.audio_lead_ms, self.floor.user_speaking))

    def _sent(self, reply: Reply, chunk: media_pb2.AudioChunk, sentence: int | None) -> None:
        ms = len(chunk.pcm16) / 2 / max(1, chunk.sample_rate) * 1000
        reply.playout.sent(ms, time.monotonic(), sentence)


def latency_of(reply: Reply, barge_in_stop_ms: float = 0.0, barge_in_decided_ms: float = 0.0
               ) -> agent_pb2.TurnLatency:
    def since(mark: float, origin: float) -> float:
        return max(0.0, (mark - origin) * 1000) if mark and origin else 0.0

    user, playout = reply.user, reply.playout
    end_of_turn = max(0.0, user.decided_ms - user.speech_end_ms) if user.spoken else 0.0
    return agent_pb2.TurnLatency(
        turn_id=reply.turn_id, end_of_turn_ms=end_of_turn, ack_ms=since(playout.ack_wall, user.speech_end_wall),
        first_audio_ms=since(playout.first_audio_wall, user.decided_wall),
        voice_to_voice_ms=since(playout.first_audio_wall, user.speech_end_wall), barge_in_stop_ms=barge_in_stop_ms,
        barge_in_decided_ms=barge_in_decided_ms)


def barge_in_latency(reply: Reply, spoke: float | None, now: float) -> agent_pb2.TurnLatency:
    """The figures of an interrupted reply; with `spoke` (when the user's interrupting speech arrived), how long
    the decision took and how long reply audio went on being sent after the user began."""
    if spoke is None:
        return latency_of(reply)
    last = reply.playout.last_audio_wall
    return latency_of(reply, barge_in_stop_ms=max(0.0, (last - spoke) * 1000) if last else 0.0,
                      barge_in_decided_ms=max(0.0, (now - spoke) * 1000))


def feeling_of(analysis: str) -> str:
    """The main feeling of an emotion analysis's reading ("sad" of "sad and lonely"), as the memory keeps it (and the
    tuned brain's corpus renders earlier turns); the first sentence when there is none (the analysis opens with the
    measured cues, which the memory holds already)."""
    found = re.search(r"the user seems ([^,.\n]+)", analysis)
    if found:
        return found.group(1).split(" and ")[0].strip()[:40]
    sentences = SentenceSplitter().feed(analysis.strip() + "\n")
    return (sentences[0] if sentences else analysis).strip()[:200]
