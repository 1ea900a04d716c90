"""Acoustic measurements shared by EmoOmniEval and benchmarks/talker_quality.py: one definition of pitch,
loudness and rate, and of when a change counts as a direction, so the benchmark and the eval agree."""

from __future__ import annotations

import librosa
import numpy as np

# A change smaller than this is not a direction: 2 % pitch, 1 dB loudness, 3 % rate.
MIN_CHANGE = {"pitch": 0.02, "loudness": 1.0, "rate": 0.03}
# A control scale within this of 1.0 asks for no change (the mapper's near-neutral outputs are not requests).
CONTROL_DEADBAND = 0.05
FEATURES = ("pitch", "loudness", "rate")
F0_RANGE_HZ = (60.0, 400.0)  # speaking voices, deep male to high female, with pitch controls applied
_HOP = 256


def features(pcm: np.ndarray, sample_rate: int) -> tuple[float, float, float]:
    """Median F0 (Hz) of the loud frames, RMS level (dB) of frames within 30 dB of the loudest, trimmed seconds."""
    audio = pcm.astype(np.float32) / 32768 if pcm.dtype == np.int16 else pcm.astype(np.float32)
    trimmed, _ = librosa.effects.trim(audio, top_db=35)
    # YIN, not pYIN: on synthetic voices pYIN's voicing HMM sometimes calls a whole clip unvoiced, or keeps a
    # handful of frames, and the median then jumps by an octave between two takes of the same sentence. YIN
    # gives an F0 on every frame; the loud frames are the vowels, and the median over them is stable to ~2 %
    # (measured on repeated Piper takes). Frames pinned at the search bounds found no period and are dropped.
    f0 = librosa.yin(trimmed, fmin=F0_RANGE_HZ[0], fmax=F0_RANGE_HZ[1], sr=sample_rate, frame_length=2048,
                     hop_length=_HOP)
    frame_level = 20 * np.log10(np.maximum(librosa.feature.rms(y=trimmed, frame_length=2048, hop_length=_HOP)[0],
                                           1e-9))
    n = min(f0.size, frame_level.size)
    keep = ((frame_level[:n] > frame_level.max() - 20) & (f0[:n] > F0_RANGE_HZ[0] * 1.02)
            & (f0[:n] < F0_RANGE_HZ[1] * 0.98))
    pitch = float(np.median(f0[:n][keep])) if keep.any() else float("nan")
    # Loudness on librosa's default 512-sample hop: every other frame of the same centred 2048-sample frames.
    level = frame_level[::2]
    active = level[level > level.max() - 30]
    return pitch, float(np.mean(active)), trimmed.size / sample_rate


def change(feature: str, value: float, neutral: float) -> float:
    """Signed change against the neutral take: ratio - 1 for pitch (Hz) and rate (given as seconds, so the
    ratio is inverted), dB difference for loudness."""
    if feature == "pitch":
        return value / neutral - 1
    if feature == "rate":
        return neutral / value - 1
    if feature == "loudness":
        return value - neutral
    raise ValueError(f"unknown feature {feature!r}")


def direction_met(feature: str, direction: str, delta: float) -> bool:
    return delta > MIN_CHANGE[feature] if direction == "up" else delta < -MIN_CHANGE[feature]


def expected_directions(controls: dict) -> dict[str, str]:
    """Which way pitch, loudness and rate should move for these instruction controls (turn.json
    `instruction_controls`); a scale inside the dead band expects nothing. A whisper expects lower loudness."""
    expected = {}
    for feature, key in (("pitch", "pitch_scale"), ("rate", "rate_scale"), ("loudness", "energy_scale")):
        scale = float(controls.get(key, 1.0) or 1.0)
        if scale >= 1 + CONTROL_DEADBAND:
            expected[feature] = "up"
        elif scale <= 1 - CONTROL_DEADBAND:
            expected[feature] = "down"
    if controls.get("voice_quality") == "whisper":
        expected["loudness"] = "down"
    return expected
