"""`emoomni train instruction`: the delivery head trained under the common command and config style; the run
folder records it, and the head loads into the instruction mapper with one config line."""

import json
from pathlib import Path

import torch

from emoomni.core.config import load_config
from emoomni.services.instruction.backends.embedding_head import EmbeddingHeadMapper
from emoomni.services.instruction.delivery import DeliveryHead
from training.cli import run as train

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "instruction_head.yaml"
STRATEGIES = ["I will answer in a soft, slow whisper.", "I will cheer loudly and quickly with them!",
              "I will speak gravely and gently about the loss."]


def test_train_instruction_head_and_serve_it_with_one_config_line(tmp_path):
    out = tmp_path / "head"
    summary = train("instruction", str(CONFIG), str(out), overrides=["epochs=150", "seed=1"])
    assert summary["heldout_accuracy"] >= 0.75
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["heldout_accuracy"] == summary["heldout_accuracy"] and record["heldout_checked"] == 50
    assert [f["path"].rsplit("/", 1)[1] for f in json.loads((out / "data.json").read_text())["files"]] == \
        ["facets.yaml", "heldout.yaml"]

    cfg = load_config(out / "final" / "serve.yaml", env={})
    assert cfg.instruction.head_path == str((out / "final").resolve())
    tuned, packaged = EmbeddingHeadMapper(cfg.instruction), EmbeddingHeadMapper(load_config(env={}).instruction)
    saved = DeliveryHead.load(out / "final")
    assert all(torch.equal(a, b) for a, b in zip(tuned.head.state_dict().values(), saved.state_dict().values(),
                                                strict=True))
    outputs = [(tuned.map(s, "en").controls, packaged.map(s, "en").controls) for s in STRATEGIES]
    assert any(mine != shipped for mine, shipped in outputs)
    assert tuned.map(STRATEGIES[0], "en").controls.voice_quality == "whisper"
