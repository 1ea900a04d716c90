"""Driving a live session as a person would, shared by `emoomni live`, the live tests and the benchmarks: scripted
steps (speak a clip, stay quiet, barge in after the reply starts, wait until answered, or listen to a real
microphone), a simulated loudspeaker that plays the agent's audio in real time and reports playback, and a
recorder of everything the client saw (`hold_session`)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from emoomni.sdk.live import AsyncLiveSession
from emoomni.v1 import agent_pb2

RATE = 16000
FRAME_MS = 20
_FIELDS = ("emotion_analysis", "intent", "strategy", "response")


class Microphone(Protocol):
    def read(self) -> np.ndarray:
        """The next block of int16 audio at RATE."""
        ...


class Camera(Protocol):
    def frame(self) -> bytes | None:
        """The latest picture as JPEG, if any."""
        ...


class Speaker(Protocol):
    def play(self, turn_id: str, pcm: np.ndarray) -> None: ...

    def drop(self, turn_id: str) -> None: ...


@dataclass
class Clip:
    name: str
    audio: np.ndarray  # int16 mono 16 kHz
    frames: list[tuple[float, bytes]]  # (seconds into the clip, JPEG)


def load_clip(path: Path, cfg, fps: float, video: bool) -> Clip:
    import cv2

    from emoomni.core.media import decode_audio, decode_frames, read_source

    source = read_source(str(path), None, cfg.limits)
    media = decode_audio(source, cfg.limits, RATE)
    audio = np.clip(media.audio * 32768, -32768, 32767).astype(np.int16)
    frames = []
    if video and media.has_video:
        count = max(1, int(media.duration_s * fps))
        for t, rgb in decode_frames(source, media.duration_s, count, 640):
            ok, jpeg = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
            if ok:
                frames.append((t, jpeg.tobytes()))
    return Clip(path.name, audio, frames)


@dataclass
class Played:
    """A piece of agent audio on the loudspeaker's timeline (seconds since the session began)."""

    turn_id: str
    start_s: float
    audio: np.ndarray  # int16 at RATE


@dataclass
class Recorder:
    """The client's view: what it sent, what it played, every turn's events."""

    started: float = 0.0
    sent: list[np.ndarray] = field(default_factory=list)
    played: list[Played] = field(default_factory=list)
    speaker_free_s: float = 0.0
    turns: dict[str, dict] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    first_audio_at: dict[str, float] = field(default_factory=dict)
    ended: agent_pb2.SessionEnded | None = None
    session_id: str = ""
    resume_token: str = ""
    """The secret that resumes this session later (SessionStarted.resume_token)."""
    errors: list[str] = field(default_factory=list)
    stale_audio: int = 0
    """Audio chunks of a turn that came after its `interrupted` (the server must send none)."""
    provisional: list[tuple[float, str]] = field(default_factory=list)
    """Provisional transcripts not yet given to a turn: (speech start ms, text)."""
    loudspeaker: Speaker | None = None
    """A real output device that plays what the simulated loudspeaker plays (`--speaker`)."""

    def now_s(self) -> float:
        return time.monotonic() - self.started

    def turn(self, turn_id: str) -> dict:
        if turn_id not in self.turns:
            self.order.append(turn_id)
            self.turns[turn_id] = {"turn_id": turn_id, "trigger": "", "user_transcript": "",
                                   "ecot": dict.fromkeys(_FIELDS, ""), "instruction": "", "reply": "",
                                   "heard_reply": "", "interrupted": False, "interrupt_reason": "",
                                   "history_turns": 0, "preemptive": False, "ack": "", "error": "",
                                   "provisional_transcripts": [],
                                   "timings_ms": dict.fromkeys(("end_of_turn", "ack", "first_audio", "voice_to_voice",
                                                                "barge_in_stop", "barge_in_decided"), 0.0)}
        return self.turns[turn_id]

    def play(self, turn_id: str, chunk) -> None:
        """Queue audio on the loudspeaker: it plays after what is already queued, in real time."""
        pcm = np.frombuffer(chunk.pcm16, dtype=np.int16)
        if chunk.sample_rate != RATE and pcm.size:
            import librosa

            pcm = librosa.resample(pcm.astype(np.float32), orig_sr=chunk.sample_rate, target_sr=RATE)
            pcm = np.clip(pcm, -32768, 32767).astype(np.int16)
        start = max(self.now_s(), self.speaker_free_s)
        self.played.append(Played(turn_id, start, pcm))
        self.speaker_free_s = start + pcm.size / RATE
        if self.loudspeaker is not None:
            self.loudspeaker.play(turn_id, pcm)

    def stop(self, turn_id: str) -> None:
        """Drop the turn's audio from now on (what already played stays)."""
        if self.loudspeaker is not None:
            self.loudspeaker.drop(turn_id)
        now = self.now_s()
        kept = []
        for piece in self.played:
            if piece.turn_id == turn_id and piece.start_s + piece.audio.size / RATE > now:
                cut = int(max(0.0, now - piece.start_s) * RATE)
                if cut:
                    kept.append(Played(turn_id, piece.start_s, piece.audio[:cut]))
                continue
            kept.append(piece)
        self.played = kept
        self.speaker_free_s = max([now] + [p.start_s + p.audio.size / RATE for p in kept])

    def played_ms(self, turn_id: str) -> float:
        now = self.now_s()
        return sum(max(0.0, min(p.audio.size / RATE, now - p.start_s)) * 1000
                   for p in self.played if p.turn_id == turn_id)

    def speaking(self) -> bool:
        return self.speaker_free_s > self.now_s()

    def record(self, event: agent_pb2.SessionEvent) -> None:
        which = event.WhichOneof("event")
        if which == "started":
            self.session_id, self.resume_token = event.started.session_id, event.started.resume_token
        elif which == "turn_started":
            entry = self.turn(event.turn_started.turn_id)
            entry["trigger"], entry["history_turns"] = event.turn_started.trigger, event.turn_started.history_turns
            entry["preemptive"] = event.turn_started.preemptive
            # What was heard of this turn's speech while it went on (a continued turn holds two speeches).
            start, end = event.turn_started.speech_start_ms, event.turn_started.speech_end_ms
            entry["provisional_transcripts"] = [text for at, text in self.provisional if start <= at <= end]
            self.provisional = [(at, text) for at, text in self.provisional if at > end]
        elif which == "transcript" and event.transcript.provisional and event.transcript.turn_id:
            self.turn(event.transcript.turn_id)["provisional_transcripts"].append(event.transcript.text)
        elif which == "transcript" and event.transcript.provisional:
            self.provisional.append((event.transcript.speech_start_ms, event.transcript.text))
        elif which == "transcript":
            self.turn(event.transcript.turn_id)["user_transcript"] = event.transcript.text
        elif which == "ack":
            self.turn(event.ack.turn_id)["ack"] = event.ack.text
            self.play(event.ack.turn_id, event.ack.audio)
        elif which == "interrupted":
            entry = self.turn(event.interrupted.turn_id)
            entry["interrupted"], entry["interrupt_reason"] = True, event.interrupted.reason
            entry["heard_reply"] = event.interrupted.heard_reply
            self.stop(event.interrupted.turn_id)
        elif which == "latency":
            latency = event.latency
            timings = self.turn(latency.turn_id)["timings_ms"]
            for name in timings:
                value = getattr(latency, f"{name}_ms")
                timings[name] = round(value, 1) if value else timings[name]
        elif which == "error":
            self.errors.append(f"{event.error.code}: {event.error.message}")
        elif which == "ended":
            self.ended = event.ended
        elif which == "turn":
            self._turn_event(event.turn)

    def _turn_event(self, event: agent_pb2.TurnEvent) -> None:
        entry = self.turn(event.turn_id)
        which = event.WhichOneof("event")
        if which == "audio":
            if entry["interrupted"]:
                self.stale_audio += 1
                return  # never play a stopped turn (the server sends none; this is the client's own guard)
            self.first_audio_at.setdefault(event.turn_id, self.now_s())
            self.play(event.turn_id, event.audio)
        elif which == "instruction":
            entry["instruction"] = event.instruction.text
        elif which == "done":
            for name in _FIELDS:
                entry["ecot"][name] = getattr(event.done.ecot, name)
            entry["reply"] = event.done.ecot.response
            if not entry["interrupted"]:
                entry["heard_reply"] = entry["reply"]
        elif which == "error":
            entry["error"] = f"{event.error.code} in {event.error.stage}: {event.error.message}"
            self.errors.append(entry["error"])

    def write(self, out: Path, user_audio: np.ndarray) -> tuple[Path, Path]:
        import soundfile as sf

        out.mkdir(parents=True, exist_ok=True)
        agent = np.zeros(max(user_audio.size, *(int(p.start_s * RATE) + p.audio.size for p in self.played), 1),
                         dtype=np.int32)
        for piece in self.played:
            start = int(piece.start_s * RATE)
            agent[start:start + piece.audio.size] += piece.audio
        user = np.zeros(agent.size, dtype=np.int16)
        user[: user_audio.size] = user_audio
        stereo = np.stack([user, np.clip(agent, -32768, 32767).astype(np.int16)], axis=1)
        wav = out / "session.wav"
        sf.write(wav, stereo, RATE, subtype="PCM_16")
        summary = {"turns": [self.turns[t] for t in self.order],
                   "ended": {"reason": self.ended.reason, "turns": self.ended.turns,
                             "continued_turns": self.ended.continued_turns} if self.ended else None,
                   "errors": self.errors}
        path = out / "session.json"
        path.write_text(json.dumps(summary, ensure_ascii=False, indent=2))
        return path, wav


@dataclass
class Speak:
    """The user talks: audio (int16, 16 kHz) and camera frames (seconds into the audio, JPEG)."""

    audio: np.ndarray
    frames: list[tuple[float, bytes]] = field(default_factory=list)


@dataclass
class Silence:
    """The user is quiet for `seconds` (silence is sent: the server's clock is the audio)."""

    seconds: float


@dataclass
class AfterFirstAudio:
    """Quiet until the reply to the last thing said starts to arrive, then `seconds` more (a barge-in's timing)."""

    seconds: float
    timeout_s: float = 90.0


@dataclass
class UntilDone:
    """Quiet until every turn is answered (or interrupted) and the loudspeaker is idle."""

    timeout_s: float = 120.0


@dataclass
class Listen:
    """The user talks through the local microphone (and camera) for `seconds` of audio."""

    seconds: float
    mic: Microphone
    camera: Camera | None = None
    fps: float = 2.0


Step = Speak | Silence | AfterFirstAudio | UntilDone | Listen


def clip_steps(clips: list[Clip], gap_s: float, barge_in_s: float | None, video: bool) -> list[Step]:
    """What `emoomni live` does with its clips: each followed by a gap, or the next one interrupting."""
    steps: list[Step] = []
    for index, clip in enumerate(clips):
        steps.append(Speak(clip.audio, clip.frames if video else []))
        last = index == len(clips) - 1
        steps.append(AfterFirstAudio(barge_in_s) if barge_in_s is not None and not last else Silence(gap_s))
    steps.append(UntilDone())
    return steps


async def hold_session(session: AsyncLiveSession, steps: list[Step], recorder: Recorder,
                       speed: float = 1.0) -> np.ndarray:
    """Play the steps as a person talking (at `speed` x real time), play the agent's audio on a simulated
    loudspeaker, report playback, then end the session; return the user's audio as sent."""
    sent: list[np.ndarray] = []
    frame = RATE * FRAME_MS // 1000
    clock = {"samples": 0}
    done = asyncio.Event()

    async def send(samples: np.ndarray, frames: list[tuple[float, bytes]]) -> None:
        start_s = clock["samples"] / RATE
        pending = sorted(frames, key=lambda f: f[0])
        for offset in range(0, samples.size, frame):
            piece = samples[offset:offset + frame]
            while pending and pending[0][0] <= offset / RATE:
                t, jpeg = pending.pop(0)
                await session.send_frame(jpeg, start_s + t)
            await session.send_audio(piece.tobytes())
            sent.append(piece)
            clock["samples"] += piece.size
            delay = clock["samples"] / RATE / speed - recorder.now_s()
            if delay > 0:
                await asyncio.sleep(delay)

    async def silence(seconds: float, until=None) -> None:
        end = clock["samples"] / RATE + seconds
        while clock["samples"] / RATE < end and not (until and until()):
            await send(np.zeros(frame, dtype=np.int16), [])

    async def listen(step: Listen) -> None:
        end = clock["samples"] / RATE + step.seconds
        next_frame = 0.0
        while clock["samples"] / RATE < end:
            block = await asyncio.to_thread(step.mic.read)
            at = clock["samples"] / RATE
            jpeg = step.camera.frame() if step.camera is not None and at >= next_frame else None
            if jpeg:
                next_frame = at + 1.0 / step.fps
            await send(block, [(0.0, jpeg)] if jpeg else [])

    async def speaker() -> None:
        while not done.is_set():
            for turn_id in {p.turn_id for p in recorder.played}:
                if not recorder.turns.get(turn_id, {}).get("interrupted"):
                    await session.report_playback(turn_id, recorder.played_ms(turn_id))
            await asyncio.sleep(0.1)

    async def receive() -> None:
        async for event in session.events():
            recorder.record(event)
        done.set()

    def answered() -> bool:
        return bool(recorder.order) and not recorder.speaking() and all(
            recorder.turns[t]["reply"] or recorder.turns[t]["interrupted"] or recorder.turns[t]["error"]
            for t in recorder.order)

    recorder.started = time.monotonic()
    receiver, reporter = asyncio.create_task(receive()), asyncio.create_task(speaker())
    try:
        turns_before = 0
        for step in steps:
            if isinstance(step, Speak):
                turns_before = len(recorder.order)
                await send(step.audio, step.frames)
            elif isinstance(step, Silence):
                await silence(step.seconds)
            elif isinstance(step, Listen):
                await listen(step)
            elif isinstance(step, AfterFirstAudio):
                def replied(before=turns_before) -> bool:
                    return any(t in recorder.first_audio_at for t in recorder.order[before:])

                await silence(step.timeout_s, until=replied)
                turn = next((t for t in recorder.order[turns_before:] if t in recorder.first_audio_at), None)
                if turn is not None:
                    await silence(max(0.0, recorder.first_audio_at[turn] + step.seconds - recorder.now_s()) * speed)
            elif isinstance(step, UntilDone):
                await silence(step.timeout_s * speed, until=answered)
        await session.end()
        await asyncio.wait_for(receiver, timeout=120)
    finally:
        done.set()
        reporter.cancel()
        receiver.cancel()
        await session.close()
    return np.concatenate(sent) if sent else np.zeros(0, dtype=np.int16)
