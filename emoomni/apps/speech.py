"""`emoomni speak` and `emoomni talkers`: the talker on its own, embedded (models load here) or remote."""

from __future__ import annotations

import sys
import time

import grpc
import numpy as np

from emoomni.core.config import StackConfig
from emoomni.sdk.commands import Command, add_client_security, fail
from emoomni.v1 import instruction_pb2, talker_pb2


def _instruction(args, cfg: StackConfig) -> instruction_pb2.AcousticInstruction:
    """The instruction text mapped to controls: by the stack's instruction service when remote, else here."""
    if not args.instruction.strip():
        return instruction_pb2.AcousticInstruction()
    if args.remote:
        from emoomni.sdk.client import InstructionClient

        with InstructionClient(cfg.services.instruction) as client:
            return client.map(args.instruction, args.language)
    from emoomni.services.instruction.core import InstructionCore

    return InstructionCore(cfg).map(args.instruction, args.language)


def _write_wav(path: str, chunks: list) -> float:
    import soundfile as sf

    audio = np.frombuffer(b"".join(c.pcm16 for c in chunks), dtype=np.int16)
    sf.write(path, audio, chunks[0].sample_rate, subtype="PCM_16")
    return audio.size / chunks[0].sample_rate


def speak(args, cfg: StackConfig) -> int:
    try:
        instruction = _instruction(args, cfg)
        started = time.perf_counter()
        first_ms = None
        chunks = []
        for chunk in _speak_chunks(args, cfg, instruction):
            first_ms = first_ms if first_ms is not None else (time.perf_counter() - started) * 1e3
            chunks.append(chunk)
    except ValueError as exc:
        return fail(str(exc))
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            return fail(exc.details())
        print(f"emoomni: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    seconds = _write_wav(args.out, chunks)
    total = time.perf_counter() - started
    print(f"voice   : {instruction.text or '(neutral)'}")
    for warning in [*instruction.warnings, *chunks[0].warnings]:
        print(f"warning : {warning}")
    print(f"talker  : {chunks[0].talker}; {seconds:.2f} s of audio in {total:.2f} s (RTF {total / seconds:.3f}), "
          f"first chunk after {first_ms:.0f} ms")
    print(f"wrote {args.out}")
    return 0


def _speak_chunks(args, cfg, instruction):
    if args.remote:
        from emoomni.sdk.client import TalkerClient

        with TalkerClient(args.remote) as client:
            yield from client.speak(args.text, instruction, args.language, args.talker)
        return
    from emoomni.services.talker.core import TalkerCore

    core = TalkerCore(cfg)
    if args.talker:
        core.activate(args.talker)
    else:
        core.warmup()
    yield from core.speak(args.text, instruction, args.language)


def talkers(args, cfg: StackConfig) -> int:
    try:
        listing = _talkers_remote(args) if args.remote else _talkers_local(cfg)
    except grpc.RpcError as exc:
        if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
            return fail(exc.details())
        print(f"emoomni: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    if isinstance(listing, int):
        return listing
    for info in listing.talkers:
        mark = "*" if info.active else " "
        reads = ", reads instruction text" if info.reads_instruction_text else ""
        print(f"{mark} {info.name:<10} languages: {', '.join(info.languages)}")
        print(f"  {'':<10} controls: {', '.join(info.controls) or 'none'}; "
              f"{'streams' if info.streaming else 'whole sentences'}{reads}")
        print(f"  {'':<10} license: {info.license}")
    return 0


def _talkers_remote(args) -> talker_pb2.ListTalkersResponse:
    from emoomni.sdk.client import TalkerClient

    with TalkerClient(args.remote) as client:
        if args.set:
            switched = client.set_active(args.set)
            print(f"switched {switched.previous} -> {switched.active} (loaded and warmed in {switched.load_ms:.0f} ms)")
        return client.talkers()


def _talkers_local(cfg: StackConfig):
    from emoomni.services.talker.core import TalkerCore, list_talkers

    return list_talkers(TalkerCore(cfg))


class SpeakCommand(Command):
    name = "speak"
    help = "speak text the way an instruction asks, into a WAV file"

    def add_arguments(self, parser) -> None:
        parser.add_argument("--text", required=True)
        parser.add_argument("--instruction", default="", help='e.g. "speak in a soft, encouraging whisper"')
        parser.add_argument("--out", required=True, help="WAV file to write")
        parser.add_argument("--talker", default="", help="engine (default: the active one; see `emoomni talkers`)")
        parser.add_argument("--language", default="en")
        parser.add_argument("--remote", metavar="HOST:PORT", help="a running talker service (`emoomni up`: :50064); "
                            "the instruction is then mapped by the stack's instruction service")
        add_client_security(parser)

    def run(self, args, cfg: StackConfig) -> int:
        return speak(args, cfg)


class TalkersCommand(Command):
    name = "talkers"
    help = "list talker plugins, their capabilities and the active one"

    def add_arguments(self, parser) -> None:
        parser.add_argument("--remote", metavar="HOST:PORT", help="a running talker service")
        parser.add_argument("--set", metavar="NAME", help="with --remote: load, warm and switch to this engine")
        add_client_security(parser)

    def run(self, args, cfg: StackConfig) -> int:
        return talkers(args, cfg)
