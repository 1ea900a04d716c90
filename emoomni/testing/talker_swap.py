"""Hot swap under load: N concurrent clients run full turns through the public API while the active talker
is switched every second, alternately by a NATS TalkerControl message and by the Talker.SetActiveTalker RPC.
Shared by the test (tests/test_stack_e2e.py) and the benchmark (benchmarks/talker_swap.py).

A turn counts as clean when it ends with `done`, its audio sequence numbers run 0..n without a gap, the last
chunk is flagged, and every chunk came from one engine. The test in tests/test_stack_e2e.py runs the same
load (`run_swap_load`) against its stack and asserts that every turn is clean."""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import nats
from pydantic import BaseModel

from emoomni.core.bus import TALKER_CONTROL, TALKER_STATUS
from emoomni.sdk.client import Client, TalkerClient
from emoomni.v1 import bus_pb2


class TurnOutcome(BaseModel):
    ok: bool
    problem: str = ""
    talkers: list[str] = []
    chunks: int = 0
    first_audio_ms: float = 0.0
    total_ms: float = 0.0


class SwapReport(BaseModel):
    turns: list[TurnOutcome]
    swaps: int
    swap_errors: list[str]
    statuses: int
    load_ms: list[float]

    @property
    def failed(self) -> list[TurnOutcome]:
        return [t for t in self.turns if not t.ok]


def _one_turn(gateway: str, clip: Path) -> TurnOutcome:
    try:
        with Client(gateway) as client:
            events = list(client.converse(clip))
    except Exception as exc:  # a failed RPC is exactly what this load looks for
        return TurnOutcome(ok=False, problem=f"{type(exc).__name__}: {exc}")
    audio = [e.audio for e in events if e.WhichOneof("event") == "audio"]
    talkers = sorted({a.talker for a in audio})
    outcome = TurnOutcome(ok=False, talkers=talkers, chunks=len(audio))
    if not events or events[-1].WhichOneof("event") != "done":
        outcome.problem = f"turn did not end with done: {events[-1] if events else 'no events'}"
    elif [a.seq for a in audio] != list(range(len(audio))) or not audio or not audio[-1].last:
        outcome.problem = f"audio sequence broken: {[a.seq for a in audio]}"
    elif len(talkers) != 1:
        outcome.problem = f"one turn spoken by several engines: {talkers}"
    else:
        t = events[-1].done.timings
        outcome.ok, outcome.first_audio_ms, outcome.total_ms = True, t.first_audio_ms, t.total_ms
    return outcome


def run_clients(gateway: str, clip: Path, clients: int, more: Callable[[int], bool]) -> list[TurnOutcome]:
    """`clients` threads, each running turns back to back while `more(turns it has done)` holds (also the soak
    benchmark's load)."""
    outcomes: list[TurnOutcome] = []
    lock = threading.Lock()

    def client_loop() -> None:
        done = 0
        while more(done):
            outcome = _one_turn(gateway, clip)
            done += 1
            with lock:
                outcomes.append(outcome)

    workers = [threading.Thread(target=client_loop) for _ in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return outcomes


async def _swapper(nats_url: str, talker_addr: str, engines: list[str], every_s: float, stop: threading.Event,
                   report: dict) -> None:
    nc = await nats.connect(nats_url)
    statuses: list[bus_pb2.TalkerStatus] = []

    async def on_status(msg) -> None:
        statuses.append(bus_pb2.TalkerStatus.FromString(msg.data))

    await nc.subscribe(TALKER_STATUS, cb=on_status)
    cycle = itertools.cycle(engines[1:] + engines[:1])
    with TalkerClient(talker_addr) as rpc:
        for i in itertools.count():
            if stop.is_set():
                break
            name = next(cycle)
            if i % 2 == 0:
                control = bus_pb2.TalkerControl(active=name, request_id=uuid.uuid4().hex)
                await nc.publish(TALKER_CONTROL, control.SerializeToString())
            else:
                try:
                    reply = await asyncio.to_thread(rpc.set_active, name)
                    report["load_ms"].append(reply.load_ms)
                except Exception as exc:  # recorded, and the test fails on it
                    report["swap_errors"].append(f"rpc {name}: {exc}")
            report["swaps"] += 1
            await asyncio.sleep(every_s)
    await nc.flush()
    await asyncio.sleep(0.5)
    await nc.close()
    report["statuses"] = len(statuses)
    report["load_ms"] += [s.load_ms for s in statuses]
    report["swap_errors"] += [f"nats {s.active}: {s.error}" for s in statuses if s.error]


def run_swap_load(gateway: str, talker_addr: str, nats_url: str, clip: Path, clients: int = 8, turns: int = 2,
                  engines: tuple[str, ...] = ("piper", "espeak"), every_s: float = 1.0) -> SwapReport:
    """Run `clients` x `turns` turns while swapping engines every `every_s`; ends with engines[0] active."""
    stop = threading.Event()
    swap_state: dict = {"swaps": 0, "swap_errors": [], "statuses": 0, "load_ms": []}
    swapper = threading.Thread(target=asyncio.run, args=(_swapper(nats_url, talker_addr, list(engines), every_s,
                                                                   stop, swap_state),))
    swapper.start()
    outcomes = run_clients(gateway, clip, clients, lambda done: done < turns)
    stop.set()
    swapper.join()
    with TalkerClient(talker_addr) as rpc:
        rpc.set_active(engines[0])
    return SwapReport(turns=outcomes, **swap_state)

