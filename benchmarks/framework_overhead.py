"""Framework overhead per turn through the multi-process stack (`emoomni up`).

Overhead = the turn's wall time minus the union of the stages' compute intervals, as each stage reports them:
what the bus, gRPC, serialization, the object store and scheduling add. Goal: <= 5 ms p50, <= 15 ms p99.

    .venv/bin/python benchmarks/framework_overhead.py [--turns 30] [--clip PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import save, stack_processes, summary  # noqa: E402
from emoomni.sdk.client import Client  # noqa: E402
from emoomni.sdk.result import TurnResult  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--clip", default=str(ROOT.parent / "shared" / "media" / "merged_7e578e0b.mp4"))
    parser.add_argument("--input", choices=["upload", "path"], default="upload",
                        help="upload the clip's bytes (ConverseUpload) or send a path the server reads (Converse)")
    args = parser.parse_args()
    # Server-side paths are read only under configured media roots: the clip's folder here.
    roots = {"security": {"media_roots": [str(Path(args.clip).resolve().parent)]}} if args.input == "path" else {}
    with stack_processes(config=roots) as (addrs, _):
        overhead, total, first_audio = [], [], []
        with Client(addrs["gateway"]) as client:
            client.run_turn(args.clip)  # warm-up turn, not counted
            for i in range(args.turns):
                result = TurnResult()
                events = client.converse(args.clip) if args.input == "upload" else client.converse_path(args.clip)
                for event in events:
                    result.add(event)
                t = result.done.timings
                overhead.append(t.framework_overhead_ms)
                total.append(t.total_ms)
                first_audio.append(t.first_audio_ms)
                print(f"turn {i + 1:2d}: overhead {t.framework_overhead_ms:6.2f} ms  total {t.total_ms:7.0f} ms",
                      flush=True)
        data = {"benchmark": "framework_overhead", "clip": Path(args.clip).name, "mode": "emoomni up (5 processes)",
                "input": args.input,
                "framework_overhead_ms": summary(overhead), "total_ms": summary(total),
                "first_audio_ms": summary(first_audio), "goal": "overhead <= 5 ms p50, <= 15 ms p99"}
        path = save(f"framework_overhead_{args.input}", data)
        print(f"overhead ms: {data['framework_overhead_ms']}\nwrote {path}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
