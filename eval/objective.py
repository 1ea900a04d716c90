"""Objective figures that need no judge: intelligibility of the spoken reply (WER or CER through an
independent ASR), acoustic instruction following against a neutral re-synthesis, latency, and UTMOS when a
UTMOS model file is given. Each item's figures are cached in objective.json beside its turn."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import jiwer
import librosa
import numpy as np
import soundfile as sf
from pydantic import BaseModel

from emoomni.core.text import spoken_language
from emoomni.eval import acoustics

OBJECTIVE_VERSION = 1
NEUTRAL_TEXT = "Speak in your normal voice."
CJK_LANGUAGES = ("zh", "ja", "ko")
# The method name recorded in every report, so a reader knows what "acoustic following" was measured against.
REFERENCE_METHOD = "neutral-resynthesis: the same reply text spoken by the same talker with neutral controls"


def load_asr():
    """The packaged Whisper-base (faster-whisper, int8): independent of the talkers it listens to."""
    from faster_whisper import WhisperModel

    from emoomni.services.perception.backends.faster_whisper_asr import packaged_whisper_base

    return WhisperModel(str(packaged_whisper_base()), device="cpu", compute_type="int8", cpu_threads=2)


# WER text normalisation, shared with benchmarks/talker_quality.py.
WORD_TRANSFORM = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
                                jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])
_NOT_CJK_TEXT = re.compile(r"[\s\W_]+", re.UNICODE)


def error_rate(reference: str, hypothesis: str, language: str) -> tuple[str, float]:
    """("CER", x) for Chinese, Japanese, Korean (characters, punctuation and spaces removed), else ("WER", x)
    after lower-casing and removing punctuation."""
    if language in CJK_LANGUAGES:
        ref, hyp = _NOT_CJK_TEXT.sub("", reference), _NOT_CJK_TEXT.sub("", hypothesis)
        return "CER", float(jiwer.cer(ref, hyp)) if ref else math.nan
    return "WER", float(jiwer.wer(reference, hypothesis, reference_transform=WORD_TRANSFORM,
                                  hypothesis_transform=WORD_TRANSFORM))


class DirectionResult(BaseModel):
    feature: str
    expected: str
    change: float
    met: bool


class Objective(BaseModel):
    version: int = OBJECTIVE_VERSION
    reply_language: str
    asr_transcript: str
    error_metric: str  # WER or CER
    error_rate: float | None
    acoustic_reference: str = REFERENCE_METHOD
    acoustic_expected: dict[str, str]
    acoustic_checks: list[DirectionResult]
    acoustic_following: float | None  # share of expected directions met; None when the controls ask for none
    acoustic_error: str = ""
    reply_features: dict[str, float]
    neutral_features: dict[str, float]
    latency_ms: dict[str, float]
    utmos: float | None = None


class ObjectiveScorer:
    """Loads Whisper, the local talker and (optionally) UTMOS once, then scores items."""

    def __init__(self, cfg, utmos_path: str = ""):
        from emoomni.services.talker.core import TalkerCore

        self.asr = load_asr()
        self.talker = TalkerCore(cfg)
        self.utmos = Utmos(utmos_path) if utmos_path else None

    def score(self, item_dir: Path) -> Objective:
        turn = json.loads((item_dir / "turn.json").read_text())
        pcm, rate = sf.read(item_dir / "reply.wav", dtype="int16")
        reply = turn["ecot"]["response"]
        language = spoken_language(reply, turn["perception"].get("language", ""))
        audio16k = librosa.resample(pcm.astype(np.float32) / 32768, orig_sr=rate, target_sr=16000)
        segments, _ = self.asr.transcribe(audio16k, language=language, beam_size=5, vad_filter=False)
        transcript = " ".join(s.text.strip() for s in segments).strip()
        metric, rate_value = error_rate(reply, transcript, language)
        expected = acoustics.expected_directions(turn.get("instruction_controls", {}))
        # features() gives (pitch Hz, loudness dB, seconds); 'rate' is compared through the seconds.
        mine = dict(zip(acoustics.FEATURES, acoustics.features(pcm, rate), strict=True))
        neutral, checks, problem = {}, [], ""
        try:
            talker = (turn["audio"].get("talker") or "").split(", ")[0]
            neutral_pcm, neutral_rate = self._neutral_take(reply, language, talker)
            neutral = dict(zip(acoustics.FEATURES, acoustics.features(neutral_pcm, neutral_rate), strict=True))
            for feature, direction in expected.items():
                delta = acoustics.change(feature, mine[feature], neutral[feature])
                if math.isnan(delta):
                    continue
                checks.append(DirectionResult(feature=feature, expected=direction, change=round(delta, 3),
                                              met=acoustics.direction_met(feature, direction, delta)))
        except (ValueError, RuntimeError, KeyError) as exc:
            problem = f"no neutral reference: {exc}"
        following = sum(c.met for c in checks) / len(checks) if checks else None
        return Objective(reply_language=language, asr_transcript=transcript, error_metric=metric,
                         error_rate=None if math.isnan(rate_value) else round(rate_value, 4),
                         acoustic_expected=expected, acoustic_checks=checks, acoustic_following=following,
                         acoustic_error=problem, reply_features=_round(mine), neutral_features=_round(neutral),
                         latency_ms=_latency(item_dir, turn),
                         utmos=self.utmos.score(audio16k) if self.utmos else None)

    def _neutral_take(self, text: str, language: str, talker: str) -> tuple[np.ndarray, int]:
        from emoomni.v1 import instruction_pb2

        neutral = instruction_pb2.AcousticInstruction(text=NEUTRAL_TEXT, controls=instruction_pb2.AcousticControls(
            emotion="neutral", intensity=0.0, pitch_scale=1.0, rate_scale=1.0, energy_scale=1.0,
            voice_quality="modal"))
        parts, rate = [], 0
        for chunk in self.talker.speak(text, neutral, language, talker=talker):
            parts.append(chunk.pcm16)
            rate = chunk.sample_rate
        return np.frombuffer(b"".join(parts), dtype=np.int16), rate


def _round(d: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in d.items() if not math.isnan(v)}


def _latency(item_dir: Path, turn: dict) -> dict[str, float]:
    timings = dict(turn.get("timings_ms", {}))
    meta = item_dir / "item.json"
    if meta.is_file():
        extra = json.loads(meta.read_text())
        timings["client_wall"] = extra.get("wall_ms", 0.0)
    return timings


class Utmos:
    """A UTMOS predictor from a user-given file: ONNX (`.onnx`, run by onnxruntime) or TorchScript (`.pt`,
    `.jit`, `.ts`). Contract: input float32 [1, samples] of 16 kHz mono audio, output one MOS value. No UTMOS
    weights ship with EmoOmni, so without a file the report says "not measured"."""

    def __init__(self, path: str):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"UTMOS model not found: {self.path}")
        if self.path.suffix == ".onnx":
            import onnxruntime

            self.session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
            self.kind = "onnx"
        else:
            import torch

            self.module = torch.jit.load(str(self.path), map_location="cpu").eval()
            self.kind = "torchscript"

    def score(self, audio16k: np.ndarray) -> float:
        wav = audio16k.astype(np.float32)[None, :]
        if self.kind == "onnx":
            name = self.session.get_inputs()[0].name
            return round(float(np.asarray(self.session.run(None, {name: wav})[0]).reshape(-1)[0]), 3)
        import torch

        with torch.inference_mode():
            return round(float(self.module(torch.from_numpy(wav)).reshape(-1)[0]), 3)
