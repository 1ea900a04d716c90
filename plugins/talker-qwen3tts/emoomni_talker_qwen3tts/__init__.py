"""Qwen3-TTS talker: a neural TTS that reads the acoustic instruction as text ("Speak in a soft, encouraging
whisper"), through the `qwen-tts` package. Weights are not packaged: options["model_path"] names a local copy of a
12 Hz VoiceDesign or CustomVoice checkpoint (config.json, model.safetensors, tokenizer files, generation_config.json
and the speech_tokenizer/ folder, as published)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from emoomni.sdk.talker import CONTROL_NAMES, SpokenAudio, TalkerCapabilities, TalkerOptions, TalkerPlugin
from emoomni.v1 import instruction_pb2

from .compat import QWEN_TTS_VERSION, import_qwen_tts, installed_qwen_tts_version, restore_rotary_tables

# ISO 639-1 -> the language names Qwen3-TTS's codec_language_id uses.
LANGUAGES = {"en": "english", "zh": "chinese", "ja": "japanese", "ko": "korean", "de": "german", "fr": "french",
             "ru": "russian", "pt": "portuguese", "es": "spanish", "it": "italian"}
# Sentence ends, Latin and CJK; the closing punctuation stays with its sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?;。！？；])[\"'”’)\]]*\s+|(?<=[。！？；])")
_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}


class ModelPathError(ValueError):
    """options["model_path"] is missing or does not hold a Qwen3-TTS checkpoint."""


def split_sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(text.strip()) if part and part.strip()]


def _scale_word(value: float, low: str, high: str) -> str | None:
    if value in (0.0, 1.0) or abs(value - 1.0) < 0.05:
        return None
    strength = "slightly " if abs(value - 1.0) < 0.15 else ""
    return f"{strength}{high if value > 1.0 else low}"


def instruction_from_controls(controls: instruction_pb2.AcousticControls) -> str:
    """A short natural-language instruction built from the control set, for requests that carry no text."""
    voice = " ".join(word for word in (controls.age_hint, controls.gender_hint) if word)
    opening = f"Speak as a {voice} speaker" if voice else "Speak"
    emotion = controls.emotion if controls.emotion and controls.emotion != "neutral" else ""
    if emotion:
        intensity = controls.intensity
        degree = "slightly " if 0 < intensity < 0.35 else "very " if intensity > 0.75 else ""
        opening += f" in a {degree}{emotion} tone"
    traits = [word for word in (_scale_word(controls.pitch_scale, "lower-pitched", "higher-pitched"),
                                _scale_word(controls.rate_scale, "slower", "faster"),
                                _scale_word(controls.energy_scale, "softer", "louder")) if word]
    if controls.voice_quality and controls.voice_quality != "modal":
        traits.append(f"with a {controls.voice_quality} voice quality")
    if not emotion and not traits:
        return f"{opening} in a calm, natural and neutral tone."
    return f"{opening}{', ' + ', '.join(traits) if traits else ''}."


def _checkpoint_config(model_path: Any) -> tuple[Path, dict]:
    if not model_path or not str(model_path).strip():
        raise ModelPathError("qwen3-tts talker: options['model_path'] is not set; point it at a local Qwen3-TTS "
                         "12Hz VoiceDesign or CustomVoice checkpoint folder (weights are not downloaded)")
    path = Path(str(model_path)).expanduser()
    if not path.is_dir():
        raise ModelPathError(f"qwen3-tts talker: model_path {path} is not a folder")
    missing = [name for name in ("config.json", "generation_config.json", "speech_tokenizer/config.json")
               if not (path / name).is_file()]
    if missing:
        raise ModelPathError(f"qwen3-tts talker: {path} is not a Qwen3-TTS checkpoint (missing {', '.join(missing)})")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelPathError(f"qwen3-tts talker: cannot read {path / 'config.json'}: {error}") from error
    if config.get("model_type") != "qwen3_tts":
        raise ModelPathError(f"qwen3-tts talker: {path} holds a {config.get('model_type')!r} model, "
                             "not a Qwen3-TTS ('qwen3_tts') one")
    kind = config.get("tts_model_type")
    if kind not in ("voice_design", "custom_voice"):
        raise ModelPathError(f"qwen3-tts talker: {path} is a {kind!r} model; this talker needs a VoiceDesign or "
                             "CustomVoice checkpoint (Base models clone a voice from reference audio instead)")
    if config.get("tokenizer_type") not in (None, "qwen3_tts_tokenizer_12hz"):
        raise ModelPathError(f"qwen3-tts talker: {path} uses the {config.get('tokenizer_type')!r} speech tokenizer; "
                             "only 12 Hz checkpoints are supported")
    return path, config


def merge_adapter(talker, adapter_path: str):
    """The talker with a trained LoRA adapter merged into its weights (no cost per sentence afterwards)."""
    from peft import PeftModel

    path = Path(adapter_path).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise ModelPathError(f"qwen3-tts talker: adapter_path {path} holds no LoRA adapter (adapter_config.json)")
    return PeftModel.from_pretrained(talker, str(path)).merge_and_unload()


class Qwen3TTSOptions(TalkerOptions):
    model_path: str | None = Field(default=None, description="a local 12 Hz VoiceDesign or CustomVoice checkpoint")
    device: str = Field(default="cpu", description="torch device")
    dtype: str | None = Field(default=None, description="float32 (default on CPU), bfloat16 (default elsewhere), "
                              "float16")
    speaker: str = Field(default="", description="CustomVoice models: the speaker; empty: the first listed")
    max_new_tokens: int = Field(default=1024, ge=1, description="per sentence (1024 is ~85 s of 12 Hz codes)")
    do_sample: bool | None = Field(default=None, description="default: the checkpoint's generation_config.json")
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = Field(default=None, description="set: the same text and instruction give the same audio")
    adapter_path: str = Field(default="", description="a LoRA adapter folder `emoomni train talker` wrote "
                              "(OUT/final), merged into the talker at load; empty: none")


class Qwen3TTSTalker(TalkerPlugin):
    """Options: model_path (required), device ("cpu"), dtype ("float32" on CPU, else "bfloat16"), speaker (CustomVoice
    models; default: the first listed), max_new_tokens per sentence (default 1024, ~85 s of 12 Hz codes),
    do_sample/temperature/top_k/top_p (defaults from the checkpoint's generation_config.json), seed, adapter_path
    (a LoRA adapter from `emoomni train talker`)."""

    name = "qwen3-tts"
    Options = Qwen3TTSOptions
    # Everything is asked for in words, so every control is honoured as far as the model follows instructions.
    # Audio comes per sentence: qwen-tts returns a sentence's waveform only once its codes are all generated.
    capabilities = TalkerCapabilities(languages=list(LANGUAGES), streaming=False, controls=list(CONTROL_NAMES),
                                      reads_instruction_text=True,
                                      license="Apache-2.0 (qwen-tts package and Qwen3-TTS weights)")

    @classmethod
    def test_options(cls, workdir: Path) -> dict[str, Any]:
        """No weights are packaged: a tiny random checkpoint of the real architecture (see tiny.py)."""
        from .tiny import write_tiny_checkpoint

        write_tiny_checkpoint(workdir)
        return {"model_path": str(workdir), "max_new_tokens": 6, "seed": 0}

    def load(self) -> None:
        import torch

        path, config = _checkpoint_config(self.options.model_path)
        version = installed_qwen_tts_version()
        if version is None:
            raise RuntimeError("qwen3-tts talker: the qwen-tts package is not installed")
        if version != QWEN_TTS_VERSION:
            import warnings

            warnings.warn(f"qwen3-tts talker: written for qwen-tts {QWEN_TTS_VERSION}, found {version}", stacklevel=2)
        qwen_tts = import_qwen_tts()

        device = str(self.options.device or "cpu")
        dtype_name = str(self.options.dtype or ("float32" if device == "cpu" else "bfloat16")).lower()
        if dtype_name not in _DTYPES:
            raise ValueError(f"qwen3-tts talker: unknown dtype {dtype_name!r} (use one of {sorted(set(_DTYPES))})")
        dtype = getattr(torch, _DTYPES[dtype_name])
        try:
            engine = qwen_tts.Qwen3TTSModel.from_pretrained(str(path), dtype=dtype, local_files_only=True)
        except (OSError, ValueError, KeyError) as error:
            raise ModelPathError(f"qwen3-tts talker: cannot load the checkpoint in {path}: {error}") from error
        if self.options.adapter_path:
            engine.model.talker = merge_adapter(engine.model.talker, self.options.adapter_path)
        engine.model.to(device).eval()
        engine.model.speech_tokenizer.model.to(device).eval()
        restore_rotary_tables(engine.model)
        restore_rotary_tables(engine.model.speech_tokenizer.model)
        engine.model.speech_tokenizer.device = engine.device = torch.device(device)
        self.engine = engine
        self.kind = config["tts_model_type"]
        self.sample_rate = int(engine.model.speech_tokenizer.get_output_sample_rate())
        self.model_languages = {str(name).lower() for name in engine.model.get_supported_languages()}
        speakers = sorted(str(name) for name in (engine.model.get_supported_speakers() or []))
        self.speaker = str(self.options.speaker or (speakers[0] if speakers else ""))
        if self.kind == "custom_voice" and self.speaker.lower() not in {s.lower() for s in speakers}:
            raise ValueError(f"qwen3-tts talker: speaker {self.speaker!r} is not in this model ({', '.join(speakers)})")
        # qwen-tts drops the instruction for the 0.6B CustomVoice model, which was not trained with one.
        if self.kind == "custom_voice" and str(engine.model.tts_model_size) in "0b6":
            self.capabilities = type(self).capabilities.model_copy(
                update={"controls": [], "reads_instruction_text": False})
        self.generate_options = self.options.model_dump(
            include={"do_sample", "temperature", "top_k", "top_p", "repetition_penalty"}, exclude_none=True)
        self.generate_options["max_new_tokens"] = self.options.max_new_tokens
        self.seed = self.options.seed

    def finetune(self):
        """The model-specific half of `emoomni train talker` (samples and the training loss), for a loaded talker."""
        from .finetune import TalkerFinetune

        return TalkerFinetune(self.engine)

    def instruction_text(self, instruction: instruction_pb2.AcousticInstruction) -> str:
        return instruction.text.strip() or instruction_from_controls(instruction.controls)

    def synthesize(self, text: str, instruction: instruction_pb2.AcousticInstruction,
                   language: str) -> Iterator[SpokenAudio]:
        import torch

        language_name = LANGUAGES.get((language or "").split("-")[0].lower(), "auto")
        if language_name not in self.model_languages:
            language_name = "auto"
        instruct = self.instruction_text(instruction)
        ignored = self.ignored(instruction.controls)
        for sentence in split_sentences(text):
            if self.seed is not None:
                torch.manual_seed(self.seed)
            if self.kind == "voice_design":
                wavs, rate = self.engine.generate_voice_design(text=sentence, instruct=instruct,
                                                               language=language_name, **self.generate_options)
            else:
                wavs, rate = self.engine.generate_custom_voice(text=sentence, speaker=self.speaker,
                                                               instruct=instruct, language=language_name,
                                                               **self.generate_options)
            samples = np.nan_to_num(np.asarray(wavs[0], dtype=np.float32).reshape(-1))
            pcm16 = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
            yield SpokenAudio(pcm16=pcm16, sample_rate=int(rate), ignored_controls=ignored)
