"""Provisional transcripts: ASR on the user's growing speech, shown while they speak (`live.provisional_every_ms`).

Best effort and never in the way: skipped while any reply of the session is being worked on, one at a time, and
a draft that comes back after its speech became a turn is shown for that turn until the final transcript.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np

from emoomni.core.bus import TRANSCRIBE
from emoomni.core.config import StackConfig
from emoomni.services.gateway.core import GatewayCore
from emoomni.services.gateway.listening import TurnDetector
from emoomni.services.gateway.live.floor import Floor
from emoomni.services.gateway.live.reply import SAMPLE_RATE, Reply
from emoomni.v1 import agent_pb2, bus_pb2

log = logging.getLogger(__name__)


class Drafts:
    def __init__(self, cfg: StackConfig, gateway: GatewayCore, listener: TurnDetector, floor: Floor,
                 put: Callable[[agent_pb2.SessionEvent], None], emit: Callable[[Reply, agent_pb2.SessionEvent], None]):
        self.cfg, self.gateway, self.listener, self.floor = cfg, gateway, listener, floor
        self.put, self.emit = put, emit
        self.task: asyncio.Task | None = None
        self._last: tuple[float, float] = (-1.0, 0.0)  # (open speech's start, how much of it was heard)

    def maybe_start(self) -> None:
        """After new audio: a draft if `provisional_every_ms` more speech was heard since the last and nothing of
        the session is being worked on."""
        every, start_ms = self.cfg.live.provisional_every_ms, self.listener.turn_start_ms
        if (not every or start_ms is None or not self.listener.in_speech or self.task is not None
                or self.floor.busy()):
            return
        heard_ms = self.listener.turn_audio_ms
        last_start, last_heard = self._last
        if heard_ms - (last_heard if last_start == start_ms else 0.0) < every:
            return
        self._last = (start_ms, heard_ms)
        audio = np.clip(self.listener.turn_audio() * 32768.0, -32768, 32767).astype(np.int16)
        self.task = asyncio.create_task(self._draft(start_ms, audio))

    async def _draft(self, start_ms: float, audio: np.ndarray) -> None:
        request = bus_pb2.TranscribeRequest(pcm16=audio.tobytes(), sample_rate=SAMPLE_RATE)
        try:
            reply = await self.gateway.bus.ask(TRANSCRIBE, request, bus_pb2.TranscribeReply,
                                               timeout_s=self.cfg.deadlines.perception_s)
        except Exception as exc:  # no perception replica, a timeout: the final transcript still comes
            log.debug("no provisional transcript: %s", exc)
            return
        finally:
            self.task = None
        text = reply.transcript.text.strip()
        if not text or self.floor.ending:
            return
        draft = agent_pb2.UserTranscript(text=text, language=reply.transcript.language, provisional=True,
                                         speech_start_ms=start_ms)
        if self.listener.turn_start_ms == start_ms:  # the speech goes on: no turn holds it yet
            self.put(agent_pb2.SessionEvent(transcript=draft))
            return
        owner = self.floor.owner_of(start_ms)
        if owner is not None and not owner.user.text and not owner.cancelled:
            draft.turn_id = owner.turn_id
            self.emit(owner, agent_pb2.SessionEvent(transcript=draft))
