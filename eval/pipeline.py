"""`emoomni eval`: run the agent on a manifest, score every done item (objective figures, then the judge if
one is given) and write the report. Every stage caches per item, so a second run only does what is missing."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from emoomni.eval import report as rep
from emoomni.eval.judges import JudgeSpec, Judgment, build_judge, judge_item, load_rubric
from emoomni.eval.manifest import read_manifest
from emoomni.eval.objective import OBJECTIVE_VERSION, REFERENCE_METHOD, Objective, ObjectiveScorer
from emoomni.eval.runner import RunOutcome, is_done, item_dir, run_items


def evaluate(manifest: Path, out: Path, cfg, judge_spec: JudgeSpec | None = None, remote: str = "",
             concurrency: int = 1, utmos: str = "", talker: str = "", label: str = "") -> tuple[rep.Report, RunOutcome]:
    items, errors = read_manifest(manifest)
    for error in errors:
        print(f"emoomni eval: skipped {error.message}", file=sys.stderr)
    if judge_spec is not None:
        load_rubric(judge_spec.rubric)  # a bad rubric fails before any turn is run
    outcome = run_items(items, manifest.parent, out, cfg, remote=remote, concurrency=concurrency, talker=talker)
    done = [i for i in items if is_done(out, i.id)]

    scorer = None
    for item in tqdm(done, desc="objective", unit="item", file=sys.stderr, dynamic_ncols=True):
        path = item_dir(out, item.id) / "objective.json"
        cached = json.loads(path.read_text()) if path.is_file() else None
        if cached and cached.get("version") == OBJECTIVE_VERSION and (cached.get("utmos") is not None or not utmos):
            continue
        scorer = scorer or ObjectiveScorer(cfg, utmos)
        path.write_text(scorer.score(item_dir(out, item.id)).model_dump_json(indent=2) + "\n")

    judge = None
    if judge_spec is not None:
        key = {"judge": judge_spec.fingerprint(), "rubric": judge_spec.rubric}
        for item in tqdm(done, desc="judge", unit="item", file=sys.stderr, dynamic_ncols=True):
            d = item_dir(out, item.id)
            path = d / "judge.json"
            if path.is_file() and json.loads(path.read_text()).get("key") == key:
                continue
            judge = judge or build_judge(judge_spec)
            turn = json.loads((d / "turn.json").read_text())
            objective = json.loads((d / "objective.json").read_text())
            judgments = judge_item(judge, judge_spec, turn, item.model_dump(), objective,
                                   item.video_path(manifest.parent), d / "reply.wav")
            path.write_text(json.dumps({"key": key, "spec": judge_spec.label(),
                                        "judgments": [j.model_dump() for j in judgments]}, indent=2) + "\n")

    reports = []
    for item in items:
        d = item_dir(out, item.id)
        if not is_done(out, item.id):
            err = d.parent / f".{item.id}.error"
            reports.append(rep.ItemReport(id=item.id, group=item.group, language=item.language, status="failed",
                                          error=err.read_text().strip() if err.is_file() else "not run"))
            continue
        objective = Objective.model_validate_json((d / "objective.json").read_text()).model_dump()
        judgments = []
        if judge_spec is not None:
            judgments = [Judgment.model_validate(j) for j in json.loads((d / "judge.json").read_text())["judgments"]]
        meta = json.loads((d / "item.json").read_text()) if (d / "item.json").is_file() else {}
        reports.append(rep.ItemReport(id=item.id, group=item.group, language=item.language, status="done",
                                      metrics=rep.item_metrics(judgments, objective), judgments=judgments,
                                      objective=objective, stage_spans=meta.get("stage_spans", [])))
    inputs = None if judge_spec is None else ("text-only" if judge_spec.text_only else "+".join(judge_spec.media))
    run = rep.RunInfo(
        label=label or out.name, manifest=str(manifest), created=datetime.now(UTC).isoformat(timespec="seconds"),
        agent=remote or "embedded", judge=judge_spec.label() if judge_spec else None,
        judge_inputs=inputs,
        rubric=judge_spec.rubric if judge_spec else None, acoustic_reference=REFERENCE_METHOD,
        items_in_manifest=len(items) + len(errors), items_done=sum(r.status == "done" for r in reports),
        items_failed=sum(r.status == "failed" for r in reports) + len(errors))
    report = rep.build_report(run, reports, [e.message for e in errors])
    rep.write(report, out)
    return report, outcome
