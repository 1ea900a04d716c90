"""A tiny, randomly initialised Qwen3-TTS checkpoint of the real architecture, for tests on machines that
cannot fetch the real weights (the conformance suite loads the plugin on it through `test_options`).

It is laid out as the published 12 Hz VoiceDesign checkpoints are, every size shrunk; the audio it makes is
noise, so it proves the code path, never speech quality."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .compat import import_qwen_tts

SAMPLE_RATE = 24000


def write_tiny_checkpoint(folder: Path, init_std: float = 0.02):
    """A VoiceDesign checkpoint of the real classes, every dimension shrunk, weights random. A larger `init_std`
    (the talker's initializer range) gives its output heads the reach to fit targets, for training tests."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import EncodecFeatureExtractor, Qwen2TokenizerFast

    import_qwen_tts()
    from qwen_tts.core import Qwen3TTSTokenizerV2Config, Qwen3TTSTokenizerV2Model
    from qwen_tts.core.models import Qwen3TTSConfig, Qwen3TTSForConditionalGeneration, Qwen3TTSProcessor

    torch.manual_seed(0)
    # Text tokenizer: byte-level BPE like Qwen2's, with the chat markers the prompt template uses.
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    corpus = ["assistant\n", "user\n", "Speak softly in a whisper.", "Hello there, how are you today?"]
    bpe.train_from_iterator(corpus * 40, trainer)
    tokenizer = Qwen2TokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, unk_token=None)
    Qwen3TTSProcessor(tokenizer=tokenizer).save_pretrained(folder)
    vocab = bpe.get_vocab_size()

    # Talker + code predictor. Codec ids live in the top 1024 of the talker vocabulary, as in the real model.
    config = Qwen3TTSConfig(
        talker_config={
            "vocab_size": 3072, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "num_code_groups": 4,
            "initializer_range": init_std, "text_hidden_size": 16, "text_vocab_size": vocab + 3,
            "rope_scaling": {"rope_type": "default", "mrope_section": [2, 3, 3], "interleaved": True},
            "codec_language_id": {"english": 2050, "chinese": 2051}, "spk_id": {}, "spk_is_dialect": {},
            "codec_pad_id": 2148, "codec_bos_id": 2149, "codec_eos_token_id": 2150, "codec_think_id": 2154,
            "codec_nothink_id": 2155, "codec_think_bos_id": 2156, "codec_think_eos_id": 2157,
            "code_predictor_config": {"vocab_size": 2048, "hidden_size": 32, "intermediate_size": 64,
                                      "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                                      "head_dim": 16, "num_code_groups": 4, "initializer_range": init_std},
        },
        tokenizer_type="qwen3_tts_tokenizer_12hz", tts_model_size="tiny", tts_model_type="voice_design",
        tts_bos_token_id=vocab, tts_eos_token_id=vocab + 1, tts_pad_token_id=vocab + 2,
        im_start_token_id=bpe.token_to_id("<|im_start|>"), im_end_token_id=bpe.token_to_id("<|im_end|>"),
    )
    Qwen3TTSForConditionalGeneration(config).save_pretrained(folder)
    # qwen-tts reads generation_config.json as its own sampling defaults (it replaces the transformers one).
    (folder / "generation_config.json").write_text(json.dumps({
        "do_sample": True, "top_k": 50, "top_p": 1.0, "temperature": 0.9, "repetition_penalty": 1.05,
        "subtalker_dosample": True, "subtalker_top_k": 50, "subtalker_top_p": 1.0, "subtalker_temperature": 0.9,
        "max_new_tokens": 4096}))

    # 12 Hz speech codec: Mimi encoder + the codec decoder, real upsampling (1920 samples a frame at 24 kHz).
    codec = Qwen3TTSTokenizerV2Config(
        encoder_config={"hidden_size": 16, "num_filters": 2, "num_residual_layers": 1, "num_hidden_layers": 1,
                        "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 8, "intermediate_size": 32,
                        "codebook_size": 64, "codebook_dim": 16, "num_quantizers": 4, "num_semantic_quantizers": 1,
                        "sliding_window": 16, "upsample_groups": 16, "vector_quantization_hidden_dimension": 16},
        decoder_config={"codebook_size": 2048, "codebook_dim": 16, "hidden_size": 16, "latent_dim": 16,
                        "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 8, "intermediate_size": 32,
                        "num_hidden_layers": 1, "num_quantizers": 4, "decoder_dim": 32, "sliding_window": 8},
        encoder_valid_num_quantizers=4,
    )
    codec_model = Qwen3TTSTokenizerV2Model(codec)
    # The codebooks start as running sums of zero (they are learned from data, not initialised) and the decoder's
    # default init keeps its output around 1e-9, so every code would decode to (near) silence; random codebooks
    # and decoder weights make the codec's output noise loud enough for a test to see.
    with torch.no_grad():
        for name, tensor in [*codec_model.named_parameters(), *codec_model.named_buffers()]:
            if name.endswith(("embedding_sum", "embed_sum")) or (name.startswith("decoder.") and
                                                                   name.endswith(".weight") and tensor.ndim > 1):
                tensor.normal_(0.0, 0.1)
    codec_model.save_pretrained(folder / "speech_tokenizer")
    EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE).save_pretrained(folder / "speech_tokenizer")
    return tokenizer
