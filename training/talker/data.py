"""Talker training data: (instruction, text, audio) triples, one JSON object a line, as EmoOmniPipe's talker.jsonl
writes them:

    {"instruction": "Speak in a soft, encouraging whisper", "text": "That is amazing!", "language": "en",
     "audio": "clips/reply_0001.wav"}

`language` is an ISO 639-1 code (empty or unknown: the model's "auto"); `audio` is the reply as spoken (any format
FFmpeg reads; relative paths from the JSONL's folder). A bad line (not JSON, a missing key or file, audio that
cannot be decoded or is longer than data.max_audio_s) is reported as `file:line: reason`, skipped and counted.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from emoomni.core import media as media_io
from emoomni.core.config import LimitsConfig
from training.common.messages import BadLine, LoadedData, read_lines


class Triple(BaseModel):
    model_config = ConfigDict(extra="ignore")
    instruction: str
    text: str
    audio: str
    language: str = ""

    @field_validator("instruction", "text", "audio")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()


def load_triples(paths: list[str], encode, *, max_audio_s: float, sample_rate: int,
                 what: str = "training") -> LoadedData:
    """Every line checked and encoded: `encode(triple, audio, rate)` turns a checked line into a training sample."""
    limits = LimitsConfig(max_media_bytes=1 << 40, max_media_duration_s=max_audio_s)
    return read_lines(paths, lambda line, folder, _where: _sample(line, folder, encode, limits, sample_rate), what)


def _sample(line: str, folder: Path, encode, limits: LimitsConfig, sample_rate: int):
    try:
        triple = Triple.model_validate(json.loads(line))
    except json.JSONDecodeError as exc:
        raise BadLine(f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadLine(f"{'.'.join(str(p) for p in first['loc']) or 'line'}: {first['msg']}") from exc
    audio = next((p for p in (folder / triple.audio, Path(triple.audio)) if p.expanduser().is_file()), None)
    if audio is None:
        raise BadLine(f"missing audio file: {triple.audio}")
    try:
        decoded = media_io.decode_audio(str(audio), limits, sample_rate)
    except media_io.MediaError as exc:
        raise BadLine(f"{audio.name}: {exc}") from exc
    if decoded.audio.size == 0:
        raise BadLine(f"{audio.name} holds no audio")
    return encode(triple, decoded.audio, sample_rate)
