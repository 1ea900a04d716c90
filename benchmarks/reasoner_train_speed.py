"""CPU training throughput of the reasoner's LoRA (tokens per second through forward and backward), in float32 and
under bfloat16 autocast, on the corpus's own training lines.

    python benchmarks/reasoner_train_speed.py [--steps 8] [--batch 8] [--threads 2]

Loads the default base (the packaged Qwen2.5-Coder-0.5B GGUF, dequantized by transformers) with the reasoner's
LoRA config, encodes the first lines of training/data/ecot/train.jsonl as the trainer does, and times optimizer
steps of `--batch` lines each (after one warm-up step). Tokens counted are the padded batch's input tokens.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import emoomni.services  # noqa: E402,F401  (readies torchvision beside a CPU-only torch: emoomni.core.torchvision_compat)
from training.common import config as cfgs  # noqa: E402
from training.common.hf import cpu_has_bf16  # noqa: E402
from training.common.messages import load_jsonl  # noqa: E402
from training.reasoner.config import ReasonerConfig  # noqa: E402
from training.reasoner.data import ReasonerEncoder  # noqa: E402
from training.reasoner.train import load_base  # noqa: E402


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--steps", type=int, default=8)
    args.add_argument("--batch", type=int, default=8)
    args.add_argument("--threads", type=int, default=2)
    opts = args.parse_args()
    torch.set_num_threads(opts.threads)
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq

    from emoomni.services.reasoning.backends.llama_cpp_backend import chat_formatter

    cfg = cfgs.load(ReasonerConfig, str(ROOT / "training/configs/reasoner_lora.yaml"), [])
    base, model, tokenizer = load_base(cfg, torch.float32)
    formatter = chat_formatter(base["chat_template"], tokenizer.eos_token or "", tokenizer.bos_token or "")
    encoder = ReasonerEncoder(tokenizer, formatter, openers=False, max_length=cfg.data.max_length,
                              perceive=None, cache_path=Path("/nonexistent"))
    data = load_jsonl([str(ROOT / "training/data/ecot/train.jsonl")], target="ecot", check=encoder.check)
    rows = [encoder.encode(s) for s in data.samples[: opts.batch * (opts.steps + 1)]]
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, target_modules=cfg.lora.target,
                                             lora_dropout=cfg.lora.dropout, bias="none"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    results = {}
    for name, autocast in (("float32", False), ("bfloat16 autocast", True)):
        if autocast and not cpu_has_bf16():
            results[name] = "this CPU has no native bfloat16"
            continue
        tokens, seconds = 0, 0.0
        for step in range(opts.steps + 1):
            batch = collate(rows[step * opts.batch:(step + 1) * opts.batch])
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if step:  # the first step warms up
                seconds += time.perf_counter() - start
                tokens += batch["input_ids"].numel()
        results[name] = {"tokens_per_s": round(tokens / seconds, 1), "s_per_step": round(seconds / opts.steps, 2),
                         "tokens_per_step": tokens // opts.steps, "batch": opts.batch, "threads": opts.threads}
        print(name, results[name], flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
