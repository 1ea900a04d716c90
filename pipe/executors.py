"""Executors run one stage over a list of items and yield (item, Result) as each finishes, so the runner records
every result the moment it exists (a crash loses only the items in flight).

`local`: in this process (workers=1) or in a pool of worker processes, each loading the stage's models once.
`ray`: a pool of Ray actors per stage, each reserving the stage's declared CPUs/GPUs and loading its models once;
`ray_address` joins a running cluster (files are passed by path: the output folder must be shared by the nodes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed

from emoomni.pipe.stage import Result, Stage

_worker_stage: Stage | None = None


def _init_worker(stage: Stage) -> None:
    global _worker_stage
    _worker_stage = stage


def _run_in_worker(item: dict) -> Result:
    return _worker_stage.run_one(item)


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int = 1):
        self.workers = max(1, workers)

    def map(self, stage: Stage, items: list[dict]) -> Iterator[tuple[dict, Result]]:
        if self.workers == 1 or len(items) < 2:
            for item in items:
                yield item, stage.run_one(item)
            return
        with ProcessPoolExecutor(min(self.workers, len(items)), initializer=_init_worker,
                                 initargs=(stage,)) as pool:
            futures = {pool.submit(_run_in_worker, item): item for item in items}
            for future in as_completed(futures):
                yield futures[future], future.result()

    def close(self) -> None:
        pass


class RayExecutor:
    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None, num_cpus: int | None = None):
        import ray

        self.ray = ray
        self.workers = max(1, workers)
        self._started = not ray.is_initialized()
        if self._started:
            kwargs = {"address": address} if address else {"num_cpus": num_cpus or self.workers}
            # Ray sets OMP_NUM_THREADS=1 in its workers unless told; Whisper's int8 kernels then round differently
            # and a word can change. The driver's value (or OpenMP's default, the core count) keeps the two executors
            # computing alike.
            omp = os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count() or 1)
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False,
                     runtime_env={"env_vars": {"OMP_NUM_THREADS": omp}}, **kwargs)
        self._actor = ray.remote(_StageActor)

    def map(self, stage: Stage, items: list[dict]) -> Iterator[tuple[dict, Result]]:
        if not items:
            return
        from ray.util import ActorPool

        # An actor reserves at most what the cluster has, so a 2-CPU stage still runs on a 1-CPU test cluster.
        available = self.ray.cluster_resources().get("CPU", 1.0)
        cpus = min(stage.resources.cpus, available)
        actors = [self._actor.options(num_cpus=cpus, num_gpus=stage.resources.gpus).remote(stage)
                  for _ in range(min(self.workers, len(items)))]
        try:
            pool = ActorPool(actors)
            yield from pool.map_unordered(lambda actor, it: actor.run.remote(it), items)
        finally:
            for actor in actors:
                self.ray.kill(actor)

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()


class _StageActor:
    def __init__(self, stage: Stage):
        self.stage = stage

    def run(self, item: dict) -> tuple[dict, Result]:
        return item, self.stage.run_one(item)


def make_executor(name: str, workers: int = 1, ray_address: str | None = None):
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(workers, ray_address)
    raise ValueError(f"unknown executor {name!r} (local or ray)")
