"""The training config style (YAML + --set, unknown keys refused) and `emoomni train` run outside the checkout's
root folder (training/ is found beside the installed emoomni package)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from training.common.config import ConfigError, load
from training.thinker.config import ThinkerConfig

STAGE2 = Path(__file__).resolve().parents[2] / "configs" / "thinker_stage2.yaml"


def test_overrides_keep_their_types_and_unknown_keys_are_refused():
    cfg = load(ThinkerConfig, STAGE2, ["optim.lr=2e-5", "media.audio_in_video=false", "data.train=[a.jsonl]"],
               **{"model.base": "/models/omni"})
    assert cfg.optim.lr == 2e-5 and cfg.media.audio_in_video is False and cfg.data.train == ["a.jsonl"]
    assert cfg.model.base == "/models/omni" and (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == (8, 32, 0.05)
    with pytest.raises(ConfigError, match=r"optim\.lrr: Extra inputs are not permitted"):
        load(ThinkerConfig, STAGE2, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="wants key=value"):
        load(ThinkerConfig, STAGE2, ["optim.lr"])
    with pytest.raises(ConfigError, match="per_device_batch_size must be 1"):
        load(ThinkerConfig, STAGE2, ["optim.per_device_batch_size=2"])


def test_emoomni_train_runs_from_any_folder(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "emoomni", "train", "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "{thinker,reasoner,instruction,talker}" in proc.stdout, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "emoomni", "train", "thinker", "--config", str(STAGE2), "--out",
                           str(tmp_path / "run"), "--set", "optim.lr=fast"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "optim.lr: Input should be a valid number" in proc.stderr, proc.stderr
