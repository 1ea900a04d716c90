"""Serving speed of the paper's omni thinker and talker: full-size Qwen2.5-Omni-7B, random weights, bf16.

Compute cost does not depend on weight values, so the published architecture with random weights gives real
figures for our serving path without downloading 22 GB. Measured on a 5 s clip (1280x720 video + speech):
- thinker time to first token: decoding the clip + the model's processor + prefill + one token, through the
  omni reasoning backend's own `prepare` (frames at `reasoning.omni.fps`);
- thinker decode tokens per second between the first and the last of 256 new tokens (free text, no grammar;
  each token timed as it leaves generate()), and the serving path's E-CoT
  generation with the xgrammar format constraint, first part's first text and whole E-CoT;
- the Qwen2.5-Omni talker's real-time factor: codec-token generation + token2wav (DiT + BigVGAN) time over the
  seconds of audio produced. Random weights never emit the talker's end token, so the codec length is fixed
  by `--talker-tokens` (50 codec tokens = 1 s of audio).

    python benchmarks/omni_gpu.py                          # on a machine with an NVIDIA GPU
    python benchmarks/omni_gpu.py --size tiny --device cpu --runs 1   # smoke run of the same code on CPU
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import emoomni.services  # noqa: F401  (readies torchvision beside a CPU-only torch: emoomni.core.torchvision_compat)
from benchmarks.common import RESULTS_DIR, machine, summary
from emoomni.core.config import OmniReasoning, load_config
from emoomni.services.reasoning.backends.interface import EMOTION
from emoomni.services.reasoning.backends.omni_backend import OmniBackend
from emoomni.v1 import perception_pb2
from training.thinker.random_checkpoint import build_processor, build_tokenizer, omni_config, random_speaker


def synth_clip(path: Path, seconds: float = 5.0, width: int = 1280, height: int = 720) -> Path:
    """A clip with the cost profile of a real one: moving 720p frames and a voiced (harmonic) audio track."""
    import av

    rate, fps = 16000, 25
    t = np.arange(int(seconds * rate)) / rate
    f0 = 180 + 40 * np.sin(2 * np.pi * 0.7 * t)
    voice = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / rate) / k for k in range(1, 6))
    audio = (0.2 * voice * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=rate)
        sound.layout = "mono"
        grid = np.add.outer(np.arange(height), np.arange(width))
        for i in range(int(seconds * fps)):
            frame = np.stack([(grid + 4 * i) % 256, (grid // 2) % 256, np.full_like(grid, 128)], -1).astype(np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        for start in range(0, audio.size, 1024):
            chunk = av.AudioFrame.from_ndarray(audio[None, start:start + 1024], format="flt", layout="mono")
            chunk.sample_rate = rate
            for packet in sound.encode(chunk):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)
    return path


def build_model(size: str, device: str, dtype):
    """The whole omni model (thinker, talker, token2wav) with random weights, built directly on `device`."""
    import torch
    from transformers import Qwen2_5OmniForConditionalGeneration

    tokenizer = build_tokenizer()
    config = omni_config(tokenizer, size, talker=True)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5OmniForConditionalGeneration._from_config(config, dtype=dtype)
    model.eval()
    model.speaker_map["bench"] = random_speaker(config)
    return model, build_processor(tokenizer), config


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["7b", "tiny"], default="7b")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default=None,
                        help="default: bfloat16 on GPUs that support it, else float32")
    parser.add_argument("--clip", help="a clip to use instead of the synthetic 5 s 720p one")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--decode-tokens", type=int, default=256)
    parser.add_argument("--talker-tokens", type=int, default=250, help="codec tokens (50 = 1 s of audio)")
    parser.add_argument("--out", default=str(RESULTS_DIR / "omni_gpu.json"), help="JSON file for the figures")
    args = parser.parse_args()

    cfg = load_config(env={})
    cfg.reasoning = OmniReasoning()
    omni = cfg.reasoning.omni
    omni.device = args.device
    # Random weights fill every part to its cap: 200 characters a part keeps the E-CoT near a real one's length.
    omni.max_part_chars, omni.max_new_tokens = 200, 2048
    if args.dtype:
        omni.dtype = args.dtype
    from transformers.generation.streamers import BaseStreamer

    from emoomni.services.reasoning.backends.omni_backend import resolve_device_dtype

    device, dtype = resolve_device_dtype(omni)
    started = time.perf_counter()
    model, processor, config = build_model(args.size, device, dtype)
    build_s = time.perf_counter() - started
    params_b = sum(p.numel() for p in model.parameters()) / 1e9
    backend = OmniBackend(cfg.reasoning, cfg.limits, loaded=(model.thinker, processor, device, dtype))

    workdir = Path(tempfile.mkdtemp(prefix="omni-bench-"))
    clip = args.clip or str(synth_clip(workdir / "clip.mp4"))
    perception = perception_pb2.PerceptionResult(cues=[perception_pb2.Cue(
        modality="speech", text="The person said they finally found the record.", brief='said "found the record"')])
    perception.transcript.language = "en"
    pad = processor.tokenizer.pad_token_id

    prepare_ms, ttft_ms, decode_tps, ecot_first_ms, ecot_total_ms, ecot_tokens = [], [], [], [], [], []
    thinker_ms, talker_ms, token2wav_ms, rtf, audio_s = [], [], [], [], []
    timers: dict[str, float] = {}

    class TokenClock(BaseStreamer):
        """When each new token came out of generate() (its first put() is the prompt, not timed)."""

        def __init__(self):
            self.times: list[float] = []
            self.prompt_seen = False

        def put(self, value):
            value.cpu()  # waits for the device, so the time is when the token exists
            if self.prompt_seen:
                self.times.append(time.perf_counter())
            self.prompt_seen = True

        def end(self):
            pass

    def timed(name, fn):
        def wrapper(*a, **k):
            sync(device)
            t0 = time.perf_counter()
            out = fn(*a, **k)
            sync(device)
            timers[name] = timers.get(name, 0.0) + time.perf_counter() - t0
            return out
        return wrapper

    model.thinker.generate = timed("thinker", model.thinker.generate)
    model.talker.generate = timed("talker", model.talker.generate)
    model.token2wav.forward = timed("token2wav", model.token2wav.forward)
    codec_only = [[i] for i in range(8192, config.talker_config.vocab_size)]  # keep random codes in range

    for run in range(args.runs + 1):  # run 0 warms up kernels and allocator
        with torch.inference_mode():
            sync(device)
            t0 = time.perf_counter()
            inputs = backend.prepare(perception, "", clip)
            t1 = time.perf_counter()
            clock = TokenClock()
            model.thinker.generate(**inputs, max_new_tokens=args.decode_tokens, min_new_tokens=args.decode_tokens,
                                   do_sample=False, pad_token_id=pad, streamer=clock)
            t2 = clock.times[0]  # the first new token: prefill done
            decode_s = clock.times[-1] - clock.times[0]
            # The serving path: grammar-constrained E-CoT, streamed.
            t3 = time.perf_counter()
            first, n_chars = None, 0
            for piece in backend.stream(perception, "", clip):
                if piece.part == EMOTION and piece.text and first is None and not piece.text.startswith("The person"):
                    first = time.perf_counter()
                n_chars += len(piece.text)
            t4 = time.perf_counter()
            # The talker on a 64-token reply.
            timers.clear()
            # Pixels go to the thinker only (the talker reads the thinker's states, not the frames).
            talker_inputs = {("thinker_" + k if k.startswith("pixel_values") else k): v for k, v in inputs.items()}
            _, wav = model.generate(**talker_inputs, speaker="bench", thinker_max_new_tokens=64,
                                    thinker_do_sample=False, talker_max_new_tokens=args.talker_tokens,
                                    talker_bad_words_ids=codec_only)
        if run == 0:
            continue
        seconds = wav.shape[-1] / 24000
        prepare_ms.append((t1 - t0) * 1e3)
        ttft_ms.append((t2 - t0) * 1e3)
        decode_tps.append((args.decode_tokens - 1) / decode_s)
        ecot_first_ms.append(((first or t4) - t3) * 1e3)
        ecot_total_ms.append((t4 - t3) * 1e3)
        ecot_tokens.append(n_chars)
        thinker_ms.append(timers["thinker"] * 1e3)
        talker_ms.append(timers["talker"] * 1e3)
        token2wav_ms.append(timers["token2wav"] * 1e3)
        audio_s.append(seconds)
        rtf.append((timers["talker"] + timers["token2wav"]) / seconds)
        print(f"run {run}: ttft {ttft_ms[-1]:.0f} ms, decode {decode_tps[-1]:.1f} tok/s, talker RTF {rtf[-1]:.3f}",
              flush=True)

    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else None
    result = {
        "what": "Qwen2.5-Omni (random weights) serving path", "size": args.size, "device": device, "gpu": gpu,
        "dtype": str(dtype).replace("torch.", ""), "params_billion": round(params_b, 2),
        "build_s": round(build_s, 1), "clip": args.clip or "synthetic 5 s 1280x720 + voiced audio",
        "clip_tokens": int(inputs["input_ids"].shape[1]),
        "frames": int(inputs["video_grid_thw"][0, 0]) * 2 if "video_grid_thw" in inputs else 0,
        "prepare_ms": summary(prepare_ms), "ttft_ms": summary(ttft_ms), "decode_tokens_per_s": summary(decode_tps),
        "ecot_first_text_ms": summary(ecot_first_ms), "ecot_total_ms": summary(ecot_total_ms),
        "ecot_chars": summary(ecot_tokens), "talker_thinker_ms": summary(thinker_ms),
        "talker_codec_ms": summary(talker_ms), "talker_token2wav_ms": summary(token2wav_ms),
        "talker_audio_s": summary(audio_s), "talker_rtf": summary(rtf),
        "peak_gpu_memory_gib": (round(torch.cuda.max_memory_allocated() / 2**30, 1)
                                if device.startswith("cuda") else None),
        "runs": args.runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    for key, value in result.items():
        if isinstance(value, dict) and math.isfinite(value["median"]):
            print(f"{key:24s} median {value['median']:>10} p99 {value['p99']:>10}")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
