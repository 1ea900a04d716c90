"""Thinker training, stage 1 (full fine-tune of the language model) and stage 2 (LoRA), on transformers'
Trainer: accelerate underneath (one device, DDP or DeepSpeed through `accelerate launch` / `torchrun`),
checkpoints that hold the weights, optimizer, scheduler and RNG states, and exact resumption.

    emoomni train thinker --config training/configs/thinker_stage2.yaml --data D.jsonl --base CKPT --out runs/x

Order of work: the base checkpoint is checked (and loaded) first, so a wrong --base fails before anything else;
then every data line is validated and bad ones skipped; then training; then OUT/final and its serve.yaml.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
import yaml

from emoomni.core.config import OmniConfig
from emoomni.services.reasoning.backends.omni_backend import load_thinker
from training.common.config import ConfigError
from training.common.hf import (
    check_launch,
    metrics_callback,
    parameter_counts,
    precision,
    resume_checkpoint,
    training_arguments,
)
from training.common.messages import BadLine, file_summaries, load_jsonl
from training.common.run import RunFolder
from training.thinker.config import ThinkerConfig
from training.thinker.data import CollateOne, ThinkerDataset, ThinkerEncoder

log = logging.getLogger(__name__)


class BaseCheckpointError(ConfigError):
    """--base is not a usable Qwen-Omni checkpoint."""


def load_base(cfg: ThinkerConfig, dtype: torch.dtype):
    """The thinker (on CPU; the Trainer places it) and its processor; BaseCheckpointError if --base is wrong."""
    if not cfg.model.base:
        raise BaseCheckpointError("no base model: pass --base PATH (a Qwen2.5-Omni or Qwen3-Omni checkpoint folder)")
    try:
        model, processor, _, _ = load_thinker(OmniConfig(model_path=cfg.model.base, device="cpu",
                                                         dtype=str(dtype).removeprefix("torch.")))
    except (ValueError, OSError) as exc:
        raise BaseCheckpointError(f"--base {cfg.model.base}: {exc}") from exc
    return model, processor


def is_frozen(name: str, frozen: list[str]) -> bool:
    """Whether a module or parameter path lies inside one of the frozen modules (named anywhere in the path,
    as transformers nests them differently across versions: `audio_tower.` or `model.audio_tower.`)."""
    return any(part in frozen for part in name.split("."))


def lora_target(model, frozen: list[str]) -> str:
    """A peft target regex for every nn.Linear of the language model: not the frozen encoders, not lm_head."""
    leaves = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                     if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head")
                     and not is_frozen(name, frozen)})
    skip = "|".join(re.escape(p) for p in frozen)
    return rf"^(?!(?:.*\.)?(?:{skip})\.)(?:.+\.)?(?:{'|'.join(leaves)})$"


def prepare_model(model, cfg: ThinkerConfig):
    """Freeze the encoders; stage 1 trains the rest of the language model, stage 2 wraps it in LoRA."""
    model.config.use_cache = False
    model.train()
    if cfg.model.tune == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                          target_modules=lora_target(model, cfg.model.freeze), bias="none")
        return get_peft_model(model, lora)
    for name, param in model.named_parameters():
        param.requires_grad = not is_frozen(name, cfg.model.freeze)
    return model


def parse_share(model, encoder: ThinkerEncoder, samples, max_new_tokens: int) -> tuple[float, str]:
    """Greedy answers to held-out prompts: the share that parse into the four E-CoT parts, and the first one."""
    from training.common.messages import ecot_parts

    tokenizer = encoder.processor.tokenizer
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    was_training = model.training
    model.eval()
    parsed, first = 0, ""
    try:
        for sample in samples:
            inputs = CollateOne(dtype)([encoder.encode(sample, with_answer=False)])
            inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in inputs.items()}
            with torch.no_grad():
                out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                                     pad_token_id=tokenizer.pad_token_id)
            text = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            first = first or text
            try:
                ecot_parts(text)
                parsed += 1
            except BadLine:
                pass
    finally:
        model.train(was_training)
    return parsed / max(1, len(samples)), first


def trainer_class():
    """transformers' Trainer whose evaluation also generates answers and scores the share that parse."""
    from transformers import Trainer

    class ThinkerTrainer(Trainer):
        def __init__(self, *args, generation_eval=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.generation_eval = generation_eval

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            if self.generation_eval is not None:
                share, example = self.generation_eval(self.accelerator.unwrap_model(self.model))
                extra = {f"{metric_key_prefix}_ecot_parse_share": share}
                self.log({**extra, f"{metric_key_prefix}_example": example[:400]})
                metrics.update(extra)
            return metrics

    return ThinkerTrainer


def build_trainer(model, encoder: ThinkerEncoder, cfg: ThinkerConfig, run: RunFolder, train_samples,
                  held_samples=None, callbacks=()):
    """The Trainer for a prepared model (prepare_model) and validated samples; the GPU benchmark uses it too."""
    bf16, dtype = precision(cfg)
    args = training_arguments(cfg, run, accumulation=check_launch(cfg), has_eval=bool(held_samples), bf16=bf16,
                              gradient_checkpointing=cfg.model.gradient_checkpointing)
    generation_eval = None
    if held_samples and cfg.data.target == "ecot" and cfg.eval.generate_samples > 0:
        chosen = held_samples[:cfg.eval.generate_samples]

        def generation_eval(unwrapped):
            return parse_share(unwrapped, encoder, chosen, cfg.eval.max_new_tokens)

    return trainer_class()(model=model, args=args, train_dataset=ThinkerDataset(train_samples, encoder, cfg.data.cache),
                           eval_dataset=ThinkerDataset(held_samples, encoder, cfg.data.cache) if held_samples
                           else None,
                           data_collator=CollateOne(dtype), callbacks=[metrics_callback(run), *callbacks],
                           generation_eval=generation_eval)


def train_thinker(cfg: ThinkerConfig, out: str | Path, resume: str | None = None) -> dict:
    """Run (or resume: "latest" or a checkpoint folder) one thinker training; returns a summary."""
    check_launch(cfg)
    bf16, dtype = precision(cfg)
    model, processor = load_base(cfg, dtype)  # a wrong --base fails here, before any data is read
    encoder = ThinkerEncoder(processor, cfg.media, target=cfg.data.target, max_length=cfg.data.max_length)
    try:
        train = load_jsonl(cfg.data.train, target=cfg.data.target, check=encoder.check)
        held = load_jsonl([cfg.data.eval], target=cfg.data.target, check=encoder.check,
                          what="eval") if cfg.data.eval else None
    except BadLine as exc:
        raise ConfigError(str(exc)) from exc
    run = RunFolder(out, cfg.model_dump(mode="json"), file_summaries(train, held), resume=bool(resume))
    checkpoint = resume_checkpoint(run, resume)

    model = prepare_model(model, cfg)
    counts = parameter_counts(model)
    run.log({"step": 0, "event": "start", "resume": str(checkpoint) if checkpoint else None,
             "train_samples": len(train.samples), "skipped_lines": train.skipped, "bf16": bf16, **counts})
    trainer = build_trainer(model, encoder, cfg, run, train.samples, held.samples if held else None)
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    metrics = trainer.evaluate() if held else {}
    final = export(trainer, processor, cfg, run)
    return {"out": str(run.out), "final": str(final), "steps": trainer.state.global_step,
            "train_loss": result.training_loss, "eval": metrics, **counts}


def export(trainer, processor, cfg: ThinkerConfig, run: RunFolder) -> Path:
    """OUT/final: the LoRA adapter (stage 2) or a full thinker folder (stage 1), and serve.yaml, the stack
    config lines that load it (`emoomni --config OUT/final/serve.yaml chat clip.mp4`)."""
    if not trainer.is_world_process_zero():
        return run.final
    trainer.save_model(str(run.final))
    omni: dict = {"model_path": str(Path(cfg.model.base).resolve())}
    if cfg.model.tune == "lora":
        omni["adapter_path"] = str(run.final.resolve())
        if cfg.export.merged:
            merged = run.final / "merged"
            trainer.accelerator.unwrap_model(trainer.model).merge_and_unload().save_pretrained(merged)
            processor.save_pretrained(merged)
    else:
        processor.save_pretrained(run.final)
        omni = {"model_path": str(run.final.resolve())}
    serve = {"reasoning": {"backend": "omni", "omni": omni}}
    (run.final / "serve.yaml").write_text(
        "# Stack config lines that serve this training run's thinker (emoomni --config THIS chat clip.mp4)\n"
        + yaml.safe_dump(serve, sort_keys=False), encoding="utf-8")
    return run.final

