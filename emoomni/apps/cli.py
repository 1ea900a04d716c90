"""The `emoomni` command: chat (one turn on a clip), speak (text + instruction to a WAV), talkers (list or
switch engines), up (the multi-process stack), serve (one service), certs (TLS material), eval (EmoOmniEval,
docs/eval.md), train (each service's weights, training/cli.py).

Subcommands are found by entry point (group `emoomni.commands`, see emoomni.sdk.commands); this module holds
the parser, the common start-up and the commands that run turns and services."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from emoomni.core.aio import run_async
from emoomni.sdk.commands import Command, add_client_security, apply_client_security, discover_commands, fail


class ChatCommand(Command):
    name = "chat"
    help = "run one turn on a clip and write turn.json + reply.wav"

    def add_arguments(self, chat: argparse.ArgumentParser) -> None:
        chat.add_argument("clip")
        chat.add_argument("--out", default="out", help="output folder (default: out)")
        chat.add_argument("--context", default="", help="earlier conversation or scene notes")
        chat.add_argument("--remote", metavar="HOST:PORT", help="use a running stack instead of the embedded one")
        add_client_security(chat)
        chat.add_argument("--json", action="store_true", help="print the turn as JSON on stdout")
        chat.add_argument("--talker", default="", help="talker engine for this turn (default: the active one)")

    def run(self, args, cfg) -> int:
        return _chat(args, cfg)


class UpCommand(Command):
    name = "up"
    help = "start nats-server and every service as its own process"

    def run(self, args, cfg) -> int:
        from emoomni.core.runtime import run_stack

        return run_stack(cfg, args.config)


class ServeCommand(Command):
    name = "serve"
    help = "run one service (used by `up`)"

    def add_arguments(self, serve: argparse.ArgumentParser) -> None:
        from emoomni.core.registry import service_names

        serve.add_argument("service", choices=service_names())

    def run(self, args, cfg) -> int:
        from emoomni.core.runtime import serve_process

        run_async(serve_process(args.service, cfg))  # exits the process with the service's exit code
        return 1


class CertsCommand(Command):
    name = "certs"
    help = "write a private CA, a server and a client certificate (for TLS)"

    def add_arguments(self, certs: argparse.ArgumentParser) -> None:
        certs.add_argument("--out", default="certs", help="folder (default: certs)")
        certs.add_argument("--host", action="append", help="a further name or IP the server certificate is valid "
                           "for, besides 127.0.0.1 and localhost (repeatable)")

    def run(self, args, cfg) -> int:
        from emoomni.core.certs import make_certs

        out = make_certs(args.out, args.host)
        print(f"wrote {out}/ca.pem, server.pem, server.key, client.pem, client.key (and the CA's key, ca.key)")
        return 0


class TrainCommand(Command):
    name = "train"
    help = "train a service's weights (from a source checkout; `emoomni train --help`)"
    own_parser = True  # training/cli.py parses its own options, --help included

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("args", nargs=argparse.REMAINDER)

    def run(self, args, cfg) -> int:
        return self.main(args.args)

    @staticmethod
    def main(argv: list[str]) -> int:
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


class ConfigCommand(Command):
    name = "config"
    help = "the stack config: `show` (as loaded, with overrides), `schema` (JSON Schema), `presets`"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=["show", "schema", "presets"], nargs="?", default="show")

    def run(self, args, cfg) -> int:
        from emoomni.core.config import PRESETS_DIR, StackConfig
        from emoomni.core.config_sources import presets

        if args.action == "schema":
            print(json.dumps(StackConfig.model_json_schema(), indent=2))
        elif args.action == "presets":
            for name in presets():
                print(f"{name:<10} {PRESETS_DIR / (name + '.yaml')}")
        else:
            import yaml

            from emoomni.core.private_files import redacted

            print(yaml.safe_dump(redacted(cfg.model_dump(mode="json")), sort_keys=False), end="")
        return 0


def _parser(commands: dict[str, Command]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emoomni", description="Emotion-aware omni-modal dialogue agent.")
    parser.add_argument("--config", help="stack config: a YAML file or a preset name (omni, openai, triton; "
                        "default: $EMOOMNI_CONFIG, else the CPU preset config/stack.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in commands.items():
        command.add_arguments(sub.add_parser(name, help=command.help, description=command.description))
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
    commands = discover_commands()
    own = commands.get(argv[0]) if argv else None
    if getattr(own, "own_parser", False):  # e.g. `emoomni train`: its options and --help are its own
        return own.main(argv[1:])
    args = _parser(commands).parse_args(argv)
    apply_client_security(args)
    _quiet_libraries()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from emoomni.core.config import load_config

    try:
        cfg = load_config(args.config)
    except FileNotFoundError as exc:
        return fail(str(exc))
    return commands[args.command].run(args, cfg)



def _chat(args, cfg) -> int:
    clip = Path(args.clip)
    if not clip.is_file():
        return fail(f"no such file: {clip}")
    if not args.remote:
        from emoomni.core.media import MediaError, probe, read_source

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

    from emoomni.sdk.client import Client

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
    from emoomni.core.media import MediaError
    from emoomni.core.runtime import EmbeddedAgent
    from emoomni.core.telemetry import shutdown_tracing
    from emoomni.sdk.result import TurnResult
    from emoomni.services.gateway.core import TurnFailed
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
