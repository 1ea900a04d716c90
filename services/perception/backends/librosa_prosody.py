"""Voice prosody from the waveform with librosa: pitch by YIN on voiced frames, RMS energy in dBFS."""

from __future__ import annotations

import librosa
import numpy as np

from emoomni.core.config import ProsodyConfig
from emoomni.services.perception.backends.interface import ProsodyResult

_FRAME = 1024
_HOP = 256
_FMIN, _FMAX = 65.0, 600.0


class LibrosaProsody:
    def __init__(self, cfg: ProsodyConfig):
        self.cfg = cfg

    def measure(self, audio: np.ndarray, sample_rate: int) -> ProsodyResult:
        rms = librosa.feature.rms(y=audio, frame_length=_FRAME, hop_length=_HOP, center=True)[0]
        db = 20 * np.log10(np.maximum(rms, 1e-6))
        peak = float(db.max())
        # Speech frames: within 30 dB of the loudest frame and above an absolute floor.
        active = (db > peak - 30) & (db > -55)
        f0 = librosa.yin(audio, fmin=_FMIN, fmax=_FMAX, sr=sample_rate, frame_length=_FRAME,
                         hop_length=_HOP, trough_threshold=0.1)
        n = min(len(f0), len(active))
        f0, active_f0 = f0[:n], active[:n]
        # YIN returns a value for every frame; keep frames that are loud and whose f0 is not pinned to a bound.
        voiced = active_f0 & (f0 > _FMIN * 1.05) & (f0 < _FMAX * 0.95)
        pitch = f0[voiced]
        if pitch.size >= 5:
            # Drop octave jumps: keep values within an octave of the median.
            med = np.median(pitch)
            pitch = pitch[(pitch > med / 2) & (pitch < med * 2)]
        speech_db = db[active] if active.any() else db
        return ProsodyResult(
            duration_s=audio.size / sample_rate,
            voiced_ratio=float(voiced.mean()) if n else 0.0,
            pitch_median_hz=float(np.median(pitch)) if pitch.size else 0.0,
            pitch_mean_hz=float(pitch.mean()) if pitch.size else 0.0,
            pitch_std_hz=float(pitch.std()) if pitch.size else 0.0,
            pitch_p10_hz=float(np.percentile(pitch, 10)) if pitch.size else 0.0,
            pitch_p90_hz=float(np.percentile(pitch, 90)) if pitch.size else 0.0,
            energy_mean_dbfs=float(10 * np.log10(np.mean(10 ** (speech_db / 10)))),
            energy_std_db=float(speech_db.std()),
            energy_peak_dbfs=peak,
        )
