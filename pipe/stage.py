"""The stage contract: a small class with a name, declared resources, a `setup` that loads its model once per worker,
and a `process` that turns one item into zero or more output items.

Items are plain JSON-able dicts with an ``id`` (they travel through the manifest and between Ray workers). A stage says
how an item ended by what `process` does: it returns a `Result` (ok, with the output items and the files it wrote),
raises `Drop` (a permanent verdict on this input: recorded with its reason, never retried), or raises anything else
(transient: recorded and retried on the next run, up to a limit).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

Status = Literal["ok", "dropped", "transient"]
LAST_ATTEMPT = "_last_attempt"


class Drop(Exception):
    """This input can never give output for this stage (unreadable, no speech, filtered out): the message says why."""


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage holds: the Ray executor reserves this much per actor."""

    cpus: float = 1.0
    gpus: float = 0.0


@dataclass
class Result:
    status: Status
    outputs: list[dict] = field(default_factory=list)
    reason: str = ""
    files: dict[str, str] = field(default_factory=dict)  # path relative to the output folder -> sha256
    seconds: float = 0.0


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def config_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def temp_path(path: Path) -> Path:
    """A sibling name for writing `path` atomically (write there, then os.replace): keeps the extension, so that
    muxers that pick the format by name still do."""
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


class Stage:
    """One step of the pipeline. Subclasses set `name`, `resources`, and implement `process`; `setup` loads models.

    `group_by`: when set, the stage sees one item per value of that key, holding every input item with it in
    ``members`` (e.g. all utterances of one chunk, for dialogue segmentation)."""

    name: ClassVar[str]
    resources: ClassVar[Resources] = Resources()
    group_by: ClassVar[str | None] = None

    def __init__(self, settings: Any, out_dir: Path):
        self.settings = settings
        self.out_dir = Path(out_dir)
        self._ready = False

    def config(self) -> dict:
        """What decides this stage's output besides its input (settings, model names and versions): its hash keys the
        manifest, so changing it re-runs this stage and the ones after it."""
        return {"settings": self.settings.model_dump() if hasattr(self.settings, "model_dump") else self.settings}

    def setup(self) -> None:
        """Load models; called once per worker before its first item."""

    def ensure_setup(self) -> None:
        if not self._ready:
            self.setup()
            self._ready = True

    def process(self, item: dict) -> Result:
        raise NotImplementedError

    def run_one(self, item: dict) -> Result:
        """`process` with the verdict taken from how it ended, timed. Never raises (but KeyboardInterrupt).

        The runner marks an item's last allowed attempt (`LAST_ATTEMPT`); the mark is taken off before `process` and
        left in `self.last_attempt`, for stages with a fallback that beats giving up (an item run outside the runner
        counts as its last attempt)."""
        start = time.perf_counter()
        item = dict(item)
        self.last_attempt = bool(item.pop(LAST_ATTEMPT, True))
        try:
            self.ensure_setup()
            result = self.process(item)
        except Drop as exc:
            result = Result("dropped", reason=str(exc) or "dropped")
        except Exception as exc:
            result = Result("transient", reason=f"{type(exc).__name__}: {exc}"[:500])
        result.seconds = time.perf_counter() - start
        return result

    def __getstate__(self) -> dict:
        """Workers get the stage unloaded (settings only) and load their own models."""
        state = {k: v for k, v in self.__dict__.items() if k in ("settings", "out_dir")}
        state["_ready"] = False
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    # -- helpers for stages that write files -------------------------------------------------------------------
    def finish_file(self, tmp: Path, final: Path, files: dict[str, str]) -> None:
        """Move a fully written temp file into place and note it (relative path -> sha256) for the manifest."""
        os.replace(tmp, final)
        files[str(final.relative_to(self.out_dir))] = sha256_file(final)
