"""Argument handling for `emoomni eval` (run + score + report), `emoomni eval compare A B` and
`emoomni eval manifest` (MELD-test / CH-SIMS-v2 loaders)."""

from __future__ import annotations

import sys
from pathlib import Path

from emoomni.sdk.commands import Command, add_client_security, fail


class EvalCommand(Command):
    name = "eval"
    help = "EmoOmniEval: score the agent on a manifest; `eval compare A B`; `eval manifest --meld|--ch-sims ROOT`"
    description = "See docs/eval.md."

    def add_arguments(self, parser) -> None:
        add_arguments(parser)

    def run(self, args, cfg) -> int:
        return run(args, cfg)


def add_arguments(ev) -> None:
    ev.add_argument("action", nargs="*", metavar="compare A B | manifest",
                    help="nothing: run and score; `compare RUN_A RUN_B`; `manifest` with --meld or --ch-sims")
    ev.add_argument("--manifest", help="JSONL manifest: {id, video, context?, reference_response?, language?}")
    ev.add_argument("--out", help="output folder (per-item outputs, report.json, report.md, PNGs)")
    ev.add_argument("--judge", metavar="SPEC", help="openai:URL?model=NAME&media=none|video|audio|video+audio, "
                    "transformers:FOLDER[?gguf=FILE], or a .json/.yaml spec (docs/eval.md)")
    ev.add_argument("--remote", metavar="HOST:PORT", help="a running stack's gateway instead of the embedded agent")
    ev.add_argument("--concurrency", type=int, default=1, help="agent turns in flight at once (default 1)")
    ev.add_argument("--talker", default="", help="talker engine for every turn (default: the active one)")
    ev.add_argument("--utmos", default="", metavar="PATH", help="UTMOS model (.onnx or TorchScript)")
    ev.add_argument("--label", default="", help="name of this run in the report (default: the --out folder name)")
    ev.add_argument("--meld", metavar="ROOT", help="with `manifest`: a local MELD.Raw copy (test split)")
    ev.add_argument("--ch-sims", metavar="ROOT", help="with `manifest`: a local CH-SIMS-v2 copy (test split)")
    ev.add_argument("--limit", type=int, default=0, help="with `manifest`: keep the first N items")
    add_client_security(ev)


def run(args, cfg) -> int:
    action = args.action
    if action and action[0] == "compare":
        if len(action) != 3:
            return fail("usage: emoomni eval compare RUN_A RUN_B (run folders or report.json files)")
        from emoomni.eval.report import compare, load_report

        try:
            text = compare(load_report(action[1]), load_report(action[2]))
        except (FileNotFoundError, ValueError) as exc:
            return fail(str(exc))
        print(text, end="")
        if args.out:
            Path(args.out).write_text(text)
        return 0
    if action and action[0] == "manifest":
        return _manifest(args)
    if action:
        return fail(f"unknown eval action {' '.join(action)!r}: use `compare A B`, `manifest`, or none")
    if not args.manifest or not args.out:
        return fail("emoomni eval needs --manifest M.jsonl and --out DIR")
    manifest = Path(args.manifest)
    if not manifest.is_file():
        return fail(f"no such manifest: {manifest}")
    spec = None
    if args.judge:
        from emoomni.eval.judges import JudgeSpecError, load_rubric, parse_judge_spec

        try:
            spec = parse_judge_spec(args.judge)
            load_rubric(spec.rubric)
        except JudgeSpecError as exc:
            return fail(str(exc))
    if args.utmos and not Path(args.utmos).is_file():
        return fail(f"no such UTMOS model: {args.utmos}")
    from emoomni.eval.pipeline import evaluate

    report, outcome = evaluate(manifest, Path(args.out), cfg, spec, remote=args.remote or "",
                               concurrency=args.concurrency, utmos=args.utmos, talker=args.talker, label=args.label)
    out = Path(args.out)
    print(f"ran {len(outcome.ran)} item(s), {len(outcome.skipped)} already done, {len(outcome.failed)} failed, "
          f"{len(report.manifest_errors)} manifest line(s) skipped")
    s = report.summary["all"]
    for metric in report.metrics:
        m = s[metric]
        value = f"{m.mean:.3f} (n={m.n})" if m.status == "measured" else m.status
        print(f"  {metric:<20} {value}{f', {m.failures} judge failure(s)' if m.failures else ''}")
    print(f"wrote {out / 'report.json'}, {out / 'report.md'} and plots in {out}")
    return 0 if report.run.items_done else 1


def _manifest(args) -> int:
    from emoomni.eval.manifest import ch_sims_v2, meld_test, write_manifest

    if bool(args.meld) == bool(args.ch_sims) or not args.out:
        return fail("usage: emoomni eval manifest (--meld ROOT | --ch-sims ROOT) --out M.jsonl [--limit N]")
    try:
        items, missing = meld_test(args.meld) if args.meld else ch_sims_v2(args.ch_sims)
    except (FileNotFoundError, KeyError) as exc:
        return fail(f"cannot read the dataset: {exc}")
    for note in missing:
        print(f"emoomni eval: skipped {note}", file=sys.stderr)
    if args.limit:
        items = items[:args.limit]
    path = write_manifest(items, args.out)
    print(f"wrote {len(items)} item(s) to {path} ({len(missing)} row(s) without a clip)")
    return 0 if items else 1
