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
import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from emoomni.core import media as media_io
from emoomni.core.config import LimitsConfig
from training.common.messages import BadLine
from training.common.run import sha256

log = logging.getLogger(__name__)


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


def load_triples(paths: list[str], encode, *, max_audio_s: float, sample_rate: int, what: str = "training"):
    """(samples, per-file summaries). `encode(triple, audio, rate)` turns a checked line into a training sample."""
    if not paths:
        raise BadLine(f"no {what} data given (--data FILE.jsonl, or data.train in the config)")
    limits = LimitsConfig(max_media_bytes=1 << 40, max_media_duration_s=max_audio_s)
    samples, files = [], []
    for name in paths:
        path = Path(name).expanduser()
        if not path.is_file():
            raise BadLine(f"no such data file: {path}")
        summary = {"path": str(path.resolve()), "sha256": sha256(path), "lines": 0, "kept": 0, "skipped": 0,
                   "reasons": []}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            summary["lines"] += 1
            try:
                samples.append(_sample(line, path.parent, encode, limits, sample_rate))
                summary["kept"] += 1
            except BadLine as exc:
                summary["skipped"] += 1
                summary["reasons"].append(f"{path}:{number}: {exc}")
                log.warning("%s:%d: %s (skipped)", path, number, exc)
        files.append(summary)
    if not samples:
        raise BadLine(f"none of the {sum(f['lines'] for f in files)} {what} line(s) is usable: "
                      + "; ".join(r for f in files for r in f["reasons"][:5]))
    return samples, files


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
