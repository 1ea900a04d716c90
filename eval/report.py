"""report.json (per item, and means with 95% confidence intervals), report.md laid out like the paper's
Table 1, PNG plots, and `compare` for two runs. A metric nobody measured is reported as "not judged" or
"not measured", never as a number."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats

from emoomni.core.registry import STAGES
from emoomni.eval.judges import JUDGE_METRICS, Judgment

OBJECTIVE_METRICS = ("WER", "CER", "acoustic_following", "UTMOS", "first_audio_ms", "latency")
LOWER_IS_BETTER = {"WER", "CER", "first_audio_ms", "latency"}
CI_METHOD = "two-sided 95% Student-t interval of the mean (scipy.stats.t), n >= 2"


class MetricSummary(BaseModel):
    status: Literal["measured", "not judged", "not measured"]
    n: int = 0
    mean: float | None = None
    ci95: tuple[float, float] | None = None
    failures: int = 0  # judge failures (malformed output after retries); they count in no mean


class ItemReport(BaseModel):
    id: str
    group: str
    language: str = ""
    status: Literal["done", "failed"]
    error: str = ""
    metrics: dict[str, float | None] = Field(default_factory=dict)
    judgments: list[Judgment] = Field(default_factory=list)
    objective: dict | None = None
    stage_spans: list[dict] = Field(default_factory=list)


class RunInfo(BaseModel):
    label: str
    manifest: str
    created: str
    agent: str  # "embedded" or the remote address
    judge: str | None  # the judge spec's label, or None when not judged
    judge_inputs: str | None = None  # "text-only" or the media it took
    rubric: str | None = None
    acoustic_reference: str
    ci_method: str = CI_METHOD
    items_in_manifest: int
    items_done: int
    items_failed: int


class Report(BaseModel):
    run: RunInfo
    metrics: list[str]
    summary: dict[str, dict[str, MetricSummary]]  # group ("all", "MELD", ...) -> metric -> summary
    latency_stages_ms: dict[str, dict[str, float | None]]  # group -> stage -> mean duration
    items: list[ItemReport]
    manifest_errors: list[str] = Field(default_factory=list)


def summarise(values: list[float], failures: int = 0, unmeasured: str = "not measured") -> MetricSummary:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return MetricSummary(status=unmeasured, failures=failures)
    mean = float(np.mean(values))
    ci = None
    if len(values) >= 2:
        sem = stats.sem(values)
        if sem == 0:
            ci = (mean, mean)
        else:
            low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem)
            ci = (round(float(low), 4), round(float(high), 4))
    return MetricSummary(status="measured", n=len(values), mean=round(mean, 4), ci95=ci, failures=failures)


def item_metrics(judgments: list[Judgment], objective: dict | None) -> dict[str, float | None]:
    out: dict[str, float | None] = dict.fromkeys((*JUDGE_METRICS, *OBJECTIVE_METRICS))
    for j in judgments:
        for metric, score in j.scores.items():
            out[metric] = None if score is None else float(score)
    if objective:
        out[objective["error_metric"]] = objective.get("error_rate")
        out["acoustic_following"] = objective.get("acoustic_following")
        out["UTMOS"] = objective.get("utmos")
        out["first_audio_ms"] = objective["latency_ms"].get("first_audio")
        out["latency"] = objective["latency_ms"].get("total")
    return out


def build_report(run: RunInfo, items: list[ItemReport], manifest_errors: list[str]) -> Report:
    groups = {"all": [i for i in items if i.status == "done"]}
    for item in items:
        if item.status == "done":
            groups.setdefault(item.group, []).append(item)
    summary, stages = {}, {}
    judged = run.judge is not None
    for group, members in groups.items():
        summary[group] = {}
        for metric in (*JUDGE_METRICS, *OBJECTIVE_METRICS):
            failures = sum(1 for i in members for j in i.judgments if j.status == "failed" and metric in j.scores)
            unmeasured = "not judged" if metric in JUDGE_METRICS and not judged else "not measured"
            summary[group][metric] = summarise([i.metrics.get(metric) for i in members], failures, unmeasured)
        stages[group] = {}
        for stage in STAGES:
            values = [i.objective["latency_ms"].get(stage) for i in members if i.objective]
            values = [v for v in values if v]
            stages[group][stage] = round(float(np.mean(values)), 1) if values else None
    return Report(run=run, metrics=[*JUDGE_METRICS, *OBJECTIVE_METRICS], summary=summary,
                  latency_stages_ms=stages, items=items, manifest_errors=manifest_errors)


# ---------------------------------------------------------------- markdown


def _cell(s: MetricSummary | None, digits: int = 2, percent: bool = False) -> str:
    if s is None or s.status != "measured":
        return "not judged" if s is not None and s.status == "not judged" else "n/m"
    scale = 100 if percent else 1
    text = f"{s.mean * scale:.{digits}f}"
    if s.ci95 is not None:
        text += f" ± {(s.ci95[1] - s.ci95[0]) / 2 * scale:.{digits}f}"
    if s.failures:
        text += f" ({s.failures} failed)"
    return text


def _data_groups(report: Report) -> list[str]:
    groups = [g for g in report.summary if g != "all"]
    return groups if len(groups) > 1 else groups or ["all"]


def render_markdown(report: Report) -> str:
    run = report.run
    groups = _data_groups(report)
    lines = [f"# EmoOmniEval: {run.label}", "",
             f"Manifest `{run.manifest}`, {run.items_done} of {run.items_in_manifest} items scored "
             f"({run.items_failed} failed), agent: {run.agent}, created {run.created}.", ""]
    if run.judge:
        lines.append(f"Judge: `{run.judge}`, rubric {run.rubric}, inputs: **{run.judge_inputs}**.")
        if run.judge_inputs == "text-only":
            lines.append("The judge could not take video or audio: it read the agent's own perception transcript "
                         "and cues for the clip, and the Whisper transcript plus measured delivery for the spoken "
                         "reply. Such scores are not comparable with an omni judge's.")
    else:
        lines.append("No judge was given: the judge metrics are **not judged** (no numbers are invented).")
    lines += ["", "## Judge metrics (0-2, mean ± half-width of the 95% CI)", ""]
    header = ["Model/Metrics"] + [f"{g} {m} ↑" for g in groups for m in
                                  ("VS-RES", "VS-RC", "VT-EA", "VT-RES", "VT-RC", "IF")]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    row = [run.label] + [_cell(report.summary[g].get(m)) for g in groups
                         for m in ("VS-RES", "VS-RC", "VT-EA", "VT-RES", "VT-RC", "IF")]
    lines += ["| " + " | ".join(row) + " |", "", "## Objective metrics", ""]
    header = ["Model/Metrics"] + [f"{g} {name}" for g in groups for name in
                                  ("WER ↓ (%)", "CER ↓ (%)", "acoustic following ↑ (%)", "UTMOS ↑",
                                   "first audio ↓ (ms)", "latency ↓ (ms)")]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    row = [run.label]
    for g in groups:
        s = report.summary[g]
        row += [_cell(s["WER"], 1, True), _cell(s["CER"], 1, True), _cell(s["acoustic_following"], 0, True),
                _cell(s["UTMOS"]), _cell(s["first_audio_ms"], 0), _cell(s["latency"], 0)]
    lines += ["| " + " | ".join(row) + " |", "",
              f"Acoustic following: share of the pitch/loudness/rate directions asked for by the instruction "
              f"controls that the reply met, against a {run.acoustic_reference}. n/m = not measured. "
              f"CI: {run.ci_method}.", "", "## Latency per stage (mean ms)", "",
              "| group | " + " | ".join(STAGES) + " |", "|---|" + "---|" * len(STAGES)]
    for g, st in report.latency_stages_ms.items():
        lines.append(f"| {g} | " + " | ".join("n/m" if st[s] is None else f"{st[s]:.0f}" for s in STAGES) + " |")
    lines += ["", "## Items", "", "| id | group | " + " | ".join(report.metrics) + " | note |",
              "|---|---|" + "---|" * (len(report.metrics) + 1)]
    for item in report.items:
        cells = []
        for m in report.metrics:
            v = item.metrics.get(m)
            cells.append("-" if v is None else (f"{v:.0f}" if m in JUDGE_METRICS or m.endswith("ms") or m == "latency"
                                               else f"{v:.3f}"))
        note = item.error or "; ".join(f"{j.prompt} failed" for j in item.judgments if j.status == "failed")
        lines.append(f"| {item.id} | {item.group} | " + " | ".join(cells) + f" | {note} |")
    if report.manifest_errors:
        lines += ["", "## Manifest lines skipped", ""] + [f"- {e}" for e in report.manifest_errors]
    lines += ["", "Plots: `scores.png` (judge score distributions), `objective.png`, `latency.png` (waterfall)."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- plots


def plot(report: Report, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [i for i in report.items if i.status == "done"]
    paths = []
    fig, axes = plt.subplots(1, len(JUDGE_METRICS), figsize=(3 * len(JUDGE_METRICS), 3), sharey=True)
    for ax, metric in zip(axes, JUDGE_METRICS, strict=True):
        s = report.summary["all"][metric]
        counts = [sum(1 for i in done if i.metrics.get(metric) == k) for k in (0, 1, 2)]
        ax.set_title(metric)
        if s.status != "measured":
            ax.text(0.5, 0.5, s.status, ha="center", va="center", transform=ax.transAxes, color="grey")
            ax.set_xticks([0, 1, 2])
        else:
            ax.bar([0, 1, 2], counts, color=["#c44", "#cc4", "#4a4"])
            ax.set_xticks([0, 1, 2])
            if s.failures:
                ax.set_xlabel(f"{s.failures} failed")
    axes[0].set_ylabel("items")
    fig.suptitle(f"judge scores: {report.run.label}")
    fig.tight_layout()
    paths.append(out / "scores.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(10, 3))
    for ax, metric, label in zip(axes, ("WER", "CER", "acoustic_following"),
                                 ("WER", "CER", "acoustic following"), strict=True):
        values = [i.metrics[metric] for i in done if i.metrics.get(metric) is not None]
        ax.set_title(label)
        if values:
            ax.hist(values, bins=min(10, max(3, len(values))), range=(0, max(1.0, max(values))), color="#47a")
        else:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes, color="grey")
    fig.tight_layout()
    paths.append(out / "objective.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 0.6 * (len(STAGES) + 2) + 1))
    colors = {"perception": "#58a", "reasoning": "#a85", "instruction": "#8a5", "talker": "#a58"}
    rows = []
    for stage in STAGES:  # mean start and end of each stage on the turn's own time axis
        spans = [(min(s["start_ms"] for s in i.stage_spans if s["stage"] == stage),
                  max(s["end_ms"] for s in i.stage_spans if s["stage"] == stage))
                 for i in done if any(s["stage"] == stage for s in i.stage_spans)]
        if spans:
            rows.append((stage, float(np.mean([a for a, _ in spans])), float(np.mean([b for _, b in spans]))))
    for y, (stage, start, end) in enumerate(rows):
        ax.barh(y, end - start, left=start, color=colors[stage])
        ax.text(end, y, f" {end - start:.0f} ms", va="center", fontsize=8)
    s = report.summary["all"]
    for metric, style in (("first_audio_ms", "--"), ("latency", ":")):
        if s[metric].status == "measured":
            ax.axvline(s[metric].mean, linestyle=style, color="k", label=f"{metric} {s[metric].mean:.0f} ms")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("ms from the start of the turn (mean over items)")
    if rows:
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no timings", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"latency waterfall: {report.run.label}")
    fig.tight_layout()
    paths.append(out / "latency.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def write(report: Report, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(report.model_dump_json(indent=2) + "\n")
    (out / "report.md").write_text(render_markdown(report))
    return [out / "report.json", out / "report.md", *plot(report, out)]


# ---------------------------------------------------------------- compare


def load_report(path: str | Path) -> Report:
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise FileNotFoundError(f"no report.json at {path}")
    return Report.model_validate(json.loads(path.read_text()))


def compare(a: Report, b: Report) -> str:
    """Markdown: every metric and group of either run side by side, with B - A and which way is better."""
    lines = [f"# EmoOmniEval: {a.run.label} (A) vs {b.run.label} (B)", "",
             f"A: judge `{a.run.judge or 'none'}` ({a.run.judge_inputs or '-'}), rubric {a.run.rubric or '-'}, "
             f"{a.run.items_done} items. B: judge `{b.run.judge or 'none'}` ({b.run.judge_inputs or '-'}), "
             f"rubric {b.run.rubric or '-'}, {b.run.items_done} items.", ""]
    if (a.run.judge_inputs, a.run.rubric) != (b.run.judge_inputs, b.run.rubric):
        lines += ["**Note:** the runs used different judge inputs or rubrics; their judge scores are not "
                  "directly comparable.", ""]
    lines += ["| group | metric | A | B | B - A | better |", "|---|---|---|---|---|---|"]
    groups = list(dict.fromkeys([*a.summary, *b.summary]))
    for g in groups:
        for metric in a.metrics:
            sa, sb = a.summary.get(g, {}).get(metric), b.summary.get(g, {}).get(metric)
            if sa is None and sb is None:
                continue
            delta, better = "-", "-"
            if sa and sb and sa.status == sb.status == "measured":
                d = sb.mean - sa.mean
                delta = f"{d:+.3f}"
                better = ("B" if (d < 0) == (metric in LOWER_IS_BETTER) else "A") if abs(d) > 1e-09 else "="
            lines.append(f"| {g} | {metric} | {_cell(sa, 3)} | {_cell(sb, 3)} | {delta} | {better} |")
    return "\n".join(lines) + "\n"
