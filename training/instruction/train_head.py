"""Trains the instruction mapper's delivery head on the composed phrase bank and writes it to a folder.

    emoomni train instruction --config training/configs/instruction_head.yaml --out runs/head
    python -m training.instruction.train_head [--out services/instruction/weights/delivery-head]   (the same)

The sentence-embedding model stays frozen (all-MiniLM-L6-v2 from its package, or --embedding-model PATH);
only the small head learns. Prints the held-out report (direction accuracy on unseen phrasings)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml
from torch.nn import functional as F

from emoomni.services.instruction.backends.embedding_head import load_embedder
from emoomni.services.instruction.delivery import PACKAGED_HEAD, SCALES, DeliveryHead, HeadConfig
from training.common.config import ConfigError, Strict
from training.common.run import RunFolder, sha256
from training.instruction.compose import (
    FACETS_FILE,
    HELDOUT_FILE,
    anchor_texts,
    build_examples,
    load_facets,
    load_heldout,
)


def _targets(examples, config: HeadConfig) -> dict[str, torch.Tensor]:
    def index(labels, values):
        return torch.tensor([labels.index(v) for v in values])

    scales = [[math.log(getattr(e, s)) for s in SCALES] + [e.intensity] for e in examples]
    return {"scales": torch.tensor(scales, dtype=torch.float32),
            "emotion": index(config.emotions, [e.emotion for e in examples]),
            "voice_quality": index(config.voice_qualities, [e.voice_quality for e in examples]),
            "age": index(config.ages, [e.age for e in examples]),
            "gender": index(config.genders, [e.gender for e in examples])}


def train(embedder, seed: int = 0, epochs: int = 800, lr: float = 3e-3, hidden_dim: int = 128,
          dropout: float = 0.3, weight_decay: float = 1e-2) -> DeliveryHead:
    torch.manual_seed(seed)
    examples = build_examples(seed=seed)
    config = HeadConfig(embedding_dim=embedder.get_embedding_dimension(), hidden_dim=hidden_dim, dropout=dropout)
    x = torch.from_numpy(embedder.encode([e.text for e in examples], normalize_embeddings=True, batch_size=64))
    y = _targets(examples, config)
    head = DeliveryHead(config)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    head.train()
    for _ in range(epochs):
        out = head(x)
        log_scales, intensity = out["scales"][:, :3], torch.sigmoid(out["scales"][:, 3])
        # Log-scale errors are small numbers (0.1 = 10 %); weight them up so they matter as much as labels.
        loss = 30 * F.mse_loss(log_scales, y["scales"][:, :3]) + F.mse_loss(intensity, y["scales"][:, 3])
        loss = loss + sum(F.cross_entropy(out[k], y[k]) for k in ("emotion", "voice_quality", "age", "gender"))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    head.eval()
    head.anchors = torch.from_numpy(embedder.encode(anchor_texts(), normalize_embeddings=True))
    head.config.relevance_threshold = _relevance_threshold(embedder, head)
    return head


def _relevance_threshold(embedder, head: DeliveryHead) -> float:
    """Midway between the off-topic sentences' best similarity and the held-out strategies' worst."""
    _, off_topic = load_facets()
    off = embedder.encode(off_topic, normalize_embeddings=True) @ head.anchors.numpy().T
    held = embedder.encode([h["text"] for h in load_heldout()], normalize_embeddings=True) @ head.anchors.numpy().T
    return float((off.max(axis=1).max() + held.max(axis=1).min()) / 2)


def heldout_report(embedder, head: DeliveryHead) -> dict:
    """Fraction of the held-out expectations (directions and labels) the head gets right."""
    rows = load_heldout()
    x = torch.from_numpy(embedder.encode([r["text"] for r in rows], normalize_embeddings=True))
    hits, total, misses = 0, 0, []
    for row, vector in zip(rows, x, strict=True):
        pred = head.predict(vector)
        for key, want in row.items():
            if key == "text":
                continue
            field = {"age_hint": "age", "gender_hint": "gender"}.get(key, key)
            got = getattr(pred, field)
            ok = (got > 1.02 if want == "up" else got < 0.98) if want in ("up", "down") else got == want
            hits, total = hits + ok, total + 1
            if not ok:
                misses.append(f"{row['text']!r}: {key} wanted {want}, got {got:.3g}" if isinstance(got, float)
                              else f"{row['text']!r}: {key} wanted {want}, got {got}")
    return {"accuracy": hits / total, "checked": total, "misses": misses}


class HeadTrainConfig(Strict):
    """training/configs/instruction_head.yaml. The data is the phrase bank (facets.yaml), composed in code."""

    kind: Literal["instruction"] = "instruction"
    embedding_model: str = ""  # empty: the packaged all-MiniLM-L6-v2
    seed: int = 0
    epochs: int = 800
    lr: float = 3e-3
    hidden_dim: int = 128
    dropout: float = 0.3
    weight_decay: float = 1e-2


def train_from_config(cfg: HeadTrainConfig, out: str | Path, resume: str | None = None) -> dict:
    """`emoomni train instruction`: the run folder, OUT/final (the head) and serve.yaml (instruction.head_path)."""
    if resume:
        raise ConfigError("the instruction head trains in seconds from scratch; run it again instead of --resume")
    data = [{"path": str(path), "sha256": sha256(path)} for path in (FACETS_FILE, HELDOUT_FILE)]
    run = RunFolder(out, cfg.model_dump(mode="json"), data, resume=False)
    embedder = load_embedder(cfg.embedding_model)
    head = train(embedder, seed=cfg.seed, epochs=cfg.epochs, lr=cfg.lr, hidden_dim=cfg.hidden_dim,
                 dropout=cfg.dropout, weight_decay=cfg.weight_decay)
    report = heldout_report(embedder, head)
    head.save(run.final)
    run.log({"step": cfg.epochs, "heldout_accuracy": report["accuracy"], "heldout_checked": report["checked"],
             "relevance_threshold": head.config.relevance_threshold, "misses": report["misses"]})
    (run.final / "serve.yaml").write_text(
        "# Stack config lines that serve this delivery head (emoomni --config THIS ...)\n"
        + yaml.safe_dump({"instruction": {"head_path": str(run.final.resolve())}}), encoding="utf-8")
    return {"out": str(run.out), "final": str(run.final), "heldout_accuracy": report["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PACKAGED_HEAD)
    parser.add_argument("--embedding-model", default="")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    embedder = load_embedder(args.embedding_model)
    head = train(embedder, seed=args.seed)
    report = heldout_report(embedder, head)
    head.save(args.out)
    print(f"held-out accuracy {report['accuracy']:.1%} over {report['checked']} expectations; "
          f"relevance threshold {head.config.relevance_threshold:.3f}; saved to {args.out}")
    for miss in report["misses"]:
        print("  miss:", miss)
    np.set_printoptions(precision=3)


if __name__ == "__main__":
    main()
