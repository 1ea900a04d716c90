"""What the trainers built on transformers' Trainer share: the optimisation keys, TrainingArguments made from
them, the metrics log in the run folder, and finding the checkpoint to resume.

transformers' Trainer runs the loop on accelerate (one device, DDP, or DeepSpeed when `deepspeed` names a
JSON config), and its checkpoints hold the trainable weights, optimizer, scheduler, RNG states and the data
position, so that a resumed run continues the same loss curve.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal

import torch

from training.common.config import ConfigError, Strict
from training.common.run import RunFolder


class OptimSection(Strict):
    lr: float = 1e-4
    scheduler: Literal["cosine", "linear", "constant_with_warmup"] = "cosine"
    warmup_steps: int = 3000
    weight_decay: float = 0.0
    epochs: float = 1.0
    max_steps: int = -1  # > 0: stop after this many optimizer steps (overrides epochs)
    total_batch_size: int = 128  # per_device_batch_size x gradient accumulation x processes
    per_device_batch_size: int = 1
    max_grad_norm: float = 1.0


class LoraSection(Strict):
    r: int = 8
    alpha: int = 32
    dropout: float = 0.05


class HFRunConfig(Strict):
    """Keys of every Trainer-based run."""

    optim: OptimSection = OptimSection()
    precision: Literal["bf16", "fp32"] = "bf16"  # bf16 on GPUs that have it; float32 weights on CPU
    # On a CPU with native bfloat16: float32 weights under bfloat16 autocast (faster; see benchmarks/RESULTS.md).
    cpu_autocast: bool = False
    # Batches of lines of about the same length (less padding; the order is still shuffled between batches).
    group_by_length: bool = False
    # A DeepSpeed JSON for multi-GPU runs (training/configs/deepspeed/zero2.json); empty: DDP or one device.
    deepspeed: str = ""
    save_steps: int = 500
    save_total_limit: int = 3
    eval_steps: int = 500
    logging_steps: int = 1
    dataloader_workers: int = 0
    seed: int = 42


def precision(cfg: HFRunConfig) -> tuple[bool, torch.dtype]:
    """(bf16, weights dtype): bfloat16 weights on a GPU that has it; on a CPU, float32 weights, under bfloat16
    autocast when `cpu_autocast` is set and the CPU computes bfloat16 natively (AVX-512 BF16 or AMX)."""
    if cfg.precision != "bf16":
        return False, torch.float32
    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        return bf16, torch.bfloat16 if bf16 else torch.float32
    return cfg.cpu_autocast and cpu_has_bf16(), torch.float32


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (oneDNN's own check)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def check_launch(cfg: HFRunConfig) -> int:
    """Fail before any work on a launch that cannot run; returns the gradient accumulation steps."""
    if cfg.deepspeed:
        if not Path(cfg.deepspeed).is_file():
            raise ConfigError(f"deepspeed: no such file {cfg.deepspeed}")
        if importlib.util.find_spec("deepspeed") is None:
            raise ConfigError("deepspeed is set but the deepspeed package is not installed (pip install deepspeed)")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_step = cfg.optim.per_device_batch_size * world
    if cfg.optim.total_batch_size % per_step:
        raise ConfigError(f"optim.total_batch_size {cfg.optim.total_batch_size} is not a multiple of {per_step} "
                          f"(per-device batch x {world} processes)")
    return cfg.optim.total_batch_size // per_step


def training_arguments(cfg: HFRunConfig, run: RunFolder, *, accumulation: int, has_eval: bool, bf16: bool,
                       gradient_checkpointing: bool = False):
    from transformers import TrainingArguments

    o = cfg.optim
    return TrainingArguments(
        output_dir=str(run.checkpoints), per_device_train_batch_size=o.per_device_batch_size,
        per_device_eval_batch_size=o.per_device_batch_size, gradient_accumulation_steps=accumulation,
        learning_rate=o.lr, lr_scheduler_type=o.scheduler, warmup_steps=o.warmup_steps,
        weight_decay=o.weight_decay, num_train_epochs=o.epochs, max_steps=o.max_steps,
        max_grad_norm=o.max_grad_norm, bf16=bf16, use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=gradient_checkpointing, gradient_checkpointing_kwargs={"use_reentrant": False},
        logging_steps=cfg.logging_steps, save_strategy="steps", save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, eval_strategy="steps" if has_eval else "no",
        eval_steps=cfg.eval_steps, seed=cfg.seed, data_seed=cfg.seed, remove_unused_columns=False,
        label_names=["labels"], report_to="none", disable_tqdm=True,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        dataloader_num_workers=cfg.dataloader_workers, deepspeed=cfg.deepspeed or None)


def metrics_callback(run: RunFolder):
    """Every Trainer log record (loss, grad_norm, learning_rate, eval_*) goes to OUT/metrics.jsonl."""
    from transformers import TrainerCallback

    class MetricsToRunFolder(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                run.log({"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), **logs})

    return MetricsToRunFolder()


def resume_checkpoint(run: RunFolder, resume: str | None) -> Path | None:
    """The checkpoint `--resume` names ("latest" or a folder); the metrics logged after it are dropped."""
    if not resume:
        return None
    checkpoint = run.latest_checkpoint() if resume == "latest" else Path(resume)
    if checkpoint is None or not checkpoint.is_dir():
        raise ConfigError(f"--resume {resume}: no checkpoint in {run.checkpoints}")
    run.truncate_metrics(int(checkpoint.name.rsplit("-", 1)[1]))
    return checkpoint


def parameter_counts(model) -> dict:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable_params": trainable, "total_params": sum(p.numel() for p in model.parameters())}


def answer_only_labels(prompt_ids: list[int], answer_ids: list[int], ignore: int = -100) -> dict:
    """input_ids, attention_mask and labels for a text prompt followed by its answer (loss on the answer)."""
    ids = prompt_ids + answer_ids
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [ignore] * len(prompt_ids) + answer_ids}
