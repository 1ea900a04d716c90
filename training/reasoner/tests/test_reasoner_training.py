"""Reasoner training on a tiny random-weight llama GGUF (SmolLM2's architecture and real tokenizer, shrunk), with
a real clip (through the cascade's own perception) and the reference E-CoT as one target, and English and Mandarin
text-cue lines (the corpus's compact form) as the others.

What these tests prove: bad lines are reported (file:line: reason), skipped and counted, and a wrong --base fails
before any work; LoRA overfits the three samples (the loss falls by more than half), Unicode included; a resumed run
continues the same loss curve; the exported GGUF adapter loads into llama.cpp through one config line, changes the
cascade backend's output, and llama.cpp with it computes what the trained peft model computes (so the tensor names,
layout, alpha and the rotary row order of q/k are right). What they do not prove: answer quality (the weights are
random and tiny) or training speed on the real 0.5B model (benchmarks/reasoner_train_speed.py; the shipped adapter
itself is checked by services/reasoning/tests/test_tuned_brain.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from emoomni.core.config import load_config
from emoomni.services.reasoning.backends import build_backend
from emoomni.services.reasoning.backends.interface import RESPONSE
from training.cli import run as train
from training.common.config import ConfigError
from training.conftest import (
    assert_lora_halves_the_loss,
    assert_resumed_curve,
    cut_run,
    ecot_answer,
    messages_line,
    write_jsonl,
)
from training.reasoner.data import cues_from_text

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "reasoner_lora.yaml"
CUES = 'Cues: said "I lost my keys again and I am late for work."; face mostly sad; voice quiet; slow speech'
TEXT_ANSWER = ecot_answer({"emotion_analysis": "The user sounds frustrated and tired, with a low voice.",
                           "intent": "They want a quick way to stop losing their keys and to calm down.",
                           "strategy": "I will respond calmly and practically, with one simple tip.",
                           "response": "That sounds stressful. Try one fixed hook by the door for your keys."})
ZH_CUES = 'Cues: said "我的猫两天没回家了。"; face mostly sad; voice quiet'
ZH_ANSWER = ecot_answer({"emotion_analysis": "worried and sad, quiet voice, the cat has been gone two days",
                         "intent": "wants help to find the cat and some comfort",
                         "strategy": "Calmly and gently, slow pace: reassure, then give one search step.",
                         "response": "猫走丢两天还常常能找回来。今晚拿它的猫粮在附近轻轻叫叫它。"})
RUN = ["data.eval=", "optim.total_batch_size=1", "optim.per_device_batch_size=1", "optim.warmup_steps=2",
       "optim.lr=2e-2", "optim.scheduler=constant_with_warmup", "optim.max_steps=30", "save_steps=15",
       "lora.r=16", "data.perception_threads=1"]



@pytest.fixture(scope="module")
def reasoner_jsonl(tmp_path_factory, shared_media, reference_ecot):
    """Three good lines (a clip with its reference E-CoT; English text cues; Mandarin text cues, in the corpus's
compact form) and one of each kind of bad line."""
    clip = "merged_7e578e0b.mp4"
    good = [messages_line(shared_media / clip, ecot_answer(reference_ecot[clip])),
            {"messages": [{"role": "user", "content": CUES}, {"role": "assistant", "content": TEXT_ANSWER}]}]
    bad = [messages_line(shared_media / "gone.mp4", TEXT_ANSWER),
           {"messages": [{"role": "user", "content": "<clip>Hi"}, {"role": "assistant", "content": TEXT_ANSWER}]},
           {"messages": [{"role": "user", "content": CUES}, {"role": "assistant", "content": "<emotion>x</emotion>"}]},
           {"messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": TEXT_ANSWER}]},
           {"messages": [{"role": "user", "content": CUES},
                         {"role": "assistant", "content": TEXT_ANSWER.replace("frustrated and tired", "odd")}]},
           {"messages": [{"role": "user", "content": CUES},
                         {"role": "assistant", "content": TEXT_ANSWER.replace("Try one", "Try one " * 2000)}]},
           "{not json"]
    mandarin = {"messages": [{"role": "user", "content": ZH_CUES}, {"role": "assistant", "content": ZH_ANSWER}]}
    return write_jsonl(tmp_path_factory.mktemp("reasoner-data") / "train.jsonl", [good[0], *bad, good[1], mandarin])


@pytest.fixture(scope="module")
def reasoner_run(tmp_path_factory, tiny_llama_gguf, reasoner_jsonl):
    out = tmp_path_factory.mktemp("runs") / "reasoner"
    return out, train("reasoner", str(CONFIG), str(out), data=[str(reasoner_jsonl)], base=str(tiny_llama_gguf),
                      overrides=RUN)


def test_bad_lines_are_skipped_and_counted(reasoner_run, reasoner_jsonl):
    out, _ = reasoner_run
    data = json.loads((out / "data.json").read_text())["files"][0]
    assert (data["lines"], data["kept"], data["skipped"]) == (10, 3, 7)
    reasons = "\n".join(data["reasons"])
    for line, why in ((2, "missing file videos[0]"), (3, "unknown placeholder <clip>"), (4, "four E-CoT parts"),
                      (5, "must give the cues"), (6, "names none of the emotion words"),
                      (7, "over the cap of 512"), (8, "not valid JSON")):
        assert f"{reasoner_jsonl}:{line}: " in reasons and why in reasons, (line, why, reasons)
    # The clip went through the cascade's own perception once; its cues are kept beside the run.
    cues = json.loads((out / "perception.json").read_text())
    assert len(cues) == 1 and next(iter(cues.values()))["cues"]


def test_wrong_base_fails_before_any_work(tmp_path, reasoner_jsonl, tiny_llama_gguf, reasoner_run):
    _, summary = reasoner_run
    for base in (reasoner_jsonl, tmp_path / "missing.gguf", summary["adapter"]):
        with pytest.raises(ConfigError, match="--base"):
            train("reasoner", str(CONFIG), str(tmp_path / "x"), data=[str(reasoner_jsonl)], base=str(base))
        assert not (tmp_path / "x").exists()


def test_lora_overfits_two_samples(reasoner_run):
    out, summary = reasoner_run
    assert_lora_halves_the_loss(out, summary, 30)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["kind"] == "reasoner" and config["optim"]["lr"] == 2e-2
    assert len(json.loads((out / "run.json").read_text())["starts"][0]["commit"]) == 40


def test_resume_continues_the_same_loss_curve(reasoner_run, tmp_path, reasoner_jsonl, tiny_llama_gguf):
    """The run is cut after checkpoint-15 (as if the machine died there) and resumed."""
    out, _ = reasoner_run
    cut = cut_run(out, tmp_path / "cut", "checkpoint-30")
    train("reasoner", str(CONFIG), str(cut), data=[str(reasoner_jsonl)], base=str(tiny_llama_gguf), overrides=RUN,
          resume="latest")
    assert_resumed_curve(out, cut, 30, 15)


def test_adapter_serves_through_one_config_line_and_matches_the_trained_model(reasoner_run, tiny_llama_gguf):
    from llama_cpp import Llama
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out, summary = reasoner_run
    serve = load_config(out / "final" / "serve.yaml", env={})
    assert serve.reasoning.llama_cpp.adapter_path == summary["adapter"]
    serve.reasoning.llama_cpp.temperature = 0.0
    backend = build_backend(serve.reasoning)
    assert backend.tuned, "an adapter brings the compact layout it was trained on"
    perception, context = cues_from_text(CUES)
    pieces = list(backend.stream(perception, context))
    assert "".join(p.text for p in pieces if p.part == RESPONSE).strip()

    # The adapter changes what the model computes on the served prompt ...
    prompt = backend._turn_prompt("I lost my keys again.", "en")
    logits = []
    for lora in (None, summary["adapter"]):
        llm = Llama(str(tiny_llama_gguf), lora_path=lora, n_ctx=512, logits_all=True, verbose=False)
        tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        llm.eval(tokens)
        logits.append(np.array(llm.scores[len(tokens) - 1]))
    assert np.abs(logits[1] - logits[0]).max() > 0.1 * np.abs(logits[0]).max()

    # ... and llama.cpp with the adapter computes what the trained peft model computes.
    prompt = f"<|im_start|>user\n{CUES}<|im_end|>\n<|im_start|>assistant\nEmotion: Overall, the user seems"
    llm = Llama(str(tiny_llama_gguf), lora_path=summary["adapter"], n_ctx=512, logits_all=True, verbose=False)
    ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    llm.eval(ids)
    served = np.array(llm.scores[len(ids) - 1])
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_gguf.parent), gguf_file=tiny_llama_gguf.name)
    model.hf_quantizer.remove_quantization_config(model)
    with torch.no_grad():
        trained = PeftModel.from_pretrained(model, str(out / "final")).eval()(torch.tensor([ids])).logits[0, -1]
    assert np.abs(served - trained.numpy()).max() < 0.02 * np.abs(trained.numpy()).max()
