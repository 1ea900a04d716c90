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


def features(pcm: np.ndarray, sample_rate: int) -> tuple[float, float, float]:
    """Median F0 (Hz) of voiced frames, RMS level (dB) of frames within 30 dB of the loudest, trimmed seconds."""
    audio = pcm.astype(np.float32) / 32768 if pcm.dtype == np.int16 else pcm.astype(np.float32)
    trimmed, _ = librosa.effects.trim(audio, top_db=35)
    # pYIN's voicing decision is strict on synthetic and resampled voices; take its best F0 guess on every
    # frame and keep the frames it finds at least somewhat voiced.
    f0, _, voiced_prob = librosa.pyin(trimmed, fmin=50, fmax=500, sr=sample_rate, frame_length=2048, fill_na=None)
    keep = voiced_prob > 0.1
    pitch = float(np.median(f0[keep])) if keep.any() else float("nan")
    rms = librosa.feature.rms(y=trimmed)[0]
    level = 20 * np.log10(np.maximum(rms, 1e-9))
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
