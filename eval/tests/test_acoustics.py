"""The pitch / loudness / rate measurement that EmoOmniEval and benchmarks/talker_quality.py judge delivery by:
exact on a tone whose pitch is known, and on a real person's voice from ../shared/media a pitch shift of a
known size measures as that size."""

import numpy as np
import soxr

from conftest import clip_audio
from emoomni.eval.acoustics import change, direction_met, features

RATE = 16000


def glottal_tone(f0: float, seconds: float = 2.0) -> np.ndarray:
    """A voice-like harmonic tone (1/k harmonics, syllable-like amplitude envelope) at `f0` Hz, as int16."""
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3 * t)
    return (wave * envelope / np.abs(wave).max() * 0.5 * 32767).astype(np.int16)


def test_pitch_of_a_known_tone_and_a_gain_change():
    for f0 in (85.0, 120.0, 210.0, 300.0):
        pitch, _, seconds = features(glottal_tone(f0), RATE)
        assert abs(pitch / f0 - 1) < 0.01, (f0, pitch)
        assert abs(seconds - 2.0) < 0.05
    quiet = (glottal_tone(120.0) * 0.5).astype(np.int16)
    loud_db, quiet_db = features(glottal_tone(120.0), RATE)[1], features(quiet, RATE)[1]
    assert abs((quiet_db - loud_db) - 20 * np.log10(0.5)) < 0.2


def test_a_known_pitch_shift_of_a_real_voice_measures_as_that_shift(english_clip):
    voice = (clip_audio(english_clip, RATE)[: 5 * RATE] * 32767).astype(np.int16)
    base_pitch, _, base_seconds = features(voice, RATE)
    assert 70 < base_pitch < 300
    for factor in (0.9, 1.12):
        # Played `factor` times faster: every frequency x factor, duration / factor.
        shifted = soxr.resample(voice.astype(np.float32), RATE * factor, RATE).astype(np.int16)
        pitch, _, seconds = features(shifted, RATE)
        pitch_change = change("pitch", pitch, base_pitch)
        assert abs(pitch_change - (factor - 1)) < 0.02, (factor, pitch_change)
        assert abs(change("rate", seconds, base_seconds) - (factor - 1)) < 0.03
        assert direction_met("pitch", "up" if factor > 1 else "down", pitch_change)
