"""Turn a finished reasoner run into the shipped default brain's weights folder: the GGUF adapter, its SHA-256, the
training log with the loss curves (as data and as a picture) and the run's own records.

    python -m training.reasoner.ship runs/reasoner [services/reasoning/weights/ecot-lora-qwen2.5-coder-0.5b]

The model card (MODEL_CARD.md in that folder) is written by hand: it says what the adapter is for and how well it
does, which no script knows. Pin the printed SHA-256 in services/reasoning/models.py (TUNED_SHA256).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from training.common.run import sha256

DEFAULT = Path(__file__).resolve().parents[2] / "services" / "reasoning" / "weights" / "ecot-lora-qwen2.5-coder-0.5b"


def loss_curves(metrics: list[dict], out: Path) -> Path:
    """Training loss per step and the development loss at each evaluation, in one picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(m["step"], m["loss"]) for m in metrics if "loss" in m and "eval_loss" not in m]
    held = [(m["step"], m["eval_loss"]) for m in metrics if "eval_loss" in m]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    ax.plot(*zip(*train, strict=True), lw=0.8, color="#4a7ab5", label="train loss (per step of 8 lines)")
    if held:
        ax.plot(*zip(*held, strict=True), "o-", color="#c0504d", label="development loss (200 lines)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy on the generated lines")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def ship(run: Path, dest: Path = DEFAULT) -> dict:
    dest.mkdir(parents=True, exist_ok=True)
    adapter = dest / "adapter.gguf"
    shutil.copyfile(run / "final" / "adapter.gguf", adapter)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    (dest / "training_log.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics), encoding="utf-8")
    for name in ("config.yaml", "data.json", "run.json"):
        shutil.copyfile(run / name, dest / name)
    loss_curves(metrics, dest / "loss_curves.png")
    return {"adapter": str(adapter), "sha256": sha256(adapter), "bytes": adapter.stat().st_size}


if __name__ == "__main__":
    print(json.dumps(ship(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT), indent=1))
