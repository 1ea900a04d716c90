"""Soak: N concurrent clients send real turns through `emoomni up` for a long time; does anything fail or grow?

    python benchmarks/soak.py [--minutes 30] [--clients 8] [--clip PATH]

Each client runs full turns back to back (the same clean-turn check as talker_swap.py: ends with `done`, audio
complete and in order). Records turns, failures, first audio and total time (median / p99), and the resident
memory (RSS) of every process of the stack at the start (after one warm-up turn per client) and at the end.
Goal: 0 failed turns, RSS growth under 10 %. Writes results/soak.json."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: `benchmarks` is then not importable from its own folder

from benchmarks.common import save, stack_processes, summary  # noqa: E402
from emoomni.core.supervisor import descendants  # noqa: E402
from emoomni.testing.talker_swap import run_clients  # noqa: E402


def stack_rss_mib() -> dict[str, float]:
    """RSS in MiB of every process below this one (the stack `stack_processes` started), by a short name."""
    out = {}
    for pid, argv in descendants(os.getpid()).items():
        try:
            status = (Path("/proc") / str(pid) / "status").read_text()
        except OSError:
            continue
        name = ("nats-server" if argv[0].endswith("nats-server") else f"serve {argv[-1]}" if "serve" in argv
                else "emoomni up" if argv[-1] == "up" else " ".join(argv[-2:]))
        rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        out[name] = round(rss_kib / 1024, 1)
    return out


def run_soak(gateway: str, clip: Path, clients: int, seconds: float, rss_every_s: float = 0.0) -> dict:
    """Turns for `seconds`; with `rss_every_s`, also the stack's RSS at that interval (a curve that levels off is
    warm-up or allocator high water, one that keeps rising is a leak)."""
    stop_at = time.monotonic() + seconds
    samples: list[dict] = []
    sampling = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while not sampling.wait(rss_every_s):
            samples.append({"minute": round((time.monotonic() - started) / 60, 1), **stack_rss_mib()})

    sampler = threading.Thread(target=sample, daemon=True) if rss_every_s else None
    if sampler:
        sampler.start()
    outcomes = run_clients(gateway, clip, clients, lambda done: time.monotonic() < stop_at)
    sampling.set()
    ok = [o for o in outcomes if o.ok]
    failed = [o.problem for o in outcomes if not o.ok]
    return {"turns": len(outcomes), "failed": len(failed), "failures": failed[:20],
            "first_audio_ms": summary([o.first_audio_ms for o in ok]) if ok else {},
            "total_ms": summary([o.total_ms for o in ok]) if ok else {}, "rss_mib_by_minute": samples}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--clip", default=str(ROOT.parent / "shared" / "media" / "merged_7e578e0b.mp4"))
    parser.add_argument("--rss-every-s", type=float, default=60.0, help="RSS sampling interval (0: start and end)")
    parser.add_argument("--name", default="soak", help="results/<name>.json")
    args = parser.parse_args()
    clip = Path(args.clip)
    with stack_processes() as (addrs, _):
        warm = run_soak(addrs["gateway"], clip, args.clients, 1.0)  # one turn per client: models warm
        rss_start = stack_rss_mib()
        started = time.time()
        result = run_soak(addrs["gateway"], clip, args.clients, args.minutes * 60, args.rss_every_s)
        rss_end = stack_rss_mib()
    growth = {name: round(100 * (rss_end[name] - mib) / mib, 1)
              for name, mib in rss_start.items() if name in rss_end}
    report = {"minutes": args.minutes, "clients": args.clients, "clip": clip.name, "warmup_failed": warm["failed"],
              "started_unix": int(started), **result, "rss_mib_start": rss_start, "rss_mib_end": rss_end,
              "rss_growth_pct": growth}
    path = save(args.name, report)
    print(f"{result['turns']} turns, {result['failed']} failed in {args.minutes:g} min with {args.clients} clients")
    if result["first_audio_ms"]:
        fa, total = result["first_audio_ms"], result["total_ms"]
        print(f"first audio median {fa['median']:.0f} ms, p99 {fa['p99']:.0f} ms; "
              f"turn median {total['median']:.0f} ms, p99 {total['p99']:.0f} ms")
    for name in rss_start:
        end = rss_end.get(name, 0)
        print(f"RSS {name:18s} {rss_start[name]:8.1f} -> {end:8.1f} MiB ({growth.get(name, 0):+.1f} %)")
    print(f"wrote {path}")
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
