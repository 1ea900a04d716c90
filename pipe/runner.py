"""The stage loop: which items each stage still owes (from the manifest), running them on the executor, recording
each result at once, and the run's summary. Resume is simply running again: done work is found in the manifest."""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from emoomni.core.config import StackConfig
from emoomni.pipe.config import PipeConfig
from emoomni.pipe.manifest import Manifest
from emoomni.pipe.stage import LAST_ATTEMPT, Stage, config_hash, sha256_file
from emoomni.pipe.stages import (
    CaptionStage,
    ClipStage,
    DenoiseStage,
    DialogueStage,
    DiarizeStage,
    EcotStage,
    FilterStage,
    IngestStage,
    TranscribeStage,
)

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".flv", ".ts", ".mpg", ".mpeg"}


def find_inputs(paths: list[str | Path], skip: Path | None = None) -> list[Path]:
    """Files as given; folders searched recursively for video files, except under `skip` (the output folder, whose
    clips must not become inputs). Missing paths raise FileNotFoundError."""
    found: list[Path] = []
    skip = skip.resolve() if skip else None
    for name in paths:
        path = Path(name).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                            and not (skip and p.resolve().is_relative_to(skip)))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return list(dict.fromkeys(p.resolve() for p in found))


def build_stages(cfg: PipeConfig, out_dir: Path, stack: StackConfig | None = None) -> list[Stage]:
    """The stages in order; `denoise` only when enabled (so that turning it on re-runs the speech stages, and runs
    without it keep their manifest keys)."""
    stack, n = stack or StackConfig(), cfg.threads
    denoise = [DenoiseStage(cfg.denoise, out_dir)] if cfg.denoise.enabled else []
    return [IngestStage(cfg.ingest, out_dir), *denoise,
            TranscribeStage(cfg.transcribe, out_dir, stack.perception.asr, n),
            DiarizeStage(cfg.diarize, out_dir, n), ClipStage(cfg.clip, out_dir),
            CaptionStage(cfg.caption, out_dir, stack.perception, n, cfg.captioner),
            DialogueStage(cfg.dialogue, out_dir), FilterStage(cfg.dialogue, out_dir, cfg.llm, n),
            EcotStage(cfg.ecot, out_dir, cfg.llm, stack.instruction, n)]


@dataclass
class StageSummary:
    name: str
    items_in: int = 0
    done_before: int = 0
    ok: int = 0
    outputs: int = 0
    dropped: Counter = field(default_factory=Counter)
    transient: Counter = field(default_factory=Counter)
    seconds: float = 0.0  # model and processing time of this run's items (summed over workers)
    wall_s: float = 0.0


@dataclass
class RunSummary:
    run_id: str
    stages: list[StageSummary]
    outputs: dict[str, list[dict]]
    wall_s: float = 0.0

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "wall_s": round(self.wall_s, 2), "stages": [
            {"stage": s.name, "items_in": s.items_in, "done_before": s.done_before, "ok": s.ok, "outputs": s.outputs,
             "dropped": dict(s.dropped), "transient": dict(s.transient), "seconds": round(s.seconds, 2),
             "wall_s": round(s.wall_s, 2)} for s in self.stages]}

    def table(self) -> str:
        lines = [f"{'stage':<11}{'in':>6}{'earlier':>9}{'ok':>6}{'out':>6}{'dropped':>9}{'retry':>7}{'time s':>9}"]
        for s in self.stages:
            lines.append(f"{s.name:<11}{s.items_in:>6}{s.done_before:>9}{s.ok:>6}{s.outputs:>6}"
                         f"{sum(s.dropped.values()):>9}{sum(s.transient.values()):>7}{s.wall_s:>9.1f}")
        for s in self.stages:
            for reason, n in s.dropped.most_common(5):
                lines.append(f"  dropped at {s.name}: {n} x {reason}")
            for reason, n in s.transient.most_common(5):
                lines.append(f"  to retry at {s.name}: {n} x {reason}")
        return "\n".join(lines)


def _group(items: list[dict], key: str) -> list[dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for item in items:
        groups[item[key]].append(item)
    return [{"id": f"{value}-g{config_hash(sorted(m['id'] for m in members))[:8]}", "kind": "group", key: value,
             "source": members[0].get("source", ""), "source_sha256": members[0].get("source_sha256", ""),
             "members": sorted(members, key=lambda m: m["id"])} for value, members in sorted(groups.items())]


def _provenance(item: dict, stage: Stage, config: dict, chain: str) -> dict:
    record = {"stage": stage.name, "chain": chain, "config": config,
              "source": item.get("source") or item.get("path", ""),
              "source_sha256": item.get("source_sha256") or item.get("sha256", "")}
    if "start_s" in item:
        record["time_range_s"] = [item["start_s"], item["end_s"]]
    return record


class Pipeline:
    def __init__(self, cfg: PipeConfig, out_dir: str | Path, executor, stack: StackConfig | None = None,
                 stages: list[Stage] | None = None, progress: bool | None = None):
        self.cfg = cfg
        self.out_dir = Path(out_dir).resolve()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.stages = stages or build_stages(cfg, self.out_dir, stack)
        for stage in self.stages:  # stages (with loaded models) may be reused for another output folder
            stage.out_dir = self.out_dir
        self.executor = executor
        self.progress = sys.stderr.isatty() if progress is None else progress

    def run(self, inputs: list[str | Path]) -> RunSummary:
        start = time.perf_counter()
        run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        manifest = Manifest(self.out_dir / "manifest.sqlite", self.cfg.max_attempts)
        items = []
        for path in find_inputs(inputs, skip=self.out_dir):
            digest = sha256_file(path)
            items.append({"id": digest[:16], "kind": "video", "path": str(path), "sha256": digest})
        items = list({item["id"]: item for item in items}.values())  # the same content given twice is one input
        summaries, outputs, chain = [], {}, ""
        try:
            for stage in self.stages:
                stage_start = time.perf_counter()
                config = stage.config()
                chain = config_hash([chain, stage.name, config])
                inputs_now = _group(items, stage.group_by) if stage.group_by else items
                summary = StageSummary(stage.name, items_in=len(inputs_now))
                todo = [{**item, LAST_ATTEMPT: manifest.attempts_failed(stage.name, item["id"], chain) + 1
                         >= self.cfg.max_attempts}
                        for item in inputs_now if manifest.todo(stage.name, item["id"], chain)]
                summary.done_before = len(inputs_now) - len(todo)
                bar = None
                if self.progress and todo:
                    from tqdm import tqdm

                    bar = tqdm(total=len(todo), desc=stage.name, unit="item", leave=True)
                for item, result in self.executor.map(stage, todo):
                    manifest.record(stage.name, item["id"], chain, result, _provenance(item, stage, config, chain),
                                    run_id)
                    summary.seconds += result.seconds
                    if bar:
                        bar.update(1)
                if bar:
                    bar.close()
                items = []
                for item in inputs_now:
                    record = manifest.get(stage.name, item["id"], chain)
                    status = record["status"] if record else "transient"
                    if status == "ok":
                        summary.ok += 1
                        items += record["outputs"]
                    elif status == "dropped":
                        summary.dropped[record["reason"]] += 1
                    else:
                        summary.transient[record["reason"] if record else "not run"] += 1
                summary.outputs = len(items)
                summary.wall_s = time.perf_counter() - stage_start
                outputs[stage.name] = items
                summaries.append(summary)
        finally:
            manifest.close()
        return RunSummary(run_id, summaries, outputs, time.perf_counter() - start)
