"""Reasoner training: a LoRA fine-tune of the llama.cpp backend's small LLM (SmolLM2-135M-Instruct by default)
on E-CoT data, exported as a GGUF LoRA adapter that llama.cpp applies on top of the unchanged GGUF.

    emoomni train reasoner --config training/configs/reasoner_lora.yaml --data ecot.jsonl --out runs/r
    then: reasoning.llama_cpp.lora_path: runs/r/final/adapter.gguf   (runs/r/final/serve.yaml has the line)

transformers reads the GGUF's weights (dequantised to float32 through the `gguf` package); the trainer sees the
same prompt the backend writes (its system prompt and two worked examples, then the sample's last user turn,
the "Cues: ..." text) and learns the answer in the backend's line layout (Emotion/Intent/Strategy/Reply), loss
on the answer only. Data: ms-swift messages JSONL, text only, answers in the four tagged E-CoT parts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml
from pydantic import Field

from training.common.config import ConfigError, Strict
from training.common.hf import (
    HFRunConfig,
    LoraSection,
    answer_only_labels,
    check_launch,
    metrics_callback,
    parameter_counts,
    precision,
    resume_checkpoint,
    training_arguments,
)
from training.common.messages import BadLine, Sample, ecot_parts, file_summaries, load_jsonl
from training.common.run import RunFolder

# E-CoT part -> the label of its line in the llama.cpp backend's answer layout.
LINE_LABELS = ("Emotion", "Intent", "Strategy", "Reply")
# peft module name -> the LLaMA projection's name in llama.cpp's GGUF tensor naming (via gguf's own map).
LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class ReasonerModel(Strict):
    base: str = ""  # a LLaMA-architecture GGUF file; empty: the packaged SmolLM2-135M-Instruct


class ReasonerData(Strict):
    train: list[str] = Field(default_factory=list)
    eval: str = ""
    max_length: int = 2048


class ReasonerConfig(HFRunConfig):
    kind: Literal["reasoner"] = "reasoner"
    model: ReasonerModel = ReasonerModel()
    lora: LoraSection = LoraSection()
    data: ReasonerData = ReasonerData()


def base_gguf(cfg: ReasonerConfig) -> tuple[Path, str]:
    """The base GGUF and its chat template (the one the llama.cpp backend formats its prompt with); ConfigError,
    before any work, when it is not a LLaMA GGUF."""
    import gguf

    from emoomni.services.reasoning.backends.llama_cpp_backend import packaged_smollm2

    path = Path(cfg.model.base).expanduser() if cfg.model.base else packaged_smollm2()
    if not path.is_file():
        raise ConfigError(f"--base {path}: no such GGUF file")
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError) as exc:
        raise ConfigError(f"--base {path}: not a GGUF file ({exc})") from exc
    arch = reader.fields["general.architecture"].contents() if "general.architecture" in reader.fields else None
    if arch != "llama":
        raise ConfigError(f"--base {path}: a {arch!r} GGUF; the reasoner trainer reads LLaMA-architecture GGUFs "
                          "(SmolLM2, Llama, TinyLlama ...)")
    if "tokenizer.chat_template" not in reader.fields:
        raise ConfigError(f"--base {path}: the GGUF has no chat template")
    return path, reader.fields["tokenizer.chat_template"].contents()


def answer_lines(answer: str) -> str:
    """The tagged E-CoT answer in the llama.cpp backend's layout: one line per part."""
    parts = ecot_parts(answer).values()
    return "".join(f"{label}: {' '.join(text.split())}\n" for label, text in zip(LINE_LABELS, parts, strict=True))


class ReasonerEncoder:
    def __init__(self, tokenizer, chat_template: str, max_length: int):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.tokenizer = tokenizer
        self.max_length = max_length
        self.format = Jinja2ChatFormatter(template=chat_template, eos_token=tokenizer.eos_token or "",
                                          bos_token=tokenizer.bos_token or "")

    def prompt(self, sample: Sample) -> str:
        from emoomni.services.reasoning.prompt import chat_messages
        from emoomni.v1 import perception_pb2

        messages = chat_messages(perception_pb2.PerceptionResult(), "", "Write in English.")
        user = next(m["content"] for m in reversed(sample.messages) if m["role"] == "user")
        messages[-1] = {"role": "user", "content": user}
        return self.format(messages=messages).prompt

    def encode(self, sample: Sample) -> dict:
        prompt = self.tokenizer(self.prompt(sample), add_special_tokens=False)["input_ids"]
        answer = self.tokenizer(answer_lines(sample.messages[-1]["content"]), add_special_tokens=False)["input_ids"]
        return answer_only_labels(prompt, answer)

    def check(self, sample: Sample) -> str | None:
        if not any(m["role"] == "user" for m in sample.messages):
            return "no user message (the cue text the backend writes)"
        length = len(self.encode(sample)["input_ids"])
        return f"{length} tokens, over the cap of {self.max_length} (data.max_length)" \
            if length > self.max_length else None


def permute_for_gguf(rows: torch.Tensor, heads: int) -> torch.Tensor:
    """llama.cpp stores LLaMA q/k projections with each head's rotary halves interleaved; transformers undoes
    this when it reads a GGUF, so rows going back into GGUF space (a LoRA B matrix) are permuted again."""
    half = rows.shape[0] // heads // 2
    return rows.reshape(heads, 2, half, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def write_gguf_adapter(model, path: Path, alpha: float, heads: int, kv_heads: int) -> int:
    """Write the peft LoRA weights as a llama.cpp LoRA adapter GGUF; returns the number of adapted tensors."""
    import gguf

    layers = model.base_model.model.config.num_hidden_layers
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    count = 0
    for name, module in model.base_model.model.named_modules():
        if not hasattr(module, "lora_A") or "default" not in module.lora_A:
            continue
        target = names.get_name(name)
        if target is None:
            raise ValueError(f"no GGUF name for the adapted module {name}")
        a = module.lora_A["default"].weight.detach().float().cpu()
        b = module.lora_B["default"].weight.detach().float().cpu()
        if name.endswith("q_proj"):
            b = permute_for_gguf(b, heads)
        elif name.endswith("k_proj"):
            b = permute_for_gguf(b, kv_heads)
        writer.add_tensor(f"{target}.weight.lora_a", np.ascontiguousarray(a.numpy()))
        writer.add_tensor(f"{target}.weight.lora_b", np.ascontiguousarray(b.numpy()))
        count += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return count


def train_reasoner(cfg: ReasonerConfig, out: str | Path, resume: str | None = None) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer

    accumulation = check_launch(cfg)
    bf16, dtype = precision(cfg)
    path, template = base_gguf(cfg)  # a wrong --base fails here, before any data is read
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    encoder = ReasonerEncoder(tokenizer, template, cfg.data.max_length)
    try:
        train = load_jsonl(cfg.data.train, target="ecot", media_allowed=False, check=encoder.check)
        held = load_jsonl([cfg.data.eval], target="ecot", media_allowed=False, check=encoder.check,
                          what="eval") if cfg.data.eval else None
    except BadLine as exc:
        raise ConfigError(str(exc)) from exc
    run = RunFolder(out, cfg.model_dump(mode="json"), file_summaries(train, held), resume=bool(resume))
    checkpoint = resume_checkpoint(run, resume)

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
    # The GGUF's weights are dequantised to `dtype` as they load, but transformers still marks the model as
    # GGUF-quantized, which the Trainer refuses; it is an ordinary float model.
    model.hf_quantizer, model.is_quantized = None, False
    model.config.__dict__.pop("quantization_config", None)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                             target_modules=LORA_MODULES, bias="none", task_type="CAUSAL_LM"))
    counts = parameter_counts(model)
    run.log({"step": 0, "event": "start", "base": str(path), "train_samples": len(train.samples),
             "skipped_lines": train.skipped, **counts})
    trainer = Trainer(model=model, args=training_arguments(cfg, run, accumulation=accumulation,
                                                           has_eval=held is not None, bf16=bf16),
                      train_dataset=[encoder.encode(s) for s in train.samples],
                      eval_dataset=[encoder.encode(s) for s in held.samples] if held else None,
                      data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
                      callbacks=[metrics_callback(run)])
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    metrics = trainer.evaluate() if held else {}
    run.final.mkdir(parents=True, exist_ok=True)
    config = model.base_model.model.config
    adapted = write_gguf_adapter(model, run.final / "adapter.gguf", cfg.lora.alpha, config.num_attention_heads,
                                 config.num_key_value_heads)
    trainer.save_model(str(run.final / "peft"))  # the same adapter for transformers/peft users
    serve = {"reasoning": {"backend": "llama_cpp", "llama_cpp": {
        **({"model_path": str(path.resolve())} if cfg.model.base else {}),
        "lora_path": str((run.final / "adapter.gguf").resolve())}}}
    (run.final / "serve.yaml").write_text(
        "# Stack config lines that serve this reasoner (emoomni --config THIS chat clip.mp4)\n"
        + yaml.safe_dump(serve, sort_keys=False), encoding="utf-8")
    return {"out": str(run.out), "final": str(run.final), "steps": trainer.state.global_step,
            "train_loss": result.training_loss, "adapted_tensors": adapted, "eval": metrics, **counts}
