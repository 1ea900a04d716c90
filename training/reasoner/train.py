"""Reasoner training: a LoRA fine-tune of the cascade's small LLM (a GGUF, read by transformers) on E-CoT data, in
the backend's own prompt layout (training/reasoner/data.py), exported as a GGUF LoRA adapter that llama.cpp applies
over the same GGUF file.

    emoomni train reasoner --config training/configs/reasoner_lora.yaml --data pipe_out/train/stage2.jsonl \
        --out runs/reasoner        # --base MODEL.gguf; default: the packaged Qwen2.5-Coder-0.5B-Instruct
    then: reasoning.llama_cpp.adapter_path: runs/reasoner/final/adapter.gguf  (OUT/final/serve.yaml has the lines)

Order of work: the base GGUF is checked first (a wrong --base fails before anything else), then loaded; every
data line is validated (bad ones skipped and counted); then training on transformers' Trainer (resumable
checkpoints); then OUT/final: the peft adapter, adapter.gguf and serve.yaml.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from emoomni.services.reasoning.backends.llama_cpp_backend import chat_formatter, packaged_qwen_coder
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
from training.reasoner.config import ReasonerConfig
from training.reasoner.data import ReasonerEncoder
from training.reasoner.gguf_io import read_base, write_adapter


def load_base(cfg: ReasonerConfig, dtype: torch.dtype):
    """(base info, model, tokenizer) from the GGUF; BaseModelError before any weight is read if it is wrong."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = read_base(cfg.model.base or packaged_qwen_coder())
    folder, name = str(base["path"].parent), base["path"].name
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
    # transformers dequantizes a GGUF's weights to `dtype` but still marks the model as "quantized", which its
    # Trainer refuses to train; the weights are plain floats, so the mark goes.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return base, model, tokenizer


def perceiver(threads: int):
    """The cascade's perception, in process, loaded on first use (text-only data never loads it)."""
    core = None

    def perceive(path: str):
        nonlocal core
        if core is None:
            from emoomni.core.config import StackConfig
            from emoomni.services.perception.core import PerceptionCore

            cfg = StackConfig()
            cfg.perception.asr.cpu_threads = threads
            core = PerceptionCore(cfg)
        return core.perceive(path, face_optional=True)

    return perceive


def train_reasoner(cfg: ReasonerConfig, out: str | Path, resume: str | None = None) -> dict:
    """Run (or resume: "latest" or a checkpoint folder) one reasoner training; returns a summary."""
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer

    accumulation = check_launch(cfg)
    bf16, dtype = precision(cfg)
    base, model, tokenizer = load_base(cfg, dtype)
    formatter = chat_formatter(base["chat_template"], tokenizer.eos_token or "", tokenizer.bos_token or "")
    encoder = ReasonerEncoder(tokenizer, formatter, openers=cfg.prompt.openers, max_length=cfg.data.max_length,
                              perceive=perceiver(cfg.data.perception_threads),
                              cache_path=Path(out) / "perception.json")
    try:
        train = load_jsonl(cfg.data.train, target="ecot", check=encoder.check)
        held = load_jsonl([cfg.data.eval], target="ecot", check=encoder.check, what="eval") if cfg.data.eval else None
    except BadLine as exc:
        raise ConfigError(str(exc)) from exc
    run = RunFolder(out, cfg.model_dump(mode="json"), file_summaries(train, held), resume=bool(resume))
    checkpoint = resume_checkpoint(run, resume)

    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                             target_modules=cfg.lora.target, bias="none"))
    counts = parameter_counts(model)
    run.log({"step": 0, "event": "start", "resume": str(checkpoint) if checkpoint else None, "base": str(base["path"]),
             "train_samples": len(train.samples), "skipped_lines": train.skipped, "bf16": bf16, **counts})
    args = training_arguments(cfg, run, accumulation=accumulation, has_eval=bool(held), bf16=bf16)
    trainer = Trainer(model=model, args=args, train_dataset=[encoder.encode(s) for s in train.samples],
                      eval_dataset=[encoder.encode(s) for s in held.samples] if held else None,
                      data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
                      callbacks=[metrics_callback(run)])
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    # The held-out scores at the last step: the ones logged there, else one evaluation now.
    logged = [r for r in trainer.state.log_history if "eval_loss" in r and r.get("step") == trainer.state.global_step]
    metrics = (logged[-1] if logged else trainer.evaluate()) if held else {}
    final = export(trainer, base, cfg, run)
    return {"out": str(run.out), "final": str(final), "adapter": str(final / "adapter.gguf"),
            "steps": trainer.state.global_step, "train_loss": result.training_loss, "eval": metrics, **counts}


def export(trainer, base: dict, cfg: ReasonerConfig, run: RunFolder) -> Path:
    """OUT/final: the peft adapter (to resume from or merge), adapter.gguf for llama.cpp, and serve.yaml."""
    if not trainer.is_world_process_zero():
        return run.final
    trainer.save_model(str(run.final))
    adapter = write_adapter(trainer.accelerator.unwrap_model(trainer.model), base, cfg.lora.alpha,
                            run.final / "adapter.gguf")
    llama = {"model_path": str(base["path"]) if cfg.model.base else "", "adapter_path": str(adapter.resolve()),
             "openers": cfg.prompt.openers}
    (run.final / "serve.yaml").write_text(
        "# Stack config lines that serve this training run's reasoner (emoomni --config THIS chat clip.mp4)\n"
        + yaml.safe_dump({"reasoning": {"backend": "llama_cpp", "llama_cpp": llama}}, sort_keys=False),
        encoding="utf-8")
    return run.final
