"""Does the spoken reply follow its instruction, and can people understand it?

For each talker: every instruction below goes through the real instruction mapper, and the talker speaks the
same reply sentences with it and with a neutral instruction. Per instruction we compare median pitch (YIN),
loudness (RMS level of the active frames, dB) and speaking rate (1 / trimmed duration) against neutral, on
the same sentences, and count the expected directions met. Intelligibility: Whisper-base (faster-whisper, an
independent model) transcribes every clip; word error rate against the text after jiwer normalisation.
Speed: real-time factor and time to the first chunk of a two-sentence reply.

Run by benchmarks/talker_quality.py (all talkers, figures in benchmarks/RESULTS.md) and, smaller, by
tests/test_talker_quality.py.
"""

from __future__ import annotations

import statistics
import time

import jiwer
import librosa
import numpy as np
from pydantic import BaseModel

from emoomni.eval import acoustics
from emoomni.eval.acoustics import MIN_CHANGE, features
from emoomni.eval.objective import WORD_TRANSFORM
from emoomni.services.instruction.core import InstructionCore
from emoomni.services.talker.core import TalkerCore

SENTENCES = (
    "I am really glad you told me about this.",
    "Let's take it one small step at a time.",
    "That sounds like a wonderful surprise for your family.",
    "You worked hard for this, and it shows.",
    "We can figure out the next part together.",
)
NEUTRAL = "Speak in your normal voice."
# Instruction -> expected direction of (pitch, loudness, rate) against neutral; None = no expectation.
INSTRUCTIONS: dict[str, dict[str, str]] = {
    "Whisper it softly.": {"loudness": "down"},
    "Say it with great excitement!": {"pitch": "up", "loudness": "up", "rate": "up"},
    "Speak slowly, in a low voice.": {"rate": "down", "pitch": "down"},
    "Shout it angrily.": {"loudness": "up"},
    "Say it in a hurry, quickly.": {"rate": "up"},
    "Say it sadly.": {"pitch": "down", "rate": "down", "loudness": "down"},
    "Use a deep voice.": {"pitch": "down"},
    "Use a high voice.": {"pitch": "up"},
}


class Clip(BaseModel):
    instruction: str
    sentence: str
    pitch_hz: float
    loudness_db: float
    seconds: float
    transcript: str = ""


class DirectionCheck(BaseModel):
    instruction: str
    feature: str
    expected: str
    change: float  # ratio - 1 for pitch and rate, dB for loudness
    met: bool


def speak(core: TalkerCore, talker: str, text: str, instruction) -> tuple[np.ndarray, int, float, float]:
    """Audio, sample rate, seconds to the first chunk, seconds in all."""
    started = time.perf_counter()
    first = None
    parts, rate = [], 0
    for chunk in core.speak(text, instruction, "en", talker=talker):
        first = first if first is not None else time.perf_counter() - started
        parts.append(chunk.pcm16)
        rate = chunk.sample_rate
    return np.frombuffer(b"".join(parts), dtype=np.int16), rate, first, time.perf_counter() - started


def check_directions(clips: list[Clip], instructions: dict[str, dict[str, str]] | None = None) -> list[DirectionCheck]:
    """Expected directions met; "same" (a neutral instruction) is met within twice the smallest counted change."""
    neutral = {c.sentence: c for c in clips if c.instruction == NEUTRAL}
    checks = []
    for instruction, expected in (instructions or INSTRUCTIONS).items():
        mine = [c for c in clips if c.instruction == instruction]
        for feature, direction in expected.items():
            field = {"pitch": "pitch_hz", "loudness": "loudness_db", "rate": "seconds"}[feature]
            delta = statistics.median(acoustics.change(feature, getattr(c, field), getattr(neutral[c.sentence], field))
                                      for c in mine)
            met = abs(delta) <= 2 * MIN_CHANGE[feature] if direction == "same" else \
                acoustics.direction_met(feature, direction, delta)
            checks.append(DirectionCheck(instruction=instruction, feature=feature, expected=direction,
                                         change=round(delta, 3), met=met))
    return checks


def word_error_rate(clips: list[Clip]) -> float:
    return jiwer.wer([c.sentence for c in clips], [c.transcript for c in clips],
                     reference_transform=WORD_TRANSFORM, hypothesis_transform=WORD_TRANSFORM)


def evaluate_talker(core: TalkerCore, mapper: InstructionCore, asr, talker: str, sentences=SENTENCES,
                    repeats: int = 1, instructions: dict[str, dict[str, str]] | None = None) -> dict:
    """Clips for every instruction x sentence (features: the median over `repeats` syntheses), the direction
    checks, WER (when `asr` is given), RTF and first-chunk latency."""
    instructions = instructions or INSTRUCTIONS
    core.registry.get(talker)
    clips: list[Clip] = []
    synth_s, audio_s = [], []
    for instruction_text in [NEUTRAL, *instructions]:
        instruction = mapper.map(instruction_text, "en")
        for sentence in sentences:
            takes = []
            for _ in range(repeats):
                pcm, rate, _, total = speak(core, talker, sentence, instruction)
                synth_s.append(total)
                audio_s.append(pcm.size / rate)
                takes.append(features(pcm, rate))
            pitch, loudness, seconds = (float(np.nanmedian([t[i] for t in takes])) for i in range(3))
            clip = Clip(instruction=instruction_text, sentence=sentence, pitch_hz=pitch, loudness_db=loudness,
                        seconds=seconds)
            if asr is not None:
                audio16k = librosa.resample(pcm.astype(np.float32) / 32768, orig_sr=rate, target_sr=16000)
                segments, _ = asr.transcribe(audio16k, language="en", beam_size=5, vad_filter=False)
                clip.transcript = " ".join(s.text.strip() for s in segments)
            clips.append(clip)
    checks = check_directions(clips, instructions)
    first_chunk = []
    reply = f"{SENTENCES[0]} {SENTENCES[1]}"
    neutral = mapper.map(NEUTRAL, "en")
    for _ in range(max(5, repeats)):
        _, _, first, _ = speak(core, talker, reply, neutral)
        first_chunk.append(first * 1e3)
    rtf = [s / a for s, a in zip(synth_s, audio_s, strict=True)]
    return {"talker": talker, "directions_met": sum(c.met for c in checks), "directions_checked": len(checks),
            "direction_accuracy": round(sum(c.met for c in checks) / len(checks), 3),
            "checks": [c.model_dump() for c in checks],
            "wer": round(word_error_rate(clips), 4) if asr is not None else None,
            "rtf_median": round(float(np.median(rtf)), 3), "rtf_p99": round(float(np.percentile(rtf, 99)), 3),
            "first_chunk_ms_median": round(float(np.median(first_chunk)), 1),
            "first_chunk_ms_p99": round(float(np.percentile(first_chunk, 99)), 1),
            "clips": [c.model_dump() for c in clips]}

