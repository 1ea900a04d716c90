"""`emoomni live`: hold a live session with recorded clips standing in for the microphone and the camera.

Each clip's sound is streamed in real time as 20 ms frames and its picture as camera frames, followed by
silence (`--gap`), or, with `--barge-in S`, the next clip starts S seconds after the agent's first reply audio so
that it interrupts. The agent's audio is "played" on a simulated loudspeaker in real time (the client side of
pacing and playback reports), and dropped the moment its turn is interrupted. Writes DIR/session.json (one
entry per turn) and DIR/session.wav (stereo: left the user as sent, right the agent as played, one timeline).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from emoomni.apps.devices import Camera, DeviceError, Loudspeaker, Microphone
from emoomni.sdk.agent import LocalAgent, RemoteAgent
from emoomni.sdk.commands import Command, add_client_security, apply_client_security, fail
from emoomni.sdk.live import session_config
from emoomni.testing.live import (
    RATE,
    Listen,
    Recorder,
    Step,
    UntilDone,
    clip_steps,
    hold_session,
    load_clip,
)


class LiveCommand(Command):
    name = "live"
    help = "hold a live session (clips or the local microphone and camera); writes session.json/.wav"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _add_arguments(parser)
        add_client_security(parser)

    def run(self, args, cfg) -> int:
        apply_client_security(args)
        return run(args, cfg)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="clips", action="append", default=[], metavar="CLIP",
                        help="a clip played as the user's microphone and camera (repeat for more turns)")
    parser.add_argument("--mic", nargs="?", const="default", default="", metavar="DEVICE",
                        help="talk through the local microphone (PortAudio device name or index; default device "
                             "without a value) instead of clips")
    parser.add_argument("--camera", default="", metavar="DEVICE",
                        help="with --mic: the local camera (OpenCV device index such as 0, or a video file or URL)")
    parser.add_argument("--speaker", nargs="?", const="default", default="", metavar="DEVICE",
                        help="with --mic: play the agent on a local loudspeaker (this turns on the echo guard)")
    parser.add_argument("--seconds", type=float, default=300.0,
                        help="with --mic: how long to listen (default 300; Ctrl-C ends sooner)")
    parser.add_argument("--gap", type=float, default=3.0, help="seconds of silence after each clip (default 3)")
    parser.add_argument("--barge-in", type=float, default=None, metavar="S",
                        help="start each next clip S seconds after the agent's first reply audio (interrupting it)")
    parser.add_argument("--out", required=True, help="folder for session.json and session.wav")
    parser.add_argument("--remote", default="", help="HOST:PORT of a running gateway (default: an embedded stack)")
    parser.add_argument("--talker", default="", help="talker engine for the session")
    parser.add_argument("--language", default="", choices=["", "en", "zh"], help="language hint")
    parser.add_argument("--persona", default="", help="persona or scene notes for the whole session")
    parser.add_argument("--session-id", default="", help="id for a new session")
    parser.add_argument("--resume", default="", metavar="ID", help="continue a remembered session (its resume token "
                        "comes from $EMOOMNI_RESUME_TOKEN, else from the tokens this command keeps, see --out)")
    parser.add_argument("--fps", type=float, default=2.0, help="camera frames per second sent (default 2)")
    parser.add_argument("--no-video", action="store_true", help="send the sound only")
    parser.add_argument("--no-ack", action="store_true", help="no quick acknowledgements")


def run(args, cfg) -> int:
    from emoomni.core.aio import run_async
    from emoomni.core.media import MediaError

    if bool(args.clips) == bool(args.mic):
        return fail("give the user's side as clips (--from CLIP ...) or as the local microphone (--mic), not both")
    if (args.camera or args.speaker) and not args.mic:
        return fail("--camera and --speaker go with --mic")
    recorder = Recorder()
    try:
        if args.mic:
            steps, video = _device_steps(args, recorder), bool(args.camera) and not args.no_video
        else:
            clips = [load_clip(Path(c), cfg, args.fps, not args.no_video) for c in args.clips]
            video = not args.no_video and any(c.frames for c in clips)
            steps = clip_steps(clips, args.gap, args.barge_in, video)
    except (MediaError, OSError, DeviceError) as exc:
        return fail(str(exc))
    resume_token = ""
    if args.resume:
        resume_token = os.environ.get("EMOOMNI_RESUME_TOKEN", "") or kept_resume_tokens().get(args.resume, "")
        if not resume_token:
            return fail(f"no resume token for session {args.resume}: set EMOOMNI_RESUME_TOKEN, or resume from the "
                        f"account that started it (tokens are kept in {resume_tokens_path()})")
    options = {"language": args.language, "talker": args.talker, "persona": args.persona,
               "session_id": args.session_id, "resume_id": args.resume, "resume_token": resume_token,
               "no_ack": args.no_ack, "video": video, "echo_guard": bool(args.speaker)}
    config = session_config(RATE, **options)
    try:
        user_audio = run_async(_session(args, cfg, config, steps, recorder))
    except KeyboardInterrupt:
        user_audio = np.concatenate(recorder.sent) if recorder.sent else np.zeros(0, dtype=np.int16)
    except Exception as exc:  # grpc.RpcError, SessionError or DeviceError: the status says why
        details = exc.details() if hasattr(exc, "details") else str(exc)
        print(f"emoomni: the session ended: {details}", file=sys.stderr)
        return 1
    finally:
        _close_devices(steps, recorder)
    if recorder.resume_token:
        keep_resume_token(recorder.session_id, recorder.resume_token)
    path, wav = recorder.write(Path(args.out), user_audio)
    for entry in (recorder.turns[t] for t in recorder.order):
        cut = f"  [interrupted: {entry['interrupt_reason']}]" if entry["interrupted"] else ""
        print(f"user : {entry['user_transcript']}")
        print(f"agent: {entry['heard_reply'] or entry['reply']}{cut}")
        print(f"       {json.dumps(entry['timings_ms'])}")
    for error in recorder.errors:
        print(f"error: {error}", file=sys.stderr)
    print(f"wrote {path} and {wav}")
    return 0


def resume_tokens_path() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "emoomni" / "resume_tokens.json"


def kept_resume_tokens() -> dict[str, str]:
    """Session id -> resume token, for the sessions this account started with `emoomni live`."""
    try:
        return json.loads(resume_tokens_path().read_text())
    except (OSError, ValueError):
        return {}


def keep_resume_token(session_id: str, token: str) -> None:
    """Kept owner-only (0600), the newest 200 sessions."""
    from emoomni.core.private_files import write_private

    tokens = {**kept_resume_tokens(), session_id: token}
    resume_tokens_path().parent.mkdir(parents=True, exist_ok=True)
    write_private(resume_tokens_path(), json.dumps(dict(list(tokens.items())[-200:]), indent=1))


def _device_steps(args, recorder: Recorder) -> list[Step]:
    """Open the local devices (closed by `_close_devices`): listen for `--seconds`, then wait for the replies."""
    listen = Listen(args.seconds, Microphone(args.mic), fps=args.fps)
    steps: list[Step] = [listen, UntilDone()]
    try:
        if args.camera and not args.no_video:
            listen.camera = Camera(args.camera)
        if args.speaker:
            recorder.loudspeaker = Loudspeaker(args.speaker)
    except DeviceError:
        _close_devices(steps, recorder)
        raise
    return steps


def _close_devices(steps: list[Step], recorder: Recorder) -> None:
    for step in steps:
        if isinstance(step, Listen):
            step.mic.close()
            if step.camera is not None:
                step.camera.close()
    if recorder.loudspeaker is not None:
        recorder.loudspeaker.close()
        recorder.loudspeaker = None


async def _session(args, cfg, config, steps: list[Step], recorder: Recorder) -> np.ndarray:
    if args.remote:
        return await hold_session(RemoteAgent(args.remote).session(config), steps, recorder)
    from emoomni.core.runtime import EmbeddedAgent
    from emoomni.core.telemetry import shutdown_tracing

    try:
        async with EmbeddedAgent(cfg) as agent:
            return await hold_session(LocalAgent(agent).session(config), steps, recorder)
    finally:
        shutdown_tracing()
