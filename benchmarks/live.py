"""Live session figures on this machine: voice to voice, quick acknowledgement, end-of-turn decision, barge-in
stop, a long session's latency and memory, and concurrent sessions.

Runs `emoomni up` on free ports (every service its own process, the default models) and streams the shared
clips in real time over the public gRPC `Agent.Session`, playing the agent's audio on a simulated loudspeaker
that reports playback, as a client would.

    .venv/bin/python benchmarks/live.py [--turns 20] [--barge-ins 6] [--sessions 4] [--out benchmarks/live.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT.parent / "shared" / "media"
CLIPS = ["merged_7e578e0b.mp4", "merged_b6b785ce.mp4", "samplenew3_00083538.mp4"]


def figures(values: list[float]) -> dict:
    values = sorted(v for v in values if v > 0)
    if not values:
        return {"n": 0}
    p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
    return {"n": len(values), "median": round(statistics.median(values), 1), "p99": round(p99, 1),
            "min": round(values[0], 1), "max": round(values[-1], 1)}


async def session(gateway: str, steps, **options):
    from emoomni.sdk.live import AsyncLiveSession, session_config
    from emoomni.testing.live import RATE, Recorder, hold_session

    recorder = Recorder()
    config = session_config(RATE, video=True, **options)
    await hold_session(AsyncLiveSession.connect(gateway, config), steps, recorder)
    return [recorder.turns[t] for t in recorder.order], recorder


def main() -> int:
    from emoomni.core.config import load_config
    from emoomni.testing.live import load_clip
    from emoomni.testing.stack import running_stack

    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=20, help="turns of the long session")
    parser.add_argument("--barge-ins", type=int, default=6)
    parser.add_argument("--sessions", type=int, default=4, help="concurrent sessions")
    parser.add_argument("--gap", type=float, default=2.0)
    parser.add_argument("--preemptive", choices=["off", "complete", "always"], default=None,
                        help="live.preemptive for this run (default: the config's)")
    parser.add_argument("--provisional-ms", type=float, default=None,
                        help="live.provisional_every_ms for this run (0 = no provisional transcripts)")
    parser.add_argument("--parts", default="long,barge,concurrent", help="which parts to run, comma-separated")
    parser.add_argument("--config-json", default="{}",
                        help='more stack config for this run, e.g. \'{"talker": {"by_language": {}}}\'')
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "live.json"))
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    cfg = load_config(env={})
    clips = [load_clip(MEDIA / name, cfg, fps=2.0, video=True) for name in CLIPS]
    report: dict = {"date": datetime.now(UTC).isoformat(timespec="minutes"), "machine": platform.machine(),
                    "cpus": os.cpu_count(), "load_before": os.getloadavg()}
    live = {"preemptive": args.preemptive} if args.preemptive else {}
    if args.provisional_ms is not None:
        live["provisional_every_ms"] = args.provisional_ms
    config = {"live": live, **json.loads(args.config_json)} if live else json.loads(args.config_json) or None
    report["preemptive"] = args.preemptive or cfg.live.preemptive
    report["config"] = config
    report["provisional_every_ms"] = cfg.live.provisional_every_ms if args.provisional_ms is None else \
        args.provisional_ms
    with running_stack(config=config) as (addrs, _):
        gateway = addrs["gateway"]
        if "long" in parts:
            report["long_session"] = long_session(gateway, clips, args)
            print(json.dumps(report["long_session"], indent=1), flush=True)
        if "barge" in parts:
            report["barge_in"] = barge_ins(gateway, clips, args)
            print(json.dumps(report["barge_in"], indent=1), flush=True)
        if "concurrent" in parts:
            report["concurrent"] = concurrent(gateway, clips, args)
            print(json.dumps(report["concurrent"], indent=1), flush=True)
    report["load_after"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


def long_session(gateway: str, clips, args) -> dict:
    """Every clip in turn, a pause after each; memory grows to its cap and stays there."""
    from emoomni.testing.live import Silence, Speak, UntilDone

    started, steps = time.perf_counter(), []
    for i in range(args.turns):
        clip = clips[i % len(clips)]
        steps += [Speak(clip.audio, clip.frames), Silence(args.gap), UntilDone()]
    turns, recorder = asyncio.run(session(gateway, steps))
    ended = recorder.ended
    return {
        "turns": len(turns), "wall_s": round(time.perf_counter() - started, 1),
        "voice_to_voice_ms": figures([t["timings_ms"]["voice_to_voice"] for t in turns]),
        "ack_ms": figures([t["timings_ms"]["ack"] for t in turns]),
        "end_of_turn_ms": figures([t["timings_ms"]["end_of_turn"] for t in turns]),
        "first_audio_after_decision_ms": figures([t["timings_ms"]["first_audio"] for t in turns]),
        "acks": sum(1 for t in turns if t["ack"]),
        "turns_with_provisional_transcripts": sum(1 for t in turns if t["provisional_transcripts"]),
        "preemptive_turns": sum(1 for t in turns if t["preemptive"]),
        "preemptive_starts": ended.preemptive_starts if ended else None,
        "preemptive_cancelled": ended.preemptive_cancelled if ended else None,
        "history_turns": [t["history_turns"] for t in turns],
        "errors": [t["error"] for t in turns if t["error"]],
        "voice_to_voice_first_5_vs_last_5_ms": [
            figures([t["timings_ms"]["voice_to_voice"] for t in turns[:5]]).get("median"),
            figures([t["timings_ms"]["voice_to_voice"] for t in turns[-5:]]).get("median")],
    }


def barge_ins(gateway: str, clips, args) -> dict:
    """The next clip starts 1 s after the reply's first audio."""
    from emoomni.testing.live import AfterFirstAudio, Silence, Speak, UntilDone

    steps = []
    for i in range(args.barge_ins + 1):
        clip = clips[i % len(clips)]
        steps += [Speak(clip.audio, clip.frames), AfterFirstAudio(1.0)]
    steps[-1] = Silence(args.gap)
    steps.append(UntilDone())
    turns, recorder = asyncio.run(session(gateway, steps))
    stopped = [t for t in turns if t["interrupt_reason"] == "barge_in"]
    return {"interruptions": len(stopped), "attempted": args.barge_ins,
            "barge_in_stop_ms": figures([t["timings_ms"]["barge_in_stop"] for t in stopped]),
            "barge_in_stop_ms_incl_zero": [t["timings_ms"]["barge_in_stop"] for t in stopped],
            "barge_in_decided_ms": figures([t["timings_ms"]["barge_in_decided"] for t in stopped]),
            "stale_chunks_after_interrupted": recorder.stale_audio}


def concurrent(gateway: str, clips, args) -> dict:
    """`--sessions` sessions at once, three turns each."""
    from emoomni.testing.live import Silence, Speak, UntilDone

    async def many():
        runs = []
        for s in range(args.sessions):
            steps = []
            for i in range(3):
                clip = clips[(s + i) % len(clips)]
                steps += [Speak(clip.audio, clip.frames), Silence(args.gap), UntilDone()]
            runs.append(session(gateway, steps))
        return await asyncio.gather(*runs, return_exceptions=True)

    results = asyncio.run(many())
    ok = [r for r in results if not isinstance(r, BaseException)]
    turns = [t for run_turns, _ in ok for t in run_turns]
    return {"sessions": args.sessions, "failed_sessions": len(results) - len(ok),
            "failed_turns": sum(1 for t in turns if t["error"]), "turns": len(turns),
            "errors": [t["error"] for t in turns if t["error"]] + [repr(r) for r in results if r not in ok],
            "voice_to_voice_ms": figures([t["timings_ms"]["voice_to_voice"] for t in turns])}


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    np.seterr(all="ignore")
    raise SystemExit(main())
