"""Hot swap under load: N concurrent clients run full turns through the public API while the active talker
is switched every second, alternately by a NATS TalkerControl message and by the Talker.SetActiveTalker RPC.

    python benchmarks/talker_swap.py [--clients 8] [--turns 3] [--engines piper,espeak]

The load itself (`run_swap_load`) lives in emoomni.testing.talker_swap, shared with tests/test_stack_e2e.py."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: `benchmarks` is then not importable from its own folder

from emoomni.sdk.client import Client  # noqa: E402
from emoomni.testing.talker_swap import run_swap_load  # noqa: E402


def main() -> int:
    from benchmarks.common import save, stack_processes, summary

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--turns", type=int, default=3, help="turns per client")
    parser.add_argument("--engines", default="piper,espeak")
    parser.add_argument("--clip", default=str(ROOT.parent / "shared" / "media" / "merged_7e578e0b.mp4"))
    args = parser.parse_args()
    with stack_processes() as (addrs, nats_url):
        with Client(addrs["gateway"]) as client:
            client.run_turn(args.clip)  # warm-up turn
        started = time.perf_counter()
        report = run_swap_load(addrs["gateway"], addrs["talker"], nats_url, Path(args.clip), args.clients,
                               args.turns, tuple(args.engines.split(",")))
        wall = time.perf_counter() - started
        ok = [t for t in report.turns if t.ok]
        by_engine: dict[str, int] = {}
        for t in ok:
            by_engine[t.talkers[0]] = by_engine.get(t.talkers[0], 0) + 1
        data = {"benchmark": "talker_swap", "clients": args.clients, "turns": len(report.turns),
                "failed_turns": len(report.failed), "problems": [t.problem for t in report.failed],
                "swaps": report.swaps, "swap_errors": report.swap_errors, "replica_statuses": report.statuses,
                "turns_by_engine": by_engine, "wall_s": round(wall, 1),
                "first_audio_ms": summary([t.first_audio_ms for t in ok]) if ok else {},
                "total_ms": summary([t.total_ms for t in ok]) if ok else {},
                "engine_switch_load_ms": summary(report.load_ms) if report.load_ms else {}}
        path = save("talker_swap", data)
        print(yaml.safe_dump(data, sort_keys=False))
        print(f"wrote {path}")
        return 0 if not report.failed and not report.swap_errors else 1


if __name__ == "__main__":
    sys.exit(main())
