"""The quick acknowledgement: a short backchannel the moment the user's turn ends, in a tone read from the
turn's voice, spoken by the session's talker ahead of time so that it plays at once.

The phrases are deliberately mild: at the end of a turn only the voice is known, not the words, so an
acknowledgement must fit whatever was said ("Mm." fits bad news and good news; "Congratulations" fits neither
until the words are in)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

import numpy as np

from emoomni.core.bus import Bus, Kind, deadline_in, subject
from emoomni.v1 import agent_pb2, bus_pb2, instruction_pb2, media_pb2

log = logging.getLogger(__name__)

# tone -> language -> phrases (rotated; the same phrase never twice in a row in a session)
PHRASES: dict[str, dict[str, list[str]]] = {
    "calm": {"en": ["Mm-hm.", "I see.", "Okay."], "zh": ["嗯。", "我明白。", "好的。"]},
    "warm": {"en": ["Mm...", "Oh, I hear you.", "Aw..."], "zh": ["嗯……", "我在听。", "唉……"]},
    "bright": {"en": ["Oh!", "Oh, wow.", "Ooh."], "zh": ["哦！", "哇。", "哦？"]},
}
_CONTROLS = {
    "calm": instruction_pb2.AcousticControls(emotion="neutral", intensity=0.3, rate_scale=0.95),
    "warm": instruction_pb2.AcousticControls(emotion="tender", intensity=0.5, rate_scale=0.85, pitch_scale=0.95,
                                             energy_scale=0.8, voice_quality="breathy"),
    "bright": instruction_pb2.AcousticControls(emotion="happy", intensity=0.6, rate_scale=1.05, pitch_scale=1.1,
                                               energy_scale=1.1),
}
_TEXT = {"calm": "Speak softly and evenly, a brief listening sound.",
         "warm": "Speak gently and quietly, with sympathy.",
         "bright": "Speak with light, interested surprise."}


def tone_of(audio: np.ndarray, sample_rate: int = 16000) -> str:
    """A tone for the acknowledgement from the voice alone: lively (loud and varied pitch) -> bright, quiet and
    flat -> warm, else calm. Cheap (a few ms for a few seconds of speech)."""
    import librosa

    x = audio.astype(np.float32) / 32768.0
    if x.size < sample_rate // 4:
        return "calm"
    rms = librosa.feature.rms(y=x, frame_length=1024, hop_length=512)[0]
    voiced = rms[rms > max(1e-4, 0.1 * rms.max())]
    loudness_db = 20 * np.log10(float(np.median(voiced)) + 1e-9) if voiced.size else -90.0
    f0 = librosa.yin(x, fmin=70, fmax=500, sr=sample_rate, frame_length=1024, hop_length=512)
    f0 = f0[(rms[: f0.size] > max(1e-4, 0.1 * rms.max()))]
    spread = float(np.std(np.log2(f0))) * 12 if f0.size > 4 else 0.0  # semitones
    if loudness_db > -22 and spread > 3.0:
        return "bright"
    if loudness_db < -32 or spread < 1.2:
        return "warm"
    return "calm"


@dataclass
class Ack:
    text: str
    tone: str
    audio: media_pb2.AudioChunk

    @property
    def duration_ms(self) -> float:
        return len(self.audio.pcm16) / 2 / max(1, self.audio.sample_rate) * 1000


class AckBank:
    """Acknowledgements spoken once per (talker, language) by the talker service over the bus, then reused."""

    def __init__(self, bus: Bus, timeout_s: float = 60.0):
        self.bus, self.timeout_s = bus, timeout_s
        self._ready: dict[tuple[str, str], dict[str, list[Ack]]] = {}
        self._making: dict[tuple[str, str], asyncio.Task] = {}

    def prepare(self, talker: str, language: str) -> None:
        """Start speaking the phrases in the background (a session calls this when it starts)."""
        key = (talker, language if language in ("en", "zh") else "en")
        if key not in self._ready and key not in self._making:
            self._making[key] = asyncio.create_task(self._make(*key))

    def get(self, talker: str, language: str, tone: str) -> list[Ack]:
        """The ready phrases for a tone (empty while they are still being spoken, or if speaking failed)."""
        return self._ready.get((talker, language if language in ("en", "zh") else "en"), {}).get(tone, [])

    async def _make(self, talker: str, language: str) -> None:
        bank: dict[str, list[Ack]] = {}
        try:
            for tone, by_language in PHRASES.items():
                instruction = instruction_pb2.AcousticInstruction(text=_TEXT[tone], controls=_CONTROLS[tone])
                bank[tone] = [Ack(text, tone, await self._speak(text, instruction, language, talker))
                              for text in by_language[language]]
            self._ready[(talker, language)] = bank
        except Exception:
            log.warning("quick acknowledgements for talker %r (%s) could not be spoken; sessions go without",
                        talker or "(active)", language, exc_info=True)
        finally:
            self._making.pop((talker, language), None)

    async def _speak(self, text: str, instruction, language: str, talker: str) -> media_pb2.AudioChunk:
        turn_id = f"ack-{uuid.uuid4().hex}"
        pieces: list[media_pb2.AudioChunk] = []
        finished: asyncio.Future = asyncio.get_running_loop().create_future()

        async def on_event(msg) -> None:
            event = agent_pb2.TurnEvent.FromString(msg.data)
            if event.HasField("error") and not finished.done():
                finished.set_exception(RuntimeError(event.error.message))
            elif event.HasField("audio"):
                pieces.append(event.audio)
                if event.audio.last and not finished.done():
                    finished.set_result(None)

        subs = [await self.bus.subscribe(subject(turn_id, kind), on_event) for kind in (Kind.AUDIO, Kind.ERROR)]
        try:
            await self.bus.dispatch(subject(turn_id, Kind.SPEAK), bus_pb2.SpeakJob(
                turn_id=turn_id, text=text, instruction=instruction, language=language, last_sentence=True,
                deadline_unix_ns=deadline_in(self.timeout_s), talker=talker), "talker")
            await asyncio.wait_for(finished, self.timeout_s)
        finally:
            for sub in subs:
                await sub.unsubscribe()
        rate = pieces[0].sample_rate
        return media_pb2.AudioChunk(pcm16=b"".join(p.pcm16 for p in pieces), sample_rate=rate, last=True,
                                    talker=pieces[0].talker)
