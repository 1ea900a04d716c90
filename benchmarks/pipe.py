"""EmoOmniPipe throughput on real models: minutes of video per minute of wall time, end to end and per stage, and
hours of video per core-hour; then the same input on Ray with 1 and 2 workers (the speed-up of the second).

Input: `--videos N` episodes cut from the shared clips (each 16.8 s: four utterances, three speakers, English and
Mandarin), each with its parts in another order so that every one is new content. Every run starts from an empty
output folder, so model loading is inside the figures (it is per worker, once per run).

    .venv/bin/python benchmarks/pipe.py [--videos 2] [--media ../shared/media] [--skip-ray]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import save  # noqa: E402
from emoomni.pipe.config import PipeConfig  # noqa: E402
from emoomni.pipe.episode import EPISODE, write_episode  # noqa: E402
from emoomni.pipe.executors import LocalExecutor, RayExecutor  # noqa: E402
from emoomni.pipe.runner import Pipeline  # noqa: E402


def make_inputs(folder: Path, media: Path, count: int) -> tuple[list[Path], float]:
    import av

    paths, seconds = [], 0.0
    for n in range(count):
        parts = EPISODE[n % len(EPISODE):] + EPISODE[:n % len(EPISODE)]
        path = write_episode(folder / f"episode{n}.mp4", media, parts)
        with av.open(str(path)) as container:
            seconds += container.duration / 1e6
        paths.append(path)
    return paths, seconds


def one_run(label: str, executor, inputs: list[Path], video_s: float, cores: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="pipe-bench-") as out:
        started = time.perf_counter()
        summary = Pipeline(PipeConfig(), out, executor, progress=False).run(inputs)
        wall = time.perf_counter() - started
    executor.close()
    stages = {s.name: {"wall_s": round(s.wall_s, 2), "busy_s": round(s.seconds, 2), "items": s.items_in,
                       "video_min_per_min": round(video_s / s.wall_s, 2) if s.wall_s else None}
              for s in summary.stages}
    result = {"label": label, "wall_s": round(wall, 1), "video_s": round(video_s, 1),
              "video_min_per_min": round(video_s / wall, 3),
              "video_h_per_core_h": round(video_s / (wall * cores), 3), "cores": cores,
              "rows": len(summary.outputs.get("ecot", [])), "stages": stages}
    print(f"{label}: {wall:.1f} s for {video_s:.1f} s of video -> {result['video_min_per_min']} min/min, "
          f"{result['video_h_per_core_h']} video-h per core-h, {result['rows']} E-CoT rows")
    for name, s in stages.items():
        print(f"  {name:<11} {s['wall_s']:>7.1f} s wall  {s['busy_s']:>7.1f} s busy  {s['items']:>3} items")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--media", default=os.environ.get("EMOOMNI_SHARED_MEDIA", ROOT.parent / "shared" / "media"))
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pipe-bench-in-") as folder:
        inputs, video_s = make_inputs(Path(folder), Path(args.media), args.videos)
        load = os.getloadavg()
        runs = [one_run("local, 1 worker", LocalExecutor(), inputs, video_s, 1)]
        if not args.skip_ray:
            runs.append(one_run("ray, 1 worker", RayExecutor(workers=1, num_cpus=1), inputs, video_s, 1))
            runs.append(one_run("ray, 2 workers", RayExecutor(workers=2, num_cpus=2), inputs, video_s, 2))
            runs[-1]["speedup_vs_1_worker"] = round(runs[-2]["wall_s"] / runs[-1]["wall_s"], 2)
            print(f"ray speed-up, 2 workers vs 1: {runs[-1]['speedup_vs_1_worker']}x")
    save("pipe", {"videos": args.videos, "load_average_at_start": [round(x, 2) for x in load],
                  "load_average_at_end": [round(x, 2) for x in os.getloadavg()], "runs": runs})


if __name__ == "__main__":
    main()
