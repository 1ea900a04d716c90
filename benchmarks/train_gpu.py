"""Training speed of the paper's thinker recipe: the full Qwen2.5-Omni-7B thinker architecture with random
weights, stage 1 (full fine-tune of the language model) and stage 2 (LoRA r 8 on every linear layer), encoders
frozen, bf16, gradient checkpointing, 5 s clips with their sound as the video's track, frames capped at 40
and 50,176 pixels, as training/configs/thinker_stage{1,2}.yaml ship.

Compute cost does not depend on weight values, so random weights give real figures without the 22 GB
download. Each step is one clip through transformers' Trainer exactly as `emoomni train thinker` runs it
(clip decoding and the processor in the data loader included): forward, backward, optimizer step. Reported:
step time (median, p99), samples per second, peak GPU memory.

    python benchmarks/train_gpu.py                              # on a machine with an NVIDIA GPU
    python benchmarks/train_gpu.py --size tiny --steps 1 --seconds 2 --out /tmp/t.json   # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import emoomni.services  # noqa: F401  (readies torchvision beside a CPU-only torch: emoomni.core.torchvision_compat)
from benchmarks.common import RESULTS_DIR, machine, summary
from benchmarks.omni_gpu import synth_clip
from emoomni.services.reasoning.backends.omni_backend import SYSTEM_PROMPT
from training.common import config as configs
from training.common.hf import parameter_counts
from training.common.messages import Sample
from training.common.run import RunFolder
from training.thinker.config import ThinkerConfig
from training.thinker.data import ThinkerEncoder
from training.thinker.random_checkpoint import build_processor, build_tokenizer, omni_config
from training.thinker.train import build_trainer, prepare_model

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
# An answer of typical length (~1,000 characters), in the tagged layout stage 2 trains on.
ANSWER = ("<emotion>Her eyes are wide and she leans towards the camera; her voice drops to a quick, breathy "
          "whisper and rises at the end of each phrase. Face, voice and words together read as excited "
          "disbelief, held in because of where she is.</emotion>\n<intent>She wants someone to share the "
          "moment with and to help her check that the find is real before she lets herself believe it."
          "</intent>\n<strategy>Match her hushed tone, sound glad with her, then slow the pace and give two "
          "or three concrete checks, one at a time, so that the excitement turns into a plan.</strategy>\n"
          "<response>That could be it! Take a breath. Check the full name and the date first, then the "
          "cemetery and the plot number, and see who else is listed with them.</response>")


def build_thinker(size: str, device: str, dtype):
    import torch
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    tokenizer = build_tokenizer()
    config = omni_config(tokenizer, size).thinker_config
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5OmniThinkerForConditionalGeneration._from_config(config, dtype=dtype)
    return model, build_processor(tokenizer)


def measure(stage: int, args, clip: Path, workdir: Path) -> dict:
    import torch
    from transformers import TrainerCallback

    cfg = configs.load(ThinkerConfig, CONFIGS / f"thinker_stage{stage}.yaml",
                       [f"optim.max_steps={args.warmup + args.steps}", "optim.total_batch_size=1",
                        "optim.warmup_steps=10", "save_steps=1000000", "logging_steps=1000000"])
    on_gpu = args.device.startswith("cuda")
    dtype = torch.bfloat16 if on_gpu else torch.float32
    if not on_gpu:
        cfg.precision = "fp32"
    model, processor = build_thinker(args.size, args.device, dtype)
    model = prepare_model(model, cfg)
    counts = parameter_counts(model)
    encoder = ThinkerEncoder(processor, cfg.media, target=cfg.data.target, max_length=cfg.data.max_length)
    sample = Sample(messages=[{"role": "system", "content": SYSTEM_PROMPT},
                              {"role": "user", "content": "<video>What do I feel, and what will you say?"},
                              {"role": "assistant", "content": ANSWER}], videos=[clip], source="bench")
    tokens = encoder.encode(sample)["input_ids"].shape[1]
    run = RunFolder(workdir / f"stage{stage}", cfg.model_dump(mode="json"), [], resume=False)
    times: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            if on_gpu:
                torch.cuda.synchronize()
            self.started = time.perf_counter()

        def on_step_end(self, *a, **k):
            if on_gpu:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.started)

    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    trainer = build_trainer(model, encoder, cfg, run, [sample] * (args.warmup + args.steps), callbacks=[StepClock()])
    trainer.train()
    steps = times[args.warmup:]  # the first steps warm kernels, the allocator and the optimizer state
    result = {"stage": stage, "tune": cfg.model.tune, "tokens_per_sample": tokens, **counts,
              "step_s": summary(steps), "samples_per_s": round(len(steps) / sum(steps), 3)}
    if on_gpu:
        result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    del trainer, model
    if on_gpu:
        torch.cuda.empty_cache()
    return result


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["7b", "tiny"], default="7b")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--stages", default="1,2")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per stage")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the synthetic 720p clip")
    parser.add_argument("--out", default=str(RESULTS_DIR / "train_gpu.json"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="train-bench-"))
    clip = synth_clip(workdir / "clip.mp4", seconds=args.seconds)
    results = {"machine": machine(), "size": args.size, "device": args.device, "clip_s": args.seconds,
               "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
               "stages": [measure(int(s), args, clip, workdir) for s in args.stages.split(",")]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
