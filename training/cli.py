"""`emoomni train {thinker|reasoner|instruction|talker}`: one command and one config style for every trainer.

    emoomni train KIND --config training/configs/NAME.yaml [--data D.jsonl ...] [--eval E.jsonl] [--base PATH]
                  --out DIR [--set key=value ...] [--resume latest|DIR/checkpoints/checkpoint-N]

--data, --eval and --base override the config's data.train, data.eval and model.base; --set overrides any key.
Each trainer writes its run folder (training/common/run.py) and OUT/final/serve.yaml, the stack config lines
that load the result into its service.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from training.common.config import ConfigError

KINDS = ("thinker", "reasoner", "instruction", "talker")
EXIT_BAD_INPUT = 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emoomni train", description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--config", required=True, help="training/configs/NAME.yaml")
    p.add_argument("--data", nargs="+", help="training data (messages JSONL); replaces data.train")
    p.add_argument("--eval", help="held-out JSONL; replaces data.eval")
    p.add_argument("--base", help="the model to start from; replaces model.base")
    p.add_argument("--out", required=True, help="the run folder")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--resume", metavar="latest|CHECKPOINT", help="continue the run in --out")
    return p


def run(kind: str, config: str, out: str, *, data=None, eval_data=None, base=None, overrides=(), resume=None) -> dict:
    """Load the config for `kind` and train; returns the trainer's summary."""
    from training.common import config as cfgs

    fields = {"data.train": data, "data.eval": eval_data, "model.base": base}
    if kind == "thinker":
        from training.thinker.config import ThinkerConfig
        from training.thinker.train import train_thinker

        cfg = cfgs.load(ThinkerConfig, config, list(overrides), **fields)
        return train_thinker(cfg, out, resume)
    if kind == "reasoner":
        from training.reasoner.config import ReasonerConfig
        from training.reasoner.train import train_reasoner

        return train_reasoner(cfgs.load(ReasonerConfig, config, list(overrides), **fields), out, resume)
    if kind == "talker":
        from training.talker.config import TalkerTrainConfig
        from training.talker.train import train_talker

        return train_talker(cfgs.load(TalkerTrainConfig, config, list(overrides), **fields), out, resume)
    from training.instruction.train_head import HeadTrainConfig, train_from_config

    if data or eval_data or base:
        raise ConfigError("the instruction head trains on its phrase bank (data.facets in the config); "
                          "--data, --eval and --base do not apply")
    cfg = cfgs.load(HeadTrainConfig, config, list(overrides))
    return train_from_config(cfg, out, resume)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        summary = run(args.kind, args.config, args.out, data=args.data, eval_data=args.eval, base=args.base,
                      overrides=args.set, resume=args.resume)
    except ConfigError as exc:
        print(f"emoomni train: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
