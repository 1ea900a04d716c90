"""Random-weight Qwen2.5-Omni checkpoints of the real architecture: a tiny one for tests, the 7B one for GPUs.

Why: the real weights are many gigabytes and cannot be downloaded here, but the code that loads a user's
checkpoint, prepares video and audio with the model's own processor, generates and parses must still run for
real. A tiny checkpoint (same classes, same file layout, same processor, a small trained BPE tokenizer) proves
that path; it proves nothing about answer quality. Compute cost does not depend on weight values, so the
full-size architecture with random weights gives real speed figures (benchmarks/omni_gpu.py).

    python -m training.thinker.random_checkpoint OUT_DIR [--family qwen3_omni]   # tiny, a few MB
"""

from __future__ import annotations

import argparse
from pathlib import Path

# Special tokens the Qwen2.5-Omni processor and chat format rely on (names as the processor reads them).
MEDIA_TOKENS = {
    "audio_token": "<|AUDIO|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
    "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
}
CHAT_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# ChatML turns; media parts become their placeholder tokens, which the processor expands to the right count.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message.role + '\n' }}"
    "{%- if message.content is string -%}{{ message.content }}"
    "{%- else -%}{%- for part in message.content -%}"
    "{%- if part.type == 'audio' -%}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{%- elif part.type == 'video' -%}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{%- elif part.type == 'image' -%}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{%- else -%}{{ part.text }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)


def _corpus() -> list[str]:
    """Text to learn BPE merges from: the instruction mapper's phrase banks, so that replies tokenise into real
    words. Fixed data (not the README), so the tiny checkpoint stays the same from one commit to the next."""
    root = Path(__file__).resolve().parents[1] / "instruction"
    lines = [line for name in ("facets.yaml", "heldout.yaml")
             for line in (root / name).read_text(encoding="utf-8").splitlines()]
    return [*lines, "<emotion> <intent> <strategy> <response> </emotion> </intent> </strategy> </response>"]


def build_tokenizer(vocab_size: int = 1200):
    """A working byte-level BPE tokenizer with the Qwen2.5-Omni special tokens (trained in ~1 s)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=CHAT_TOKENS + list(MEDIA_TOKENS.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(_corpus(), trainer)
    return Qwen2TokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                              extra_special_tokens=dict(MEDIA_TOKENS))


def build_processor(tokenizer, family: str = "qwen2_5_omni"):
    """The family's processor: Qwen2-VL image/video processors (14 px patches for Qwen2.5, 16 for Qwen3),
    a 128-bin Whisper feature extractor, the tokenizer and the chat template."""
    import transformers
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor, WhisperFeatureExtractor

    patch = 16 if family == "qwen3_omni" else 14
    processor = transformers.Qwen3OmniMoeProcessor if family == "qwen3_omni" else transformers.Qwen2_5OmniProcessor
    return processor(image_processor=Qwen2VLImageProcessor(patch_size=patch),
                     video_processor=Qwen2VLVideoProcessor(patch_size=patch),
                     feature_extractor=WhisperFeatureExtractor(feature_size=128),
                     tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def _token_ids(tokenizer) -> dict:
    """Config fields that name special tokens, pointed at `tokenizer`'s ids (the processor inserts them)."""
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in MEDIA_TOKENS.items()}
    return {"audio_token_index": ids["audio_token"], "image_token_index": ids["image_token"],
            "video_token_index": ids["video_token"], "audio_start_token_id": ids["audio_bos_token"],
            "audio_end_token_id": ids["audio_eos_token"], "vision_start_token_id": ids["vision_bos_token"],
            "vision_end_token_id": ids["vision_eos_token"]}


def omni_config(tokenizer, size: str = "tiny", talker: bool = False):
    """Qwen2.5-Omni config with token ids from `tokenizer`.

    size "7b": the published Qwen2.5-Omni-7B dimensions (10.7 B parameters: thinker 8.9 B with its 675 M
    vision and 640 M audio towers, talker 1.35 B, token2wav 0.45 B); the text vocabulary keeps its full 152,064
    rows so compute matches the real model. transformers' defaults match it except where set below.
    size "tiny": every block shrunk to 2 layers of width 64 (a few MB), for tests on CPU.
    """
    from transformers import Qwen2_5OmniConfig

    ids = _token_ids(tokenizer)
    text_ids = {"tts_text_start_token_id": tokenizer.convert_tokens_to_ids("<|im_start|>"),
                "tts_text_end_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
                "tts_text_pad_token_id": tokenizer.pad_token_id}
    user = {"user_token_id": tokenizer.convert_tokens_to_ids("<|im_start|>")}
    if size == "7b":
        return Qwen2_5OmniConfig(
            thinker_config={"vision_config": {"hidden_size": 1280}, **ids, **user},
            talker_config={"hidden_size": 896, "intermediate_size": 18944, "num_hidden_layers": 24,
                           "num_attention_heads": 12, "num_key_value_heads": 4, "head_dim": 128, **ids, **text_ids},
            enable_audio_output=talker)
    if size != "tiny":
        raise ValueError(f"size is 'tiny' or '7b', not {size!r}")
    # head_dim 16 -> 8 rotary frequencies split over time, height and width.
    rope = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]}
    thinker = {
        "audio_config": {"d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
                         "output_dim": 64, "num_mel_bins": 128, "n_window": 100},
        "vision_config": {"depth": 2, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64,
                          "out_hidden_size": 64, "fullatt_block_indexes": [1]},
        "text_config": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                        "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": len(tokenizer),
                        "max_window_layers": 2, "max_position_embeddings": 8192, "rope_parameters": rope},
        **ids, **user,
    }
    talker_config = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "intermediate_size": 128, "head_dim": 16, "embedding_size": 64, "max_window_layers": 2,
                     "rope_parameters": rope, **ids, **text_ids}
    token2wav = {
        "dit_config": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "head_dim": 32,
                       "emb_dim": 32, "enc_emb_dim": 32, "enc_dim": 32, "enc_channels": [32, 32, 32, 32, 96],
                       "enc_attention_channels": 16, "enc_se_channels": 16, "look_ahead_layers": [1],
                       "look_backward_layers": [0, 1]},
        "bigvgan_config": {"upsample_initial_channel": 128},
    }
    return Qwen2_5OmniConfig(thinker_config=thinker, talker_config=talker_config, token2wav_config=token2wav,
                             enable_audio_output=talker)


def random_speaker(config, seed: int = 0) -> dict:
    """A speaker entry in the layout of Qwen2.5-Omni's spk_dict.pt (voice embedding, reference mel, text bos)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    dit = config.token2wav_config.dit_config
    return {"cond": torch.randn(1, dit.enc_emb_dim, generator=gen),
            "ref_mel": torch.randn(1, 300, dit.mel_dim, generator=gen),
            "bos_token": config.talker_config.tts_text_start_token_id}


def qwen3_tiny_config(tokenizer):
    """Qwen3-Omni (MoE thinker) shrunk like `omni_config(size="tiny")`: 4 experts, 2 active."""
    from transformers import Qwen3OmniMoeConfig

    ids = _token_ids(tokenizer)
    rope = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3], "mrope_interleaved": True}
    thinker = {
        "audio_config": {"d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
                         "output_dim": 64, "num_mel_bins": 128, "downsample_hidden_size": 32},
        "vision_config": {"depth": 2, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64,
                          "out_hidden_size": 64, "deepstack_visual_indexes": [1], "num_position_embeddings": 256},
        "text_config": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                        "head_dim": 16, "intermediate_size": 128, "moe_intermediate_size": 32, "num_experts": 4,
                        "num_experts_per_tok": 2, "vocab_size": len(tokenizer), "rope_parameters": rope},
        "audio_token_id": ids["audio_token_index"], "image_token_id": ids["image_token_index"],
        "video_token_id": ids["video_token_index"], "audio_start_token_id": ids["audio_start_token_id"],
        "vision_start_token_id": ids["vision_start_token_id"],
        "user_token_id": tokenizer.convert_tokens_to_ids("<|im_start|>"),
    }
    return Qwen3OmniMoeConfig(thinker_config=thinker, enable_audio_output=False)


FAMILIES = ("qwen2_5_omni", "qwen3_omni")


def write_tiny_checkpoint(out_dir: str | Path, seed: int = 0, family: str = "qwen2_5_omni") -> Path:
    """Write config, random weights (full-checkpoint layout: `thinker.*`), tokenizer and processor files."""
    import torch
    from transformers import Qwen2_5OmniForConditionalGeneration, Qwen3OmniMoeForConditionalGeneration

    if family not in FAMILIES:
        raise ValueError(f"family is one of {FAMILIES}, not {family!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    if family == "qwen3_omni":
        model = Qwen3OmniMoeForConditionalGeneration(qwen3_tiny_config(tokenizer))
    else:
        model = Qwen2_5OmniForConditionalGeneration(omni_config(tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    build_processor(tokenizer, family).save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family", choices=FAMILIES, default="qwen2_5_omni")
    args = parser.parse_args()
    print(write_tiny_checkpoint(args.out_dir, args.seed, args.family))


if __name__ == "__main__":
    main()
