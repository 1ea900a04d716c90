"""Talker training on a tiny random-weight Qwen3-TTS checkpoint of the real architecture (the plugin's own tiny
checkpoint, with a wider initializer range so its output heads can fit targets), with the real clips' speech and
the reference reply texts and instructions as (instruction, text, audio) triples.

What these tests prove: the sequence the trainer builds is exactly the one qwen-tts speaks from; bad lines are
reported (file:line: reason), skipped and counted, and a wrong --base fails before any work; LoRA overfits two
samples (the loss falls by more than half); a resumed run continues the same loss curve; the adapter loads into
the plugin through its adapter_path option (serve.yaml) and changes the audio it makes. What they do not prove:
anything about voice quality (the weights are random and tiny) or speed at 1.7B.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from emoomni.services.talker.registry import discover
from emoomni.v1 import instruction_pb2
from training.cli import run as train
from training.common.config import ConfigError
from training.conftest import assert_lora_halves_the_loss, assert_resumed_curve, cut_run, write_jsonl

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "talker_lora.yaml"
RUN = ["optim.total_batch_size=1", "optim.warmup_steps=2", "optim.lr=2e-2", "optim.scheduler=constant_with_warmup",
       "optim.max_steps=30", "save_steps=15", "lora.r=16", "data.max_audio_s=6"]
CLIPS = {"merged_7e578e0b.mp4": "en", "samplenew3_00083538.mp4": "zh"}


@pytest.fixture(scope="module")
def tiny_tts(tmp_path_factory) -> Path:
    from emoomni_talker_qwen3tts.tiny import write_tiny_checkpoint

    folder = tmp_path_factory.mktemp("qwen3-tts-tiny")
    write_tiny_checkpoint(folder, init_std=0.3)
    return folder


@pytest.fixture(scope="module")
def talker_jsonl(tmp_path_factory, shared_media, reference_ecot) -> Path:
    """Two good triples (the clips' speech, their reference replies and instructions) and bad lines."""
    folder = tmp_path_factory.mktemp("talker-data")
    with wave.open(str(folder / "long.wav"), "wb") as handle:  # 8 s, over data.max_audio_s
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes((np.random.default_rng(0).normal(0, 3000, 8 * 16000)).astype(np.int16).tobytes())
    (folder / "notaudio.wav").write_text("plain text")
    good = [{"instruction": reference_ecot[clip]["instruction"], "text": reference_ecot[clip]["response"],
             "language": language, "audio": str(shared_media / clip)} for clip, language in CLIPS.items()]
    bad = [{**good[0], "audio": "gone.wav"}, {**good[0], "text": "  "}, {**good[0], "audio": "long.wav"},
           {**good[0], "audio": "notaudio.wav"}, "{not json"]
    return write_jsonl(folder / "talker.jsonl", [good[0], *bad, good[1]])


@pytest.fixture(scope="module")
def talker_run(tmp_path_factory, tiny_tts, talker_jsonl):
    out = tmp_path_factory.mktemp("runs") / "talker"
    return out, train("talker", str(CONFIG), str(out), data=[str(talker_jsonl)], base=str(tiny_tts), overrides=RUN)


def load_talker(options: dict):
    plugin = discover()["qwen3-tts"]({"max_new_tokens": 8, "seed": 0, **options})
    plugin.load()
    return plugin


def test_the_trained_sequence_is_the_one_qwen_tts_speaks_from(tiny_tts):
    talker = load_talker({"model_path": str(tiny_tts)})
    seen = []
    model = talker.engine.model.talker
    hook = model.register_forward_pre_hook(lambda _m, _a, kw: seen.append(kw.get("inputs_embeds")), with_kwargs=True)
    instruction = instruction_pb2.AcousticInstruction(text="Speak softly in a whisper.")
    try:
        audio = np.concatenate([a.pcm16 for a in talker.synthesize("Hello there.", instruction, "en")])
    finally:
        hook.remove()
    finetune = talker.finetune()
    sample = finetune.sample("Speak softly in a whisper.", "Hello there.", "en", audio.astype(np.float32) / 32767,
                             talker.sample_rate)
    with torch.no_grad():
        assert torch.equal(finetune.prefix(model, sample), seen[0])


def test_bad_lines_are_skipped_and_counted(talker_run, talker_jsonl):
    out, _ = talker_run
    data = json.loads((out / "data.json").read_text())["files"][0]
    assert (data["lines"], data["kept"], data["skipped"]) == (7, 2, 5)
    reasons = "\n".join(data["reasons"])
    for line, why in ((2, "missing audio file: gone.wav"), (3, "text: Value error, must not be empty"),
                      (4, "long.wav: the clip lasts 8.0 s, over the 6 s limit"),
                      (5, "notaudio.wav: not a readable audio"), (6, "not valid JSON")):
        assert f"{talker_jsonl}:{line}: " in reasons and why in reasons, (line, why, reasons)


def test_wrong_base_fails_before_any_work(tmp_path, talker_jsonl):
    for base in (tmp_path, talker_jsonl):
        with pytest.raises(ConfigError, match="--base"):
            train("talker", str(CONFIG), str(tmp_path / "x"), data=[str(talker_jsonl)], base=str(base))
        assert not (tmp_path / "x").exists()


def test_lora_overfits_two_samples(talker_run):
    out, summary = talker_run
    assert_lora_halves_the_loss(out, summary, 30)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["kind"] == "talker" and config["optim"]["lr"] == 2e-2
    assert yaml.safe_load(CONFIG.read_text())["optim"]["lr"] == 1e-5  # the paper's rate ships


def test_resume_continues_the_same_loss_curve(talker_run, tmp_path, talker_jsonl, tiny_tts):
    out, _ = talker_run
    cut = cut_run(out, tmp_path / "cut", "checkpoint-30")
    train("talker", str(CONFIG), str(cut), data=[str(talker_jsonl)], base=str(tiny_tts), overrides=RUN, resume="latest")
    assert_resumed_curve(out, cut, 30, 15)


def test_adapter_loads_through_the_plugin_option_and_changes_the_audio(talker_run, tiny_tts):
    out, _ = talker_run
    serve = yaml.safe_load((out / "final" / "serve.yaml").read_text())["talker"]
    assert serve["active"] == "qwen3-tts"
    options = serve["plugins"]["qwen3-tts"]
    assert options == {"model_path": str(tiny_tts.resolve()), "adapter_path": str((out / "final").resolve())}
    instruction = instruction_pb2.AcousticInstruction(text="Speak in a soft, encouraging whisper")
    audio = [np.concatenate([a.pcm16 for a in load_talker(o).synthesize("That is amazing!", instruction, "en")])
             for o in ({"model_path": options["model_path"]}, options)]
    assert audio[0].shape != audio[1].shape or not np.array_equal(audio[0], audio[1])
