"""Runs the agent on every manifest item, embedded (the models load in this process, as `emoomni chat`
does) or against a running stack (`--remote`, as `emoomni chat --remote`). Each finished item is written
to DIR/items/<id>/ (turn.json, reply.wav) in one rename, so an interrupted run never leaves an item that
looks done; a later run skips the items that are done."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from emoomni.eval.manifest import ManifestItem


@dataclass
class RunOutcome:
    ran: list[str]
    skipped: list[str]
    failed: dict[str, str]


def item_dir(out: Path, item_id: str) -> Path:
    return out / "items" / item_id


def is_done(out: Path, item_id: str) -> bool:
    d = item_dir(out, item_id)
    return (d / "turn.json").is_file() and (d / "reply.wav").is_file()


def _store(out: Path, item: ManifestItem, result, wall_ms: float) -> None:
    """Write turn.json + reply.wav into a scratch folder, then rename it into place."""
    final = item_dir(out, item.id)
    scratch = final.with_name(f".{item.id}.partial")
    shutil.rmtree(scratch, ignore_errors=True)
    result.write(scratch)
    origin = min((s.start_unix_ns for s in result.stage_timings), default=0)
    spans = [{"stage": s.stage, "sentence_index": s.sentence_index,
              "start_ms": round((s.start_unix_ns - origin) / 1e6, 1),
              "end_ms": round((s.end_unix_ns - origin) / 1e6, 1)}
             for s in result.stage_timings]
    meta = {**item.model_dump(), "wall_ms": round(wall_ms, 1),
            "first_audio_client_ms": round(result.first_audio_client_ms, 1), "stage_spans": spans}
    (scratch / "item.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    scratch.rename(final)
    (out / "items" / f".{item.id}.error").unlink(missing_ok=True)


def _record_failure(out: Path, item: ManifestItem, message: str, failed: dict[str, str]) -> None:
    failed[item.id] = message
    (out / "items").mkdir(parents=True, exist_ok=True)
    (out / "items" / f".{item.id}.error").write_text(message + "\n")
    print(f"emoomni eval: item {item.id!r}: {message}", file=sys.stderr)


def run_items(items: list[ManifestItem], base: Path, out: Path, cfg, remote: str = "", concurrency: int = 1,
              talker: str = "") -> RunOutcome:
    """Run every item that is not done yet; a failing item is recorded and the others go on."""
    out.mkdir(parents=True, exist_ok=True)
    todo = [i for i in items if not is_done(out, i.id)]
    outcome = RunOutcome(ran=[], skipped=[i.id for i in items if is_done(out, i.id)], failed={})
    if not todo:
        return outcome
    bar = tqdm(total=len(todo), desc="agent turns", unit="item", file=sys.stderr, dynamic_ncols=True)
    try:
        if remote:
            asyncio.run(_run_remote(todo, base, out, remote, concurrency, talker, outcome, bar))
        else:
            from emoomni.core.aio import run_async

            run_async(_run_embedded(todo, base, out, cfg, concurrency, talker, outcome, bar))
    finally:
        bar.close()
    return outcome


async def _run_embedded(todo, base, out, cfg, concurrency, talker, outcome, bar) -> None:
    from emoomni.core.media import MediaError
    from emoomni.core.runtime import EmbeddedAgent
    from emoomni.sdk.result import TurnResult
    from emoomni.services.gateway.core import TurnFailed
    from emoomni.v1 import agent_pb2, media_pb2

    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(agent, item: ManifestItem) -> None:
        async with gate:
            clip = item.video_path(base).resolve()
            request = agent_pb2.ConverseRequest(context=item.context, talker=talker,
                                                media=media_pb2.MediaInput(path=str(clip), filename=clip.name))
            result = TurnResult()
            started = time.perf_counter()
            result.started = started
            try:
                async for event in agent.run_turn(request):
                    result.add(event)
                if result.done is None:
                    raise RuntimeError("the turn ended without a result")
                await asyncio.to_thread(_store, out, item, result, (time.perf_counter() - started) * 1e3)
                outcome.ran.append(item.id)
            except (MediaError, TurnFailed, RuntimeError, ValueError, OSError) as exc:
                _record_failure(out, item, f"{type(exc).__name__}: {exc}", outcome.failed)
            bar.update(1)

    async with EmbeddedAgent(cfg) as agent:
        await asyncio.gather(*(one(agent, item) for item in todo))


async def _run_remote(todo, base, out, remote, concurrency, talker, outcome, bar) -> None:
    import grpc

    from emoomni.sdk.client import Client

    gate = asyncio.Semaphore(max(1, concurrency))

    def turn(item: ManifestItem):
        with Client(remote) as client:
            return client.run_turn(item.video_path(base), item.context, talker=talker)

    async def one(item: ManifestItem) -> None:
        async with gate:
            started = time.perf_counter()
            try:
                result = await asyncio.to_thread(turn, item)
                if result.done is None:
                    raise RuntimeError("the turn ended without a result")
                await asyncio.to_thread(_store, out, item, result, (time.perf_counter() - started) * 1e3)
                outcome.ran.append(item.id)
            except grpc.RpcError as exc:
                _record_failure(out, item, f"{exc.code().name}: {exc.details()}", outcome.failed)
            except (RuntimeError, ValueError, OSError) as exc:
                _record_failure(out, item, f"{type(exc).__name__}: {exc}", outcome.failed)
            bar.update(1)

    await asyncio.gather(*(one(item) for item in todo))
