"""Training data in the ms-swift "messages" JSONL format, the one the paper's own training script reads and
EmoOmniPipe exports:

    {"messages": [{"role": "system", "content": "..."},
                  {"role": "user", "content": "<video>What does she feel?"},
                  {"role": "assistant", "content": "<emotion>...</emotion>\\n<intent>...</intent>\\n..."}],
     "videos": ["clips/a.mp4"], "audios": [], "images": []}

`<video>`, `<audio>` and `<image>` in system and user turns stand for the next file of that list, in order.
Relative paths are read from the JSONL file's folder (then from the current folder). Every assistant turn is a
training target.

A bad line never stops a run: it is reported as `file:line: reason`, skipped and counted (a missing file, an
unknown placeholder, placeholders and files that do not pair up, a target that does not parse into the four
E-CoT parts, or whatever the trainer's own check refuses, such as a sample over the length cap).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from emoomni.services.reasoning.backends.omni_backend import PART_TAGS, parse_tagged_parts
from training.common.run import sha256

log = logging.getLogger(__name__)

MEDIA_KINDS = {"video": "videos", "audio": "audios", "image": "images"}
# Tags a prompt may name without being a placeholder: the E-CoT answer format it asks for.
ANSWER_TAGS = {tag for _, tag in PART_TAGS}
_PLACEHOLDER = re.compile(r"<([A-Za-z_][\w-]*)>")


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str


class Record(BaseModel):
    """One JSONL line. Other keys ms-swift knows (tools, objects, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")
    messages: list[Message]
    videos: list[str] = []
    audios: list[str] = []
    images: list[str] = []


@dataclass
class Sample:
    messages: list[dict]
    videos: list[Path] = field(default_factory=list)
    audios: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    source: str = ""  # file:line, for messages about this sample

    def media(self, kind: str) -> list[Path]:
        return getattr(self, MEDIA_KINDS[kind])


class BadLine(ValueError):
    """One data line cannot be used; the message says why."""


def ecot_parts(answer: str) -> dict[str, str]:
    """The four parts of a tagged E-CoT answer, exactly as the omni backend parses them; BadLine otherwise."""
    try:
        pieces = list(parse_tagged_parts(iter([answer.strip()])))
    except RuntimeError as exc:  # the serving parser's words, said of a data line
        why = str(exc).split(" (raise")[0].replace("the omni model stopped", "it stops")
        why = why.replace("the omni model's output broke", "it breaks")
        raise BadLine(f"the answer does not parse into the four E-CoT parts ({why})") from exc
    parts = {part: "" for part, _ in PART_TAGS}
    for piece in pieces:
        parts[piece.part] += piece.text
    return parts


def _resolve(name: str, folder: Path) -> Path | None:
    for candidate in (folder / name, Path(name)):
        if candidate.expanduser().is_file():
            return candidate.expanduser().resolve()
    return None


def parse_line(text: str, folder: Path, *, target: str, media_allowed: bool = True) -> Sample:
    """Validate one JSONL line; raises BadLine with the reason."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadLine(f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
    try:
        record = Record.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadLine(f"{'.'.join(str(p) for p in first['loc']) or 'line'}: {first['msg']}") from exc
    if not record.messages or record.messages[-1].role != "assistant":
        raise BadLine("the last message must be the assistant's answer (the training target)")
    counts = dict.fromkeys(MEDIA_KINDS, 0)
    for message in record.messages:
        for name in _PLACEHOLDER.findall(message.content):
            if message.role == "assistant":
                if name in MEDIA_KINDS:
                    raise BadLine(f"a <{name}> placeholder in an assistant answer")
                continue
            if name in ANSWER_TAGS:
                continue
            if name not in MEDIA_KINDS:
                raise BadLine(f"unknown placeholder <{name}> in a {message.role} message "
                              f"(known: {', '.join(f'<{k}>' for k in MEDIA_KINDS)})")
            counts[name] += 1
    sample = Sample(messages=[m.model_dump() for m in record.messages])
    for kind, key in MEDIA_KINDS.items():
        names = getattr(record, key)
        if counts[kind] != len(names):
            raise BadLine(f"{counts[kind]} <{kind}> placeholder(s) but {len(names)} file(s) in {key!r}")
        if names and not media_allowed:
            raise BadLine(f"this trainer reads text only, but the line has {key}")
        for index, name in enumerate(names):
            path = _resolve(name, folder)
            if path is None:
                raise BadLine(f"missing file {key}[{index}]: {name}")
            sample.media(kind).append(path)
    if target == "ecot":
        for message in record.messages:
            if message.role == "assistant":
                ecot_parts(message.content)
    return sample


@dataclass
class LoadedData:
    samples: list[Sample]
    files: list[dict]  # per file: path, sha256, lines, kept, skipped, reasons

    @property
    def skipped(self) -> int:
        return sum(f["skipped"] for f in self.files)


def load_jsonl(paths: list[str | Path], *, target: str, media_allowed: bool = True,
               check: Callable[[Sample], str | None] | None = None, what: str = "training") -> LoadedData:
    """Read every messages line of every file; bad lines are logged (`file:line: reason`), skipped and counted.

    `target` is "ecot" (answers must be the four tagged parts) or "free". `check` is the trainer's own test of a
    parsed sample (e.g. the token length cap); it returns a reason to skip, or None.
    """
    def parse(line: str, folder: Path, where: str) -> Sample:
        sample = parse_line(line, folder, target=target, media_allowed=media_allowed)
        sample.source = where
        reason = check(sample) if check else None
        if reason:
            raise BadLine(reason)
        return sample

    return read_lines(paths, parse, what)


def read_lines(paths: list[str | Path], parse: Callable[[str, Path, str], object], what: str = "training"
               ) -> LoadedData:
    """Every non-empty line of every JSONL file through `parse(line, the file's folder, "file:line")`, which
    returns a sample or raises BadLine: that line is logged, skipped and counted. BadLine if no line is usable."""
    if not paths:
        raise BadLine(f"no {what} data given (--data FILE.jsonl, or data.train in the config)")
    samples, files = [], []
    for name in paths:
        path = Path(name).expanduser()
        if not path.is_file():
            raise BadLine(f"no such data file: {path}")
        summary = {"path": str(path.resolve()), "sha256": sha256(path), "lines": 0, "kept": 0, "skipped": 0,
                   "reasons": []}
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                summary["lines"] += 1
                where = f"{path}:{number}"
                try:
                    samples.append(parse(line, path.parent, where))
                except BadLine as exc:
                    summary["skipped"] += 1
                    summary["reasons"].append(f"{where}: {exc}")
                    log.warning("%s: %s (skipped)", where, exc)
                    continue
                summary["kept"] += 1
        files.append(summary)
    loaded = LoadedData(samples=samples, files=files)
    if not samples:
        raise BadLine(f"none of the {sum(f['lines'] for f in files)} {what} line(s) is usable: "
                      + "; ".join(r for f in files for r in f["reasons"][:5]))
    return loaded


def file_summaries(*loaded: LoadedData | None) -> list[dict]:
    """The per-file summaries of every loaded set (for the run folder's data.json)."""
    return [summary for data in loaded if data for summary in data.files]
