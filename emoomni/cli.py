"""The `emoomni` command: chat (one turn on a clip), speak (text + instruction to a WAV), talkers (list or
switch engines), up (the multi-process stack), serve (one service), eval (EmoOmniEval, docs/eval.md), train
(each service's weights, training/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emoomni", description="Emotion-aware omni-modal dialogue agent.")
    parser.add_argument("--config", help="stack config YAML (default: config/stack.yaml or $EMOOMNI_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    chat = sub.add_parser("chat", help="run one turn on a clip and write turn.json + reply.wav")
    chat.add_argument("clip")
    chat.add_argument("--out", default="out", help="output folder (default: out)")
    chat.add_argument("--context", default="", help="earlier conversation or scene notes")
    chat.add_argument("--remote", metavar="HOST:PORT", help="use a running stack instead of the embedded one")
    chat.add_argument("--json", action="store_true", help="print the turn as JSON on stdout")
    chat.add_argument("--talker", default="", help="talker engine for this turn (default: the active one)")
    speak = sub.add_parser("speak", help="speak text the way an instruction asks, into a WAV file")
    speak.add_argument("--text", required=True)
    speak.add_argument("--instruction", default="", help='e.g. "speak in a soft, encouraging whisper"')
    speak.add_argument("--out", required=True, help="WAV file to write")
    speak.add_argument("--talker", default="", help="engine (default: the active one; see `emoomni talkers`)")
    speak.add_argument("--language", default="en")
    speak.add_argument("--remote", metavar="HOST:PORT", help="a running talker service (`emoomni up`: :50064); "
                       "the instruction is then mapped by the stack's instruction service")
    talkers = sub.add_parser("talkers", help="list talker plugins, their capabilities and the active one")
    talkers.add_argument("--remote", metavar="HOST:PORT", help="a running talker service")
    talkers.add_argument("--set", metavar="NAME", help="with --remote: load, warm and switch to this engine")
    sub.add_parser("up", help="start nats-server and every service as its own process")
    serve = sub.add_parser("serve", help="run one service (used by `up`)")
    serve.add_argument("service", choices=["perception", "reasoning", "instruction", "talker", "gateway"])
    from emoomni.eval.cli import add_parser as add_eval_parser

    add_eval_parser(sub)
    sub.add_parser("train", help="train a service's weights (from a source checkout; `emoomni train --help`)")
    return parser


def _quiet_libraries() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import warnings

    warnings.filterwarnings("ignore")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # its own parser, options and --help (training/cli.py)
        return _train(argv[1:])
    args = _parser().parse_args(argv)
    _quiet_libraries()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from emoomni.config import load_config

    cfg = load_config(args.config)
    if args.command == "chat":
        return _chat(args, cfg)
    if args.command in ("speak", "talkers"):
        from emoomni import speech_cli

        return speech_cli.speak(args, cfg) if args.command == "speak" else speech_cli.talkers(args, cfg)
    if args.command == "up":
        from emoomni.runtime import run_stack

        return run_stack(cfg, args.config)
    if args.command == "eval":
        from emoomni.eval.cli import run as run_eval

        return run_eval(args, cfg)
    if args.command == "serve":
        from emoomni.runtime import serve_forever

        run_async(serve_forever(args.service, cfg))
        return 0
    return 1


def run_async(coro):
    """Run on uvloop (measured ~1.5 ms less framework overhead per turn than asyncio's default loop here);
    EMOOMNI_UVLOOP=0 selects the standard loop."""
    if os.environ.get("EMOOMNI_UVLOOP", "1") != "0":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def fail(message: str) -> int:
    print(f"emoomni: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _train(argv: list[str]) -> int:
    """training/ is scripts beside the package, not installed: `emoomni train` finds it in the source checkout
    this package runs from (an editable install, as scripts/setup.sh makes) and imports it from there."""
    root = next((p for p in Path(__file__).resolve().parents if (p / "training" / "cli.py").is_file()), None)
    if root is None:
        return fail("emoomni train needs a source checkout (the training/ folder beside emoomni/); "
                    "install with scripts/setup.sh from the repository")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from training.cli import main as train_main

    return train_main(argv)


def _chat(args, cfg) -> int:
    clip = Path(args.clip)
    if not clip.is_file():
        return fail(f"no such file: {clip}")
    if not args.remote:
        from emoomni.media import MediaError, probe, read_source

        try:  # fail in a second on what can be seen without models, rather than after loading them
            probe(read_source(str(clip), None, cfg.limits), cfg.limits)
        except MediaError as exc:
            return fail(str(exc))
    result = _chat_remote(args, clip) if args.remote else run_async(_chat_embedded(args, cfg, clip))
    if isinstance(result, int):
        return result
    turn_path, wav_path = result.write(args.out)
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
    else:
        ecot = result.done.ecot
        print(f"heard   : {result.perception.transcript.text} [{result.perception.transcript.language}]")
        print(f"emotion : {ecot.emotion_analysis}")
        print(f"intent  : {ecot.intent}")
        print(f"strategy: {ecot.strategy}")
        print(f"reply   : {ecot.response}")
        print(f"voice   : {result.done.instruction.text}")
        print(result.waterfall())
        print(f"wrote {turn_path} and {wav_path}")
    return 0


def _chat_remote(args, clip: Path):
    import grpc

    from emoomni.client import Client

    try:
        with Client(args.remote) as client:
            return client.run_turn(clip, args.context, talker=args.talker)
    except grpc.RpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return fail(exc.details())
        print(f"emoomni: {code.name}: {exc.details()}", file=sys.stderr)
        return 1


async def _chat_embedded(args, cfg, clip: Path):
    from emoomni.media import MediaError
    from emoomni.result import TurnResult
    from emoomni.runtime import EmbeddedAgent
    from emoomni.services.gateway.core import TurnFailed
    from emoomni.telemetry import shutdown_tracing
    from emoomni.v1 import agent_pb2, media_pb2

    request = agent_pb2.ConverseRequest(context=args.context, talker=args.talker,
                                        media=media_pb2.MediaInput(path=str(clip.resolve()), filename=clip.name))
    result = TurnResult()
    try:
        async with EmbeddedAgent(cfg) as agent:
            result.started = time.perf_counter()
            async for event in agent.run_turn(request):
                result.add(event)
    except MediaError as exc:
        return fail(str(exc))
    except TurnFailed as exc:
        if exc.code == "INVALID_ARGUMENT":
            return fail(str(exc))
        print(f"emoomni: {exc.code} in {exc.stage or 'the turn'}: {exc}", file=sys.stderr)
        return 1
    finally:
        shutdown_tracing()
    return result
