"""The embedded default (`emoomni chat`'s path: one process, private nats-server) on the 5 s English clip.

Reports start-up time, and over warm turns the time to first audio and the whole turn, with the per-stage
compute. Goals on the 2-core machine: first audio <= 3 s, whole turn <= 6 s.

A turn on another clip (`--interleave`, not counted) runs before each measured turn: repeating the same clip
would let llama.cpp reuse the whole cached prompt, which a real conversation never does.

    .venv/bin/python benchmarks/embedded_turn.py [--turns 10] [--clip PATH] [--model smollm2-135m] [--prompt-only]

--prompt-only serves the prompt-only brain (worked examples, the text-emotion classifier) instead of the tuned one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import save, summary  # noqa: E402
from emoomni.core.aio import run_async  # noqa: E402
from emoomni.core.config import load_config  # noqa: E402
from emoomni.core.runtime import EmbeddedAgent  # noqa: E402
from emoomni.sdk.result import TurnResult  # noqa: E402
from emoomni.v1 import agent_pb2, media_pb2  # noqa: E402


async def one_turn(agent: EmbeddedAgent, clip: str) -> TurnResult:
    result = TurnResult()
    async for event in agent.run_turn(agent_pb2.ConverseRequest(media=media_pb2.MediaInput(path=clip))):
        result.add(event)
    return result


async def run(clip: str, turns: int, interleave: str, model: str = "", tuned: bool = True) -> dict:
    cfg = load_config()
    if model:
        cfg.reasoning.llama_cpp.model = model
    cfg.reasoning.llama_cpp.tuned = tuned
    started = time.perf_counter()
    async with EmbeddedAgent(cfg) as agent:
        startup_s = time.perf_counter() - started
        rows = []
        for i in range(turns + 1):
            if i:
                await one_turn(agent, interleave)
            t = (await one_turn(agent, clip)).done.timings
            if i == 0:
                cold = {"first_audio_ms": t.first_audio_ms, "total_ms": t.total_ms}
                continue
            rows.append(t)
            print(f"turn {i:2d}: first audio {t.first_audio_ms:6.0f} ms  total {t.total_ms:6.0f} ms  "
                  f"(perception {t.perception_ms:.0f}, reasoning {t.reasoning_ms:.0f}, "
                  f"instruction {t.instruction_ms:.0f}, talker {t.talker_ms:.0f})", flush=True)
    pick = lambda name: summary([getattr(t, name) for t in rows])  # noqa: E731
    return {"startup_s": round(startup_s, 1), "first_turn_after_startup": cold,
            "first_audio_ms": pick("first_audio_ms"), "total_ms": pick("total_ms"),
            "perception_ms": pick("perception_ms"), "reasoning_ms": pick("reasoning_ms"),
            "instruction_ms": pick("instruction_ms"), "talker_ms": pick("talker_ms"),
            "framework_overhead_ms": pick("framework_overhead_ms")}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--clip", default=str(ROOT.parent / "shared" / "media" / "merged_7e578e0b.mp4"))
    parser.add_argument("--interleave", default=str(ROOT / "samples" / "hello.mp4"))
    parser.add_argument("--model", default="", help="reasoning.llama_cpp.model (default: the config's)")
    parser.add_argument("--prompt-only", action="store_true", help="the prompt-only brain, not the tuned one")
    args = parser.parse_args()
    load_before = os.getloadavg()
    # The event loop `emoomni chat` uses.
    data = run_async(run(args.clip, args.turns, args.interleave, args.model, not args.prompt_only))
    model = args.model or load_config().reasoning.llama_cpp.model
    opts = load_config().reasoning.llama_cpp
    tuned = not args.prompt_only and (args.model or opts.model) == "qwen2.5-coder-0.5b" and not opts.model_path
    brain = "tuned" if tuned or opts.adapter_path else "prompt-only"
    path = save(f"embedded_turn_{model}_{brain}", {"benchmark": "embedded_turn", "reasoning_model": model,
                                           "brain": brain,
                                           "clip": Path(args.clip).name,
                                           "interleaved_with": Path(args.interleave).name,
                                           "load_average_1_5_15": {"before": load_before, "after": os.getloadavg()},
                                           "goal": "first audio <= 3 s, whole turn <= 6 s", **data})
    print(f"first audio ms: {data['first_audio_ms']}\ntotal ms: {data['total_ms']}\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
