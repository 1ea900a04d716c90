"""eSpeak NG talker: formant synthesis in about 100 languages, the stack's multilingual fallback.

It sounds robotic but is tiny, fast (a few ms per sentence) and speaks languages no other packaged voice does.
Controls: pitch_scale (base pitch), rate_scale (words per minute), energy_scale (amplitude), emotion and
intensity (only as a wider or narrower pitch range: lively emotions widen it, subdued ones flatten it),
voice_quality "whisper" (espeak-ng's whisper variants) and "breathy" (a voice file with breath noise and less
voicing), gender_hint (female variant) and age_hint (elderly variants; a child is a female variant raised in
pitch). "tense" and "creaky" are not available and are reported as ignored.

Options: `voice` overrides the espeak-ng voice: a string (e.g. "en-gb+m3") is used for every request, a mapping
from ISO 639-1 code to voice name (e.g. {"en": "en-gb", "pt": "pt"}) overrides single languages. A "+variant"
in it is kept unless a gender, age or voice-quality hint picks another."""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from emoomni.sdk.talker import SpokenAudio, TalkerCapabilities, TalkerOptions, TalkerPlugin
from emoomni.v1 import instruction_pb2
from emoomni_talker_espeak import _binding

# ISO 639-1 code -> espeak-ng voice. Every entry was checked to give audible speech of plausible length from
# native-script text, and Whisper-base recognised the language or most of the words (see the tests).
LANGUAGE_VOICES = {
    "en": "en-us", "zh": "cmn", "ja": "ja", "de": "de", "fr": "fr-fr", "es": "es", "it": "it", "pt": "pt-br",
    "ru": "ru", "pl": "pl", "nl": "nl", "sv": "sv", "cs": "cs", "fi": "fi", "vi": "vi", "id": "id", "el": "el",
    "ro": "ro", "fa": "fa", "ca": "ca", "uk": "uk", "sw": "sw",
}

# espeak-ng's pitch parameter (0..99, 50 = the voice's own pitch) against the median F0 it gives relative to
# 50, measured with librosa YIN over three English sentences with the default and the f3 voice (same to ~3%).
_PITCH_PARAMS = np.array([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99])
_PITCH_RATIOS = np.array([0.72, 0.765, 0.797, 0.86, 0.915, 1.0, 1.10, 1.20, 1.335, 1.48, 1.63])
_DEFAULT_WPM = 175
_MIN_WPM, _MAX_WPM = 80, 450
# Amplitude 100 peaks near 0.7 of full scale; 90 leaves headroom so louder styles (up to ~1.6x) do not clip.
_BASE_AMPLITUDE = 90
_MAX_AMPLITUDE = 180
_DEFAULT_RANGE = 50

_FEMALE = "f3"
_FEMALE_VARIANTS = {"f1", "f2", "f3", "f4", "f5", "whisperf", "grandma", "Annie", "Alicia", "anika", "linda"}
# A child: the female variant, raised this much in pitch.
_CHILD_PITCH = 1.3
# How an emotion moves the pitch range, times intensity (positive widens, negative flattens).
_AROUSAL = {"neutral": 0.0, "happy": 1.0, "excited": 1.0, "angry": 1.0, "anxious": 0.8, "fearful": 0.8,
            "amused": 0.8, "hopeful": 0.5, "curious": 0.5, "tender": -0.5, "serious": -0.6, "calm": -0.8,
            "sad": -1.0}
_RANGE_SPREAD = 0.7
# Added to a voice file for "breathy": less voicing and breath noise in the formants (values chosen by ear and
# by spectral flatness: between the modal voice and espeak-ng's whisper).
_BREATHY_LINES = ("voicing 55", "breath 20 20 15 12 8 6", "breathw 150 150 200 250 400 400")

# A sentence ends after ., !, ? or an ellipsis followed by space, or after CJK sentence punctuation.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？；])|\n+")
_KANJI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def split_sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]


def pitch_parameter(scale: float) -> int:
    """espeak-ng pitch parameter (0..99) for a pitch scale relative to the voice's own pitch."""
    ratio = float(np.clip(scale, _PITCH_RATIOS[0], _PITCH_RATIOS[-1]))
    return round(float(np.interp(np.log(ratio), np.log(_PITCH_RATIOS), _PITCH_PARAMS)))


class _VoicePlan:
    """What one request asks of espeak-ng: voice (name, or a voice file made from the language and variant)
    and the four numeric parameters, plus controls that this combination cannot honour."""

    def __init__(self, voice: str, variant: str, extra: tuple[str, ...], pitch: int, rate: int, volume: int,
                 pitch_range: int, ignored: list[str]):
        self.voice, self.variant, self.extra = voice, variant, extra
        self.pitch, self.rate, self.volume, self.pitch_range = pitch, rate, volume, pitch_range
        self.ignored = ignored


class EspeakOptions(TalkerOptions):
    voice: str | dict[str, str] | None = Field(
        default=None, description="an espeak-ng voice name, or a mapping from language code to voice name")


class EspeakTalker(TalkerPlugin):
    name = "espeak"
    Options = EspeakOptions
    capabilities = TalkerCapabilities(
        languages=list(LANGUAGE_VOICES), streaming=True,
        controls=["emotion", "intensity", "pitch_scale", "rate_scale", "energy_scale", "voice_quality",
                  "age_hint", "gender_hint"],
        license="GPL-3.0-or-later (libespeak-ng and espeak-ng-data via espeakng-loader; pykakasi for Japanese)")

    def __init__(self, options: dict[str, Any] | EspeakOptions | None = None):
        super().__init__(options)
        self._voice_option = self.options.voice
        self._files: dict[tuple[str, str, tuple[str, ...]], Path] = {}
        self._kakasi = None
        # Guards the lazily made voice files and the lazily loaded kanji converter.
        self._prep_lock = threading.Lock()

    def load(self) -> None:
        with _binding.LOCK:
            self._espeak = _binding.engine()
        self.sample_rate = self._espeak.sample_rate
        self._lang_root = self._espeak.data / "lang"
        self._lang_files = self._index_language_files(self._lang_root)
        self._tmp = tempfile.TemporaryDirectory(prefix="emoomni-espeak-")
        # Check the configured voices now rather than on the first request.
        for voice in self._override_voices():
            base, _, variant = voice.partition("+")
            with _binding.LOCK:
                self._espeak.set_voice(self._identifier(base) + (f"+{variant}" if variant else ""))

    # -- voices -------------------------------------------------------------------------------------------

    def _override_voices(self) -> list[str]:
        if isinstance(self._voice_option, str):
            return [self._voice_option]
        if isinstance(self._voice_option, dict):
            return [str(v) for v in self._voice_option.values()]
        return []

    @staticmethod
    def _index_language_files(root: Path) -> dict[str, Path]:
        """espeak-ng voice name (lower case) -> its language file, from file names and `language` lines."""
        by_line: dict[str, Path] = {}
        by_name: dict[str, Path] = {}
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            by_name.setdefault(path.name.lower(), path)
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                words = line.split()
                if len(words) >= 2 and words[0] == "language":
                    by_line.setdefault(words[1].lower(), path)
        return {**by_line, **by_name}

    def _identifier(self, voice: str) -> str:
        """espeak_SetVoiceByName matches voice file names, not every language code ("fr-fr", "en-gb"): use the
        language file's path under lang/ when the index knows the name."""
        path = self._lang_files.get(voice.lower())
        return path.relative_to(self._lang_root).as_posix() if path else voice

    def voice_for(self, language: str) -> str:
        """The espeak-ng voice name for an ISO code ("en", "zh-CN", "pt_BR"); espeak-ng's own names work too."""
        if isinstance(self._voice_option, str):
            return self._voice_option
        code = (language or "en").strip().replace("_", "-").lower()
        primary = code.split("-")[0]
        overrides = self._voice_option if isinstance(self._voice_option, dict) else {}
        for key in (code, primary):
            if key in overrides:
                return str(overrides[key])
        if code in LANGUAGE_VOICES:
            return LANGUAGE_VOICES[code]
        if code in self._lang_files:  # a regional code or a language outside the verified list
            return code
        if primary in LANGUAGE_VOICES:
            return LANGUAGE_VOICES[primary]
        if primary in self._lang_files:
            return primary
        raise ValueError(f"espeak-ng has no voice for language {language!r}")

    def _voice_file(self, voice: str, variant: str, extra: tuple[str, ...]) -> Path:
        """A voice file = the language's file + the variant's voice lines + `extra`, written once."""
        key = (voice, variant, extra)
        with self._prep_lock:
            return self._files.get(key) or self._write_voice_file(key)

    def _write_voice_file(self, key: tuple[str, str, tuple[str, ...]]) -> Path:
        """Called with `_prep_lock` held."""
        voice, variant, extra = key
        language_file = self._lang_files.get(voice.lower())
        if language_file is None:
            raise ValueError(f"espeak-ng has no language file for voice {voice!r}")
        lines = language_file.read_text(encoding="utf-8", errors="replace").splitlines()
        if variant:
            variant_file = self._espeak.data / "voices" / "!v" / variant
            lines += [line for line in variant_file.read_text(encoding="utf-8", errors="replace").splitlines()
                      if line.split()[:1] not in (["language"], ["name"])]
        lines += ["name emoomni", *extra]
        path = Path(self._tmp.name) / f"voice{len(self._files)}"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._files[key] = path
        return path

    def plan(self, controls: instruction_pb2.AcousticControls, language: str) -> _VoicePlan:
        voice, _, variant = self.voice_for(language).partition("+")
        ignored = self.ignored(controls)
        gender, age, quality = controls.gender_hint, controls.age_hint, controls.voice_quality
        pitch = controls.pitch_scale or 1.0
        if age == "elderly":
            variant = "grandma" if gender == "female" else "grandpa"
        elif age == "child":
            variant = _FEMALE
            pitch *= _CHILD_PITCH
        elif age:
            ignored.append("age_hint")
        if not age:
            if gender == "female":
                variant = variant if variant in _FEMALE_VARIANTS else _FEMALE
            elif gender == "male" and variant in _FEMALE_VARIANTS:
                variant = ""
            elif gender not in ("", "female", "male"):
                ignored.append("gender_hint")
        extra: tuple[str, ...] = ()
        if quality == "whisper":
            variant = "whisperf" if gender == "female" or age == "child" else "whisper"
            if age == "elderly":
                ignored.append("age_hint")
        elif quality == "breathy":
            extra = _BREATHY_LINES
        elif quality not in ("", "modal"):
            ignored.append("voice_quality")
        arousal = _AROUSAL.get(controls.emotion or "neutral")
        if arousal is None:
            ignored.append("emotion")
            arousal = 0.0
        intensity = float(np.clip(controls.intensity, 0.0, 1.0))
        pitch_range = _DEFAULT_RANGE * (1.0 + _RANGE_SPREAD * arousal * intensity)
        rate = controls.rate_scale or 1.0
        energy = controls.energy_scale or 1.0
        return _VoicePlan(
            voice=voice, variant=variant, extra=extra, pitch=pitch_parameter(pitch),
            rate=int(np.clip(round(_DEFAULT_WPM * rate), _MIN_WPM, _MAX_WPM)),
            volume=int(np.clip(round(_BASE_AMPLITUDE * energy), 0, _MAX_AMPLITUDE)),
            pitch_range=int(np.clip(round(pitch_range), 0, 99)), ignored=sorted(set(ignored)))

    # -- text ---------------------------------------------------------------------------------------------

    def _japanese_kana(self, text: str) -> str:
        """espeak-ng reads only kana in Japanese (a kanji is spoken as "Chinese letter"): kanji -> hiragana."""
        if not _KANJI.search(text):
            return text
        with self._prep_lock:
            if self._kakasi is None:
                import pykakasi

                self._kakasi = pykakasi.kakasi()
            return "".join(item["hira"] for item in self._kakasi.convert(text))

    # -- synthesis ----------------------------------------------------------------------------------------

    def synthesize(self, text: str, instruction: instruction_pb2.AcousticInstruction,
                   language: str) -> Iterator[SpokenAudio]:
        plan = self.plan(instruction.controls, language)
        if plan.voice.lower().startswith("ja"):
            text = self._japanese_kana(text)
        voice_file = self._voice_file(plan.voice, plan.variant, plan.extra) if plan.extra else None
        voice_name = self._identifier(plan.voice) + (f"+{plan.variant}" if plan.variant else "")
        for sentence in split_sentences(text):
            # The library is one global synthesiser: hold the lock for voice, parameters and synthesis together,
            # and release it before yielding, so a slow consumer never blocks other requests.
            with _binding.LOCK:
                self._espeak.set_voice(voice_name, voice_file)
                self._espeak.set_parameter(_binding.RATE, plan.rate)
                self._espeak.set_parameter(_binding.VOLUME, plan.volume)
                self._espeak.set_parameter(_binding.PITCH, plan.pitch)
                self._espeak.set_parameter(_binding.RANGE, plan.pitch_range)
                pcm = self._espeak.synth(sentence)
            if pcm.size:
                yield SpokenAudio(pcm16=pcm, sample_rate=self.sample_rate, ignored_controls=plan.ignored)
