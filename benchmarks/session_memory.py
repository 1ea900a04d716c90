"""A 20-turn live-session conversation through the real reasoning backend (the default llama.cpp model): does the
time to the reply grow with the remembered turns? Compares the shipped layout (conversation before the cues, a
window that jumps) with the previous one (conversation after the cues, a window sliding every turn), A B A B so
that machine load hits both alike. Reasoning only: perception, the talker and the bus are measured elsewhere.

    .venv/bin/python benchmarks/session_memory.py [--turns 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import save, summary  # noqa: E402
from emoomni.core.config import load_config  # noqa: E402
from emoomni.services.gateway import memory as memory_module  # noqa: E402
from emoomni.services.gateway.memory import RememberedTurn, SessionMemory  # noqa: E402
from emoomni.services.reasoning import prompt  # noqa: E402
from emoomni.services.reasoning.backends import build_backend  # noqa: E402
from emoomni.services.reasoning.backends.interface import RESPONSE  # noqa: E402
from emoomni.v1 import perception_pb2  # noqa: E402

SAID = ["I lost my job today and I don't know what to tell my family.", "They were counting on me for the rent.",
        "My brother says I should just apply everywhere.", "But I am tired, I have been applying for months.",
        "Maybe I should take a break first.", "Do you think that is selfish?", "Okay, that helps a bit.",
        "I will talk to my wife tonight.", "She always knows what to say.", "But what if she is disappointed?",
        "We have been saving for a trip to Spain.", "Now we might have to cancel it.", "That makes me so sad.",
        "Our daughter was looking forward to it too.", "Maybe we can go somewhere closer instead.",
        "You are right, the beach is only two hours away.", "She loves the sea anyway.",
        "I feel a little lighter now.", "I think I can face them tonight.", "Thank you for listening to me."]
FACES = ["face mostly sad", "face mostly neutral", "face mostly sad", "face mostly happy"]


def previous_layout():
    """The layout before 2026-12-02: history after the cues, the newest turns that fit, re-chosen every turn."""
    def cue_block(perception, context):
        text = "Cues: " + "; ".join(c.brief or c.text for c in perception.cues)
        return text + (f"\nEarlier conversation: {context.strip()}" if context.strip() else "")

    def recent(self, max_turns, max_chars):
        return memory_module._newest_fitting(self.turns, max_turns, max_chars)

    return cue_block, recent


def conversation(backend, layout: str, turns: int, cfg) -> list[dict]:
    shipped = (prompt.cue_block, SessionMemory.recent)
    if layout == "previous":
        prompt.cue_block, SessionMemory.recent = previous_layout()
    try:
        memory, rows = SessionMemory(session_id=f"bench-{layout}"), []
        for i in range(turns):
            said = SAID[i % len(SAID)]
            perception = perception_pb2.PerceptionResult(cues=[
                perception_pb2.Cue(modality="speech", brief=f'said "{said}"'),
                perception_pb2.Cue(modality="face", brief=FACES[i % len(FACES)]),
                perception_pb2.Cue(modality="voice", brief="quiet voice; slow speech")])
            context, history = memory.context(cfg.live.history_turns, cfg.live.history_chars)
            start, first, reply = time.perf_counter(), 0.0, ""
            for piece in backend.stream(perception, context):
                if piece.part == RESPONSE and piece.text.strip():
                    first = first or time.perf_counter() - start
                    reply += piece.text
            rows.append({"turn": i, "history_turns": history, "context_chars": len(context),
                         "first_reply_s": round(first, 3), "whole_s": round(time.perf_counter() - start, 3)})
            memory.add(RememberedTurn(turn_id=f"t{i}", user=said, feeling="Overall, the user seems sad.",
                                      reply_heard=reply.strip()))
        return rows
    finally:
        prompt.cue_block, SessionMemory.recent = shipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cfg = load_config(env={})
    backend = build_backend(cfg.reasoning, cfg.limits)
    runs: dict[str, list[list[dict]]] = {"shipped": [], "previous": []}
    for _ in range(args.rounds):
        for layout in ("shipped", "previous"):
            runs[layout].append(conversation(backend, layout, args.turns, cfg))
            print(layout, [r["first_reply_s"] for r in runs[layout][-1]], flush=True)
    figures = {}
    for layout, rounds in runs.items():
        rows = [r for run in rounds for r in run]
        later = [r["first_reply_s"] for r in rows if r["turn"] >= 5]
        figures[layout] = {
            "first_reply_s_turns_5_on": summary(later),
            "first_reply_s_first_5": summary([r["first_reply_s"] for r in rows if r["turn"] < 5]),
            "first_reply_s_last_5": summary([r["first_reply_s"] for r in rows if r["turn"] >= args.turns - 5]),
            "max_history_turns": max(r["history_turns"] for r in rows),
            "max_context_chars": max(r["context_chars"] for r in rows)}
        print(layout, figures[layout], flush=True)
    print("saved", save("session_memory", {"turns": args.turns, "rounds": args.rounds, "figures": figures,
                                            "runs": runs}))


if __name__ == "__main__":
    main()
