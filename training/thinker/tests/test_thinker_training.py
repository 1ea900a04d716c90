"""Thinker training on a tiny random-weight Qwen2.5-Omni checkpoint of the real architecture, with real clips
and the reference E-CoT as stage-2 targets.

What these tests prove: the ms-swift messages data loads and bad lines are reported (file:line: reason),
skipped and counted; a wrong --base fails before any work; stage 2 (LoRA on every linear layer of the language
model, encoders frozen) overfits two samples (the loss falls by more than half), a run resumed from a
checkpoint in a new process (`emoomni train ... --resume latest`) continues the same loss curve, and the adapter
loads through `reasoning.omni.adapter_path` and changes the omni backend's output; stage 1 trains the language
model in full while the encoders stay bit-identical, and its output loads as `reasoning.omni.model_path`;
Qwen3-Omni trains through the same code. What they do not prove: anything about answer quality or GPU speed
(the weights are random and tiny; benchmarks/train_gpu.py measures the 7B architecture on a GPU).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from emoomni.core.config import OmniConfig, load_config
from emoomni.services.reasoning.backends import build_backend
from emoomni.services.reasoning.backends.interface import EMOTION, INTENT, RESPONSE, STRATEGY
from emoomni.services.reasoning.backends.omni_backend import load_thinker
from emoomni.services.reasoning.tests.test_omni_backend import omni_config
from emoomni.v1 import perception_pb2
from training.cli import run as train
from training.common.config import ConfigError
from training.conftest import QUESTION, assert_resumed_curve, cut_run, ecot_answer, losses, messages_line, write_jsonl
from training.thinker.train import is_frozen

ROOT = Path(__file__).resolve().parents[3]
STAGE1 = ROOT / "training" / "configs" / "thinker_stage1.yaml"
STAGE2 = ROOT / "training" / "configs" / "thinker_stage2.yaml"
ORDER = [EMOTION, INTENT, STRATEGY, RESPONSE]
# Small-run settings on top of the paper's recipe: a batch of one, a short warm-up, 1 fps, samples encoded once,
# gradient checkpointing only where a test says so (on CPU it costs ~4x here), short eval generation.
FAST = ["optim.total_batch_size=1", "optim.warmup_steps=2", "logging_steps=1", "save_total_limit=10",
        "media.fps=1", "data.cache=true", "model.gradient_checkpointing=false", "eval.generate_samples=1",
        "eval.max_new_tokens=40"]
STAGE1_RUN = [*FAST, "optim.lr=1e-2", "optim.scheduler=constant_with_warmup", "optim.max_steps=30",
              "save_steps=100"]
STAGE2_RUN = [*FAST, "optim.lr=1e-2", "optim.max_steps=10", "save_steps=5", "eval_steps=1000"]


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory, tiny_omni_checkpoint, stage1_jsonl):
    """Stage 1 on the two clips' descriptions: the full language model learns, 30 steps."""
    out = tmp_path_factory.mktemp("runs") / "stage1"
    return out, train("thinker", str(STAGE1), str(out), data=[str(stage1_jsonl)], base=str(tiny_omni_checkpoint),
                      overrides=STAGE1_RUN)


@pytest.fixture(scope="module")
def stage2_run(tmp_path_factory, stage1_run, stage2_jsonl):
    """Stage 2 on the stage-1 output, as the paper chains them: LoRA on the full E-CoT, 10 steps, a checkpoint
    every 5, the held-out hook on the same clips."""
    out = tmp_path_factory.mktemp("runs") / "stage2"
    summary = train("thinker", str(STAGE2), str(out), data=[str(stage2_jsonl)], eval_data=str(stage2_jsonl),
                    base=str(stage1_run[0] / "final"), overrides=STAGE2_RUN)
    return out, summary


def test_stage1_overfits_two_samples_and_keeps_the_encoders_frozen(stage1_run, tiny_omni_checkpoint):
    out, summary = stage1_run
    curve = losses(out)
    assert sorted(curve) == list(range(1, 31))
    first, last = (curve[1] + curve[2]) / 2, (curve[29] + curve[30]) / 2
    assert last < first / 2, curve
    base = load_thinker(OmniConfig(model_path=str(tiny_omni_checkpoint)))[0]
    tuned = load_thinker(OmniConfig(model_path=str(out / "final")))[0]
    before, after = dict(base.named_parameters()), dict(tuned.named_parameters())
    encoders = [n for n in after if is_frozen(n, ["audio_tower", "visual"])]
    language = [n for n in after if n not in encoders]
    assert encoders and language and summary["trainable_params"] < summary["total_params"]
    assert all(torch.equal(after[n], before[n]) for n in encoders)
    assert sum(not torch.equal(after[n], before[n]) for n in language) > len(language) / 2


def test_stage2_lora_learns_and_the_eval_hook_scores(stage2_run):
    out, summary = stage2_run
    curve = losses(out)
    assert sorted(curve) == list(range(1, 11))
    assert (curve[9] + curve[10]) / 2 < (curve[1] + curve[2]) / 2, curve
    # Only the LoRA weights learned (r 8 on the language model): a small share of the whole thinker.
    assert 0 < summary["trainable_params"] < summary["total_params"] / 10
    adapter = json.loads((out / "final" / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"], adapter["lora_dropout"]) == (8, 32, 0.05)
    names = load_file(str(out / "final" / "adapter_model.safetensors"))
    assert names and not any("audio_tower" in n or "visual" in n or "lm_head" in n for n in names)
    assert {n.split(".")[-3] for n in names} == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                 "down_proj"}
    # The eval hook: held-out loss and the share of generated answers that parse into the four parts.
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_loss" in r for r in evals) and any("eval_example" in r for r in evals)
    assert 0.0 <= summary["eval"]["eval_ecot_parse_share"] <= 1.0


def test_run_folder_records_config_commit_and_data(stage2_run, stage2_jsonl):
    out, _ = stage2_run
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["stage"] == 2 and config["lora"] == {"r": 8, "alpha": 32, "dropout": 0.05}
    assert config["optim"]["lr"] == 1e-2 and config["media"]["max_frames"] == 40
    run = json.loads((out / "run.json").read_text())["starts"][0]
    assert len(run["commit"]) == 40 and "transformers" in run["versions"]
    data = json.loads((out / "data.json").read_text())["files"]
    assert data[0]["sha256"] == hashlib.sha256(stage2_jsonl.read_bytes()).hexdigest()
    assert (data[0]["lines"], data[0]["kept"], data[0]["skipped"]) == (2, 2, 0)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-10", "checkpoint-5"]
    held = out / "checkpoints" / "checkpoint-5"
    assert {"optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"} <= {p.name for p in held.iterdir()}


def test_resume_in_a_new_process_continues_the_same_loss_curve(stage1_run, stage2_run, tmp_path, stage2_jsonl):
    """The stage-2 run is cut after checkpoint-5 (as if the machine died there) and resumed with the CLI."""
    out, _ = stage2_run
    cut = cut_run(out, tmp_path / "stage2", "checkpoint-10")
    proc = subprocess.run(
        [sys.executable, "-m", "emoomni", "train", "thinker", "--config", str(STAGE2), "--data", str(stage2_jsonl),
         "--eval", str(stage2_jsonl), "--base", str(stage1_run[0] / "final"), "--out", str(cut), "--resume",
         "latest", *[arg for item in STAGE2_RUN for arg in ("--set", item)]],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_resumed_curve(out, cut, 10, 5)
    starts = json.loads((cut / "run.json").read_text())["starts"]
    assert [s["resume"] for s in starts] == [False, True]


def perception():
    result = perception_pb2.PerceptionResult(cues=[perception_pb2.Cue(modality="speech", text="She whispered.",
                                                                      brief="whispered")])
    result.transcript.language = "en"
    return result


def test_adapter_loads_with_one_config_line_and_changes_the_backend(stage1_run, stage2_run, english_clip):
    out, _ = stage2_run
    stage1 = stage1_run[0] / "final"
    serve = yaml.safe_load((out / "final" / "serve.yaml").read_text())
    assert serve == {"reasoning": {"backend": "omni", "omni": {"model_path": str(stage1.resolve()),
                                                               "adapter_path": str((out / "final").resolve())}}}
    # Stage 1's output is itself a thinker folder the backend serves (reasoning.omni.model_path).
    base = build_backend(omni_config(stage1).reasoning)
    tuned_cfg = load_config(out / "final" / "serve.yaml", env={})
    tuned_cfg.reasoning.omni.max_part_chars, tuned_cfg.reasoning.omni.max_new_tokens = 40, 300
    tuned = build_backend(tuned_cfg.reasoning)
    assert type(tuned.model).__name__ == "PeftModel"
    inputs = base.prepare(perception(), "", str(english_clip))
    with torch.no_grad():
        assert not torch.allclose(base.model(**inputs).logits[0, -1], tuned.model(**inputs).logits[0, -1])
    texts = [{}, {}]
    for backend, text in zip((base, tuned), texts, strict=True):
        for piece in backend.stream(perception(), "", str(english_clip)):
            text[piece.part] = text.get(piece.part, "") + piece.text
    assert list(texts[1]) == ORDER and texts[0] != texts[1]


def test_bad_lines_are_reported_skipped_and_counted(tmp_path, tiny_omni_checkpoint, english_clip,
                                                    reference_ecot):
    good = messages_line(english_clip, ecot_answer(reference_ecot[english_clip.name]))
    lines = [
        good,
        "{not json",
        {**good, "videos": [str(tmp_path / "gone.mp4")]},
        {**good, "messages": [good["messages"][0], {"role": "user", "content": "<clip>hi"}, good["messages"][2]]},
        {**good, "messages": [*good["messages"][:2], {"role": "assistant", "content": "<emotion>calm</emotion>"}]},
        {**good, "messages": [good["messages"][0], {"role": "user", "content": QUESTION + " x" * 9000},
                              good["messages"][2]]},
        {**good, "videos": []},
    ]
    data = write_jsonl(tmp_path / "mixed.jsonl", lines)
    out = tmp_path / "run"
    summary = train("thinker", str(STAGE2), str(out), data=[str(data)], base=str(tiny_omni_checkpoint),
                    overrides=[*FAST, "optim.max_steps=1", "data.max_length=4096",
                               "model.gradient_checkpointing=true"])
    assert summary["steps"] == 1
    report = json.loads((out / "data.json").read_text())["files"][0]
    assert (report["lines"], report["kept"], report["skipped"]) == (7, 1, 6)
    reasons = dict(r.removeprefix(f"{data}:").split(": ", 1) for r in report["reasons"])
    assert reasons == {
        "2": "not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        "3": f"missing file videos[0]: {tmp_path / 'gone.mp4'}",
        "4": "unknown placeholder <clip> in a user message (known: <video>, <audio>, <image>)",
        "5": "the answer does not parse into the four E-CoT parts (it stops before finishing the intent part)",
        "6": reasons["6"],
        "7": "1 <video> placeholder(s) but 0 file(s) in 'videos'"}
    assert reasons["6"].endswith("tokens, over the cap of 4096 (data.max_length)")
    with pytest.raises(ConfigError, match="none of the 1 training line"):
        train("thinker", str(STAGE2), str(tmp_path / "run2"), data=[str(write_jsonl(tmp_path / "bad.jsonl",
                                                                                    ["[]"]))],
              base=str(tiny_omni_checkpoint), overrides=FAST)


def test_a_wrong_base_fails_before_any_work(tmp_path):
    """The data file does not exist: the error must be about --base, and no run folder may appear."""
    (tmp_path / "llm").mkdir()
    (tmp_path / "llm" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ConfigError, match="local model folder"):
        train("thinker", str(STAGE2), str(tmp_path / "run"), data=[str(tmp_path / "unread.jsonl")],
              base=str(tmp_path / "nowhere"))
    proc = subprocess.run([sys.executable, "-m", "emoomni", "train", "thinker", "--config", str(STAGE2), "--data",
                           str(tmp_path / "unread.jsonl"), "--base", str(tmp_path / "llm"), "--out",
                           str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "holds a 'llama' model" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "run").exists()


def test_qwen3_omni_trains_through_the_same_code(tmp_path, stage2_jsonl):
    from training.thinker.random_checkpoint import write_tiny_checkpoint

    base = write_tiny_checkpoint(tmp_path / "tiny-qwen3-omni", family="qwen3_omni")
    summary = train("thinker", str(STAGE2), str(tmp_path / "run"), data=[str(stage2_jsonl)], base=str(base),
                    overrides=[*FAST, "optim.max_steps=2", "save_steps=100"])
    assert summary["steps"] == 2 and (tmp_path / "run" / "final" / "adapter_model.safetensors").is_file()
    cfg = load_config(tmp_path / "run" / "final" / "serve.yaml", env={})
    assert type(build_backend(cfg.reasoning).model).__name__ == "PeftModel"


def test_deepspeed_zero2_config_is_shipped():
    config = json.loads((ROOT / "training" / "configs" / "deepspeed" / "zero2.json").read_text())
    assert config["zero_optimization"]["stage"] == 2
    assert config["train_micro_batch_size_per_gpu"] == "auto" and config["bf16"]["enabled"] == "auto"


def test_gpu_training_benchmark_runs_its_whole_path_on_a_tiny_model(tmp_path):
    """benchmarks/train_gpu.py on the tiny size and CPU, so that the script is known to work before a GPU is
    lent; its CPU timings of a 2-layer model mean nothing and are not recorded."""
    out = tmp_path / "train_gpu.json"
    run = subprocess.run([sys.executable, "benchmarks/train_gpu.py", "--size", "tiny", "--device", "cpu",
                          "--steps", "1", "--warmup", "1", "--seconds", "2", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [s["stage"] for s in result["stages"]] == [1, 2] and [s["tune"] for s in result["stages"]] == \
        ["full", "lora"]
    for stage in result["stages"]:
        assert stage["step_s"]["n"] == 1 and stage["samples_per_s"] > 0 and stage["tokens_per_sample"] > 300
    assert result["stages"][1]["trainable_params"] < result["stages"][0]["trainable_params"]
