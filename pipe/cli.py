"""`emoomni pipe`: raw videos in, a training-ready dataset out (docs/pipe.md)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from emoomni.sdk.commands import Command, fail

STAGE_NAMES = ["ingest", "denoise", "transcribe", "diarize", "clip", "caption", "dialogue", "filter", "ecot"]


class PipeCommand(Command):
    name = "pipe"
    help = "turn raw videos into annotated E-CoT training data (EmoOmniPipe; docs/pipe.md)"
    description = ("Ingest, VAD + ASR, diarization, clips, captions, dialogues, filters, E-CoT, export. Re-running "
                   "with the same --out resumes: only work that is not done yet is done.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--input", nargs="+", required=True, metavar="PATH",
                            help="video files, or folders searched for them")
        parser.add_argument("--out", required=True, metavar="DIR", help="output folder (manifest, clips, JSONL)")
        # Its own dest: `args.config` is the stack config (`emoomni --config STACK pipe ...`), which main() loads.
        parser.add_argument("--config", dest="pipe_config", metavar="PIPE.yaml",
                            help="pipeline settings (docs/pipe.md, Config)")
        parser.add_argument("--executor", choices=["local", "ray"], default="local")
        parser.add_argument("--workers", type=int, default=1, help="worker processes (local) or actors per stage (ray)")
        parser.add_argument("--ray-address", metavar="ADDR", help="join a running Ray cluster (default: start one)")
        parser.add_argument("--until", metavar="STAGE", choices=STAGE_NAMES,
                            help=f"stop after this stage ({', '.join(STAGE_NAMES)}); a later run goes on from there")
        parser.add_argument("--llm", metavar="URL[#MODEL]",
                            help="OpenAI-compatible endpoint for filters and E-CoT (key from $EMOOMNI_PIPE_LLM_KEY); "
                                 "default: the packaged local model")
        parser.add_argument("--captioner", metavar="URL[#MODEL]",
                            help="OpenAI-compatible endpoint that rewrites the six captions from each clip (key from "
                                 "$EMOOMNI_PIPE_CAPTIONER_KEY); default: the measured captions only")

    def run(self, args, cfg) -> int:
        import json

        from emoomni.pipe.config import PipeConfig
        from emoomni.pipe.executors import make_executor
        from emoomni.pipe.export import export
        from emoomni.pipe.runner import Pipeline, build_stages, find_inputs

        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
        try:
            pipe_cfg = PipeConfig.load(args.pipe_config)
            if args.llm is not None:
                pipe_cfg = pipe_cfg.model_copy(update={"llm": args.llm})
            if args.captioner is not None:
                pipe_cfg = pipe_cfg.model_copy(update={"captioner": args.captioner})
            if not find_inputs(args.input, skip=Path(args.out)):
                return fail(f"no video files in {' '.join(args.input)}")
        except (FileNotFoundError, ValueError) as exc:
            return fail(str(exc))
        executor = make_executor(args.executor, args.workers, args.ray_address)
        try:
            stages = build_stages(pipe_cfg, Path(args.out).resolve(), cfg)
            if args.until:
                names = [s.name for s in stages]
                if args.until not in names:
                    return fail(f"--until {args.until}: that stage is off in this config (denoise.enabled)")
                stages = stages[:names.index(args.until) + 1]
            summary = Pipeline(pipe_cfg, args.out, executor, stages=stages).run(args.input)
        finally:
            executor.close()
        files = export(Path(args.out).resolve(), summary.outputs, summary.as_dict())
        print(summary.table())
        print(json.dumps({name: str(path) for name, path in files.items()}))
        return 0
