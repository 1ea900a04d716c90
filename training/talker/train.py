"""Talker training: a LoRA fine-tune of the Qwen3-TTS talker (its decoder and code predictor) on (instruction,
text, audio) triples, at the paper's lr 1e-5 by default, on transformers' Trainer (resumable checkpoints).

    emoomni train talker --config training/configs/talker_lora.yaml --data pipe_out/talker.jsonl \
        --base /models/Qwen3-TTS-12Hz-1.7B-VoiceDesign --out runs/talker
    then: talker.plugins.qwen3-tts.adapter_path: runs/talker/final   (OUT/final/serve.yaml has the lines)

The model-specific half (the sequence qwen-tts speaks from and the loss) belongs to the plugin
(`Qwen3TTSTalker.finetune`), found through the talker registry as the talker service finds it. Order of work: the
base checkpoint is loaded through the plugin first (a wrong --base fails before anything else), then every data
line is checked and its audio encoded into codec codes (bad lines skipped and counted), then training, then
OUT/final (the peft adapter) and serve.yaml.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from emoomni.services.talker.registry import discover
from training.common.config import ConfigError
from training.common.hf import (
    check_launch,
    metrics_callback,
    parameter_counts,
    precision,
    resume_checkpoint,
    training_arguments,
)
from training.common.messages import BadLine, file_summaries
from training.common.run import RunFolder
from training.talker.config import TalkerTrainConfig
from training.talker.data import load_triples


def load_plugin(cfg: TalkerTrainConfig, dtype: str):
    """The talker plugin loaded on --base, and its fine-tuning half; ConfigError (before any other work) if --base
    is not a checkpoint it can fine-tune."""
    plugins = discover()
    if cfg.model.plugin not in plugins:
        raise ConfigError(f"model.plugin {cfg.model.plugin!r} is not installed (found: {', '.join(sorted(plugins))})")
    plugin_class = plugins[cfg.model.plugin]
    if not hasattr(plugin_class, "finetune"):
        raise ConfigError(f"the {cfg.model.plugin} talker cannot be fine-tuned (its plugin has no finetune())")
    if not cfg.model.base:
        raise ConfigError("no base model: pass --base PATH (a Qwen3-TTS 12 Hz VoiceDesign checkpoint folder)")
    plugin = plugin_class({"model_path": cfg.model.base, "dtype": dtype})
    try:
        plugin.load()
        return plugin, plugin.finetune()
    except (ValueError, OSError) as exc:
        raise ConfigError(f"--base {cfg.model.base}: {exc}") from exc


def trainer_class():
    from transformers import Trainer

    class TalkerTrainer(Trainer):
        """The loss comes from the plugin's finetune(): one (instruction, text, audio) sample per step."""

        def __init__(self, *args, finetune=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.finetune = finetune

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            talker = self.accelerator.unwrap_model(model).get_base_model()
            loss, _ = self.finetune.loss(talker, inputs["sample"])
            return (loss, {"loss": loss}) if return_outputs else loss

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            import torch

            with torch.no_grad():
                loss = self.compute_loss(model, inputs)
            return loss.detach(), None, None

    return TalkerTrainer


def one_sample(items: list) -> dict:
    if len(items) != 1:
        raise ValueError("the talker trainer feeds one sample per device per step (per_device_batch_size 1)")
    return {"sample": items[0]}


def train_talker(cfg: TalkerTrainConfig, out: str | Path, resume: str | None = None) -> dict:
    """Run (or resume: "latest" or a checkpoint folder) one talker training; returns a summary."""
    from peft import LoraConfig, get_peft_model

    accumulation = check_launch(cfg)
    if cfg.optim.per_device_batch_size != 1:
        raise ConfigError("optim.per_device_batch_size must be 1 for the talker (the batch comes from gradient "
                          "accumulation)")
    bf16, dtype = precision(cfg)
    plugin, finetune = load_plugin(cfg, str(dtype).removeprefix("torch."))  # a wrong --base fails here
    rate = int(plugin.engine.model.speech_tokenizer.get_input_sample_rate())

    def encode(triple, audio, sample_rate):
        return finetune.sample(triple.instruction, triple.text, triple.language, audio, sample_rate)

    try:
        train = load_triples(cfg.data.train, encode, max_audio_s=cfg.data.max_audio_s, sample_rate=rate)
        held = load_triples([cfg.data.eval], encode, max_audio_s=cfg.data.max_audio_s, sample_rate=rate,
                            what="eval") if cfg.data.eval else None
    except BadLine as exc:
        raise ConfigError(str(exc)) from exc
    run = RunFolder(out, cfg.model_dump(mode="json"), file_summaries(train, held), resume=bool(resume))
    checkpoint = resume_checkpoint(run, resume)

    talker = plugin.engine.model.talker
    talker.train()
    model = get_peft_model(talker, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                              target_modules=finetune.lora_target, bias="none"))
    counts = parameter_counts(model)
    run.log({"step": 0, "event": "start", "resume": str(checkpoint) if checkpoint else None,
             "train_samples": len(train.samples), "skipped_lines": train.skipped, "bf16": bf16,
             **counts})
    args = training_arguments(cfg, run, accumulation=accumulation, has_eval=bool(held), bf16=bf16)
    trainer = trainer_class()(model=model, args=args, train_dataset=train.samples,
                              eval_dataset=held.samples if held else None,
                              data_collator=one_sample, callbacks=[metrics_callback(run)], finetune=finetune)
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    metrics = trainer.evaluate() if held else {}
    final = export(trainer, cfg, run)
    return {"out": str(run.out), "final": str(final), "steps": trainer.state.global_step,
            "train_loss": result.training_loss, "eval": metrics, **counts}


def export(trainer, cfg: TalkerTrainConfig, run: RunFolder) -> Path:
    """OUT/final: the LoRA adapter, and serve.yaml, the stack config lines that speak with it."""
    if not trainer.is_world_process_zero():
        return run.final
    trainer.save_model(str(run.final))
    options = {"model_path": str(Path(cfg.model.base).resolve()), "adapter_path": str(run.final.resolve())}
    serve = {"talker": {"active": cfg.model.plugin, "plugins": {cfg.model.plugin: options}}}
    (run.final / "serve.yaml").write_text(
        "# Stack config lines that speak with this training run's talker (emoomni --config THIS chat clip.mp4)\n"
        + yaml.safe_dump(serve, sort_keys=False), encoding="utf-8")
    return run.final
