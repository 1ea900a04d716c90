"""The run folder: everything needed to know later what a set of weights was trained from.

    OUT/config.yaml     the resolved config (file + --set + command-line options)
    OUT/run.json        git commit (and whether the tree had uncommitted changes), command line, versions, device
    OUT/data.json       every data file with its SHA-256, lines read, samples kept and lines skipped (with why)
    OUT/metrics.jsonl   one JSON object per logged step and per evaluation
    OUT/checkpoints/    resumable checkpoints (checkpoint-STEP: weights, optimizer, scheduler, RNG)
    OUT/final/          what the service loads

A second start on the same folder must say `--resume latest` and must use the same config and data: a
resumed run that silently trained on something else would not be the run its folder describes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import yaml

from training.common.config import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONED = ("torch", "transformers", "peft", "accelerate", "gguf", "llama-cpp-python")


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_state(root: Path = REPO_ROOT) -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _versions() -> dict:
    found = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


class RunFolder:
    def __init__(self, out: str | Path, config: dict, data: list[dict], resume: bool):
        """Create (or, with `resume`, reopen) the run folder for `config` and the data summaries `data`."""
        self.out = Path(out)
        self.checkpoints = self.out / "checkpoints"
        self.final = self.out / "final"
        config_file, data_file = self.out / "config.yaml", self.out / "data.json"
        if resume:
            if not config_file.is_file():
                raise ConfigError(f"--resume: {self.out} holds no run to resume (no config.yaml)")
            before = yaml.safe_load(config_file.read_text(encoding="utf-8"))
            if before != config:
                changed = sorted(k for k in set(before) | set(config) if before.get(k) != config.get(k))
                raise ConfigError(f"--resume: the config differs from the run's in {', '.join(changed)}; "
                                  "resume with the same config or start a new --out")
            stored = {d["path"]: d["sha256"] for d in json.loads(data_file.read_text(encoding="utf-8"))["files"]}
            now = {d["path"]: d["sha256"] for d in data}
            if stored != now:
                raise ConfigError("--resume: the data files changed since the run started; start a new --out")
        elif self.checkpoints.is_dir() and any(self.checkpoints.iterdir()):
            raise ConfigError(f"{self.out} already holds a run; pass --resume latest or choose another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        config_file.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
        data_file.write_text(json.dumps({"files": data}, indent=2, ensure_ascii=False), encoding="utf-8")
        runs = []
        run_file = self.out / "run.json"
        if resume and run_file.is_file():
            runs = json.loads(run_file.read_text(encoding="utf-8"))["starts"]
        runs.append({"started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "argv": sys.argv,
                     "resume": resume, **git_state(), "python": platform.python_version(),
                     "versions": _versions()})
        run_file.write_text(json.dumps({"starts": runs}, indent=2), encoding="utf-8")

    def log(self, record: dict) -> None:
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def truncate_metrics(self, step: int) -> None:
        """Drop records logged after `step` (a resumed run trains those steps again)."""
        kept = [r for r in self.metrics() if r.get("step", 0) <= step]
        (self.out / "metrics.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept),
                                                encoding="utf-8")

    def metrics(self) -> list[dict]:
        path = self.out / "metrics.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def latest_checkpoint(self) -> Path | None:
        found = sorted(self.checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
        return found[-1] if found else None
