"""Does the default reasoning read the feeling, follow it with its strategy, answer in the user's language and
avoid a stock opener? Runs the llama.cpp backend on every scenario of services/reasoning/data/scenarios.yaml
(English and Mandarin) with perception cues built from the scenario, maps each strategy with the real
instruction mapper, and reports:

- reading: the combined reading names the scenario's feeling;
- strategy follows emotion: the mapped delivery fits the feeling (worry and sadness: not faster and not
  louder than neutral, no bright or angry style; anger: not louder, no bright or angry style; joy, pride,
  surprise: pitch or energy up, no sad, angry, anxious or fearful style; neutral: any style but angry);
- language: Mandarin heard -> the reply has Han characters and no Latin letters; English -> ASCII;
- openers: the most common reply opening (first two words; first two characters in Mandarin) and its
  share (goal: no opener in more than 20 % of replies); "congratulat"/"恭喜" in replies to bad news;
- time: reasoning until the strategy is done and until the first reply sentence, per scenario.

    .venv/bin/python benchmarks/reasoning_quality.py [--model qwen2.5-coder-0.5b] [--limit N]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import save, summary  # noqa: E402
from emoomni.core.config import load_config  # noqa: E402
from emoomni.core.text import SentenceSplitter  # noqa: E402
from emoomni.services.instruction.core import InstructionCore  # noqa: E402
from emoomni.services.reasoning.backends.interface import EMOTION, INTENT, RESPONSE, STRATEGY  # noqa: E402
from emoomni.services.reasoning.backends.llama_cpp_backend import LlamaCppBackend  # noqa: E402
from emoomni.services.reasoning.prompt import NEGATIVE_READINGS, manner_label  # noqa: E402
from emoomni.v1 import perception_pb2 as pb  # noqa: E402

SCENARIOS = ROOT / "services" / "reasoning" / "data" / "scenarios.yaml"
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
BAD_NEWS = {"sad", "worried", "angry"}
POSITIVE = {"happy", "excited", "joyful", "relieved", "hopeful", "proud", "amused", "playful", "surprised"}
_HAN = re.compile(r"[\u4e00-\u9fff]")


def load_scenarios() -> list[dict]:
    return yaml.safe_load(SCENARIOS.read_text(encoding="utf-8"))


def perception_for(s: dict) -> pb.PerceptionResult:
    """The PerceptionResult perception would write for the scenario (face probabilities: 0.6 on the named
    expression, the rest spread evenly)."""
    result = pb.PerceptionResult()
    result.transcript.text, result.transcript.language = s["text"], s["lang"]
    result.cues.append(pb.Cue(modality="speech", text=f'The user said: "{s["text"]}"', brief=f'said "{s["text"]}"'))
    face = result.face
    face.frames_sampled = face.frames_with_face = 8
    face.dominant_expression, face.dominant_expression_frames = s["face"], 6
    for expression in EXPRESSIONS:
        face.mean_expression_scores[expression] = 0.6 if expression == s["face"] else 0.4 / (len(EXPRESSIONS) - 1)
    result.cues.append(pb.Cue(modality="face", text=f"Facial expression: mostly {s['face']} (6 of 8 frames with a "
                                                    "face, mean probability 0.60)", brief=f"face mostly {s['face']}"))
    for words in s["voice"]:
        result.cues.append(pb.Cue(modality="voice", text=f"Voice: {words}", brief=words))
    return result


BRIGHT_STYLES = {"happy", "excited", "amused", "hopeful"}
DARK_STYLES = {"sad", "angry", "anxious", "fearful"}


def strategy_fits(emotion: str, c) -> bool:
    """The mapped delivery fits the feeling: what a listener hears (pace, loudness, pitch) goes the right way,
    and the delivery's style is not of the opposite kind (no bright style for bad news, no sad or angry one for
    good news). Which of the fitting styles (tender, calm, serious, ...) is the mapper's to choose."""
    if emotion in ("worried", "sad"):
        return c.rate_scale <= 1.0 and c.energy_scale <= 1.0 and c.emotion not in BRIGHT_STYLES | {"angry"}
    if emotion == "angry":
        return c.energy_scale <= 1.02 and c.emotion not in BRIGHT_STYLES | {"angry"}
    if emotion in ("happy", "proud", "surprised"):
        return (c.pitch_scale > 1.0 or c.energy_scale > 1.0) and c.emotion not in DARK_STYLES
    return c.emotion != "angry"


def valence(label: str) -> str:
    return "negative" if label in NEGATIVE_READINGS else "positive" if label in POSITIVE else "neutral"


def copies_user(reply: str, said: str, lang: str, run: int = 4) -> bool:
    """The reply repeats a run of `run` words (Mandarin: `run` + 2 characters) of what the user said."""
    if lang == "zh":
        n = run + 2
        said_han = "".join(_HAN.findall(said))
        reply_han = "".join(_HAN.findall(reply))
        return any(said_han[i:i + n] in reply_han for i in range(len(said_han) - n + 1))
    words = lambda t: re.sub(r"[^\w\s']", " ", t.lower()).split()  # noqa: E731
    s, r = words(said), " ".join(words(reply))
    return any(" ".join(s[i:i + run]) in r for i in range(len(s) - run + 1))


def opener(reply: str, lang: str) -> str:
    reply = reply.strip().strip("\"'“”")
    if lang == "zh":
        return "".join(_HAN.findall(reply)[:2])
    return " ".join(re.sub(r"[^\w\s']", " ", reply.lower()).split()[:2])


def language_ok(reply: str, lang: str) -> bool:
    if lang == "zh":
        return bool(_HAN.search(reply)) and not re.search(r"[A-Za-z]", reply)
    return reply.isascii()


def run_scenario(backend: LlamaCppBackend, mapper: InstructionCore, s: dict) -> dict:
    parts = {EMOTION: "", INTENT: "", STRATEGY: "", RESPONSE: ""}
    splitter = SentenceSplitter()
    started = time.perf_counter()
    strategy_s = first_sentence_s = None
    for piece in backend.stream(perception_for(s), ""):
        parts[piece.part] += piece.text
        if piece.part == STRATEGY and piece.part_done:
            strategy_s = time.perf_counter() - started
        if piece.part == RESPONSE and piece.text and first_sentence_s is None and splitter.feed(piece.text):
            first_sentence_s = time.perf_counter() - started
    total_s = time.perf_counter() - started
    first_sentence_s = first_sentence_s or total_s
    reply = parts[RESPONSE].strip()
    # The labels (the tuned brain writes a short conclusion after them, past a comma).
    reading = parts[EMOTION].split("Overall, the user seems ", 1)[-1].split(",")[0].rstrip(".")
    controls = mapper.map(parts[STRATEGY].strip(), "en").controls
    return {"text": s["text"], "lang": s["lang"], "emotion": s["emotion"], "face": s["face"], "reading": reading,
            "reading_ok": s["emotion"] in reading.split(" and "), "intent": parts[INTENT].strip(),
            "strategy": parts[STRATEGY].strip(), "reply": reply,
            "controls": {"emotion": controls.emotion, "pitch": round(controls.pitch_scale, 2),
                         "rate": round(controls.rate_scale, 2), "energy": round(controls.energy_scale, 2)},
            "strategy_fits": strategy_fits(s["emotion"], controls),
            "strategy_follows_reading": strategy_fits(_reading_emotion(manner_label(reading)), controls),
            "valence_ok": valence(s["emotion"]) in {valence(label) for label in reading.split(" and ")},
            "copies_user": copies_user(reply, s["text"], s["lang"]), "language_ok": language_ok(reply, s["lang"]),
            "opener": opener(reply, s["lang"]),
            "congratulates_bad_news": s["emotion"] in BAD_NEWS and bool(re.search(r"(?i)congratulat|恭喜", reply)),
            "strategy_s": round(strategy_s or total_s, 3), "first_sentence_s": round(first_sentence_s, 3),
            "total_s": round(total_s, 3)}


def _reading_emotion(label: str) -> str:
    """A reading label as one of the scenario set's feelings (for strategy_fits)."""
    if label in NEGATIVE_READINGS:
        return {"angry": "angry", "annoyed": "angry", "frustrated": "angry", "disgusted": "angry",
                "sad": "sad", "disappointed": "sad", "lonely": "sad", "tired": "sad", "grieving": "sad"}.get(label,
                                                                                                      "worried")
    return "happy" if label in POSITIVE else "neutral"


def report(rows: list[dict]) -> dict:
    def share(key):
        return round(sum(r[key] for r in rows) / len(rows), 3)

    openers = Counter(r["opener"] for r in rows)
    top, count = openers.most_common(1)[0]
    return {"n": len(rows), "by_language": dict(Counter(r["lang"] for r in rows)),
            "reading_accuracy": share("reading_ok"), "strategy_follows_emotion": share("strategy_fits"),
            "strategy_follows_reading": share("strategy_follows_reading"), "valence_right": share("valence_ok"),
            "reply_in_user_language": share("language_ok"), "replies_copying_the_user": share("copies_user"),
            "top_opener": top, "top_opener_share": round(count / len(rows), 3),
            "openers": openers.most_common(8),
            "congratulates_bad_news": sum(r["congratulates_bad_news"] for r in rows),
            "strategy_s": summary([r["strategy_s"] for r in rows]),
            "first_sentence_s": summary([r["first_sentence_s"] for r in rows]),
            "total_s": summary([r["total_s"] for r in rows])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--limit", type=int, default=0, help="first N scenarios of each language only")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads (1 is faster on a crowded CPU)")
    parser.add_argument("--prompt-only", action="store_true", help="the prompt-only brain, not the tuned one")
    args = parser.parse_args()
    cfg = load_config(env={})
    cfg.reasoning.llama_cpp.model = args.model
    cfg.reasoning.llama_cpp.tuned = not args.prompt_only
    cfg.reasoning.llama_cpp.n_threads = args.threads
    backend, mapper = LlamaCppBackend(cfg.reasoning), InstructionCore(cfg)
    scenarios = load_scenarios()
    if args.limit:
        scenarios = [s for lang in ("en", "zh") for s in [x for x in scenarios if x["lang"] == lang][: args.limit]]
    list(backend.stream(perception_for(scenarios[0]), ""))  # warm the prompt cache, as the service does
    rows = []
    for s in scenarios:
        row = run_scenario(backend, mapper, s)
        rows.append(row)
        print(f"[{row['lang']}] {row['emotion']:9s} read {row['reading']:18s} fits={row['strategy_fits']!s:5s} "
              f"lang={row['language_ok']!s:5s} {row['first_sentence_s']:.1f}s | {row['strategy'][:70]} | "
              f"{row['reply'][:80]}", flush=True)
    result = report(rows)
    print({k: v for k, v in result.items() if k not in ("strategy_s", "total_s")})
    brain = "prompt-only" if args.prompt_only or not backend.tuned else "tuned"
    path = save(f"reasoning_quality_{args.model}_{brain}", {"benchmark": "reasoning_quality", "model": args.model,
                                                             "brain": brain, **result, "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
