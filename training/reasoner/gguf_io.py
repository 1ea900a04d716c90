"""The GGUF side of the reasoner trainer: checking the base file, writing the trained LoRA as a GGUF adapter that
llama.cpp applies over the base (`Llama(lora_path=...)`), and a tiny random-weight GGUF of the real architecture
for tests.

llama.cpp's adapter layout (what its loader checks): general.type "adapter", adapter.type "lora",
adapter.lora.alpha; per adapted weight two tensors named after the base tensor in llama.cpp's own naming
(`blk.N.attn_q.weight.lora_a` / `.lora_b`); A is stored as peft keeps it (r x in), B likewise (out x r), so that
ggml sees A as [in, r] and B as [r, out]. llama.cpp's llama converter permutes the rows of the query and key
weights for its rotary layout, and transformers undoes that when it reads a GGUF, so the trained B matrices of
q_proj and k_proj get the same row permutation before they are written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.common.config import ConfigError

# Architectures whose GGUF transformers reads and whose adapter this writer lays out (llama: SmolLM2, Llama;
# qwen2: Qwen2.5, whose converter writes q/k unpermuted).
SUPPORTED_ARCHS = ("llama", "qwen2")


class BaseModelError(ConfigError):
    """--base is not a GGUF file of an architecture the reasoner trainer handles."""


def read_base(path: str | Path) -> dict:
    """The base GGUF's architecture and sizes; BaseModelError when it is not a usable GGUF (no weights read)."""
    import gguf

    path = Path(path).expanduser()
    if not path.is_file():
        raise BaseModelError(f"--base {path}: no such file (the reasoner trains a GGUF model file)")
    try:
        reader = gguf.GGUFReader(path)
    except (ValueError, OSError, IndexError) as exc:
        raise BaseModelError(f"--base {path}: not a GGUF model file ({exc})") from exc
    fields = {name: field.contents() for name, field in reader.fields.items()
              if name.startswith(("general.", "llama.", "qwen2.", "tokenizer.chat_template"))
              and not name.startswith("general.languages")}
    arch = fields.get("general.architecture")
    if fields.get("general.type", "model") != "model":
        raise BaseModelError(f"--base {path}: a GGUF {fields.get('general.type')!r}, not a model")
    if arch not in SUPPORTED_ARCHS:
        raise BaseModelError(f"--base {path}: a {arch!r} GGUF; the reasoner trainer handles "
                             f"{', '.join(SUPPORTED_ARCHS)}")
    if not fields.get("tokenizer.chat_template"):
        raise BaseModelError(f"--base {path}: the GGUF has no chat template (tokenizer.chat_template), which the "
                             "cascade backend formats its prompt with")
    return {"path": path.resolve(), "arch": arch, "blocks": int(fields[f"{arch}.block_count"]),
            "heads": int(fields[f"{arch}.attention.head_count"]),
            "kv_heads": int(fields.get(f"{arch}.attention.head_count_kv", fields[f"{arch}.attention.head_count"])),
            "chat_template": fields.get("tokenizer.chat_template", "")}


def rotary_permute(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """llama.cpp's row order for a llama query/key projection (each head's two rotary halves interleaved)."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(
        weight.shape)


def lora_pairs(model) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(module path in the base model, A, B) for every LoRA layer of a peft model."""
    from peft.tuners.lora import LoraLayer

    pairs = []
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and "default" in module.lora_A:
            base = name.removeprefix("base_model.model.")
            pairs.append((base, module.lora_A["default"].weight.detach().float().cpu(),
                          module.lora_B["default"].weight.detach().float().cpu()))
    return pairs


def write_adapter(model, base: dict, alpha: float, out: str | Path) -> Path:
    """Write the peft model's LoRA weights as a llama.cpp GGUF LoRA adapter for the base `read_base` described."""
    import gguf

    arch = gguf.MODEL_ARCH[base["arch"].upper()]
    names = gguf.get_tensor_name_map(arch, base["blocks"])
    writer = gguf.GGUFWriter(str(out), base["arch"])
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    pairs = lora_pairs(model)
    if not pairs:
        raise ValueError("the model holds no LoRA layers to export")
    for module, lora_a, lora_b in pairs:
        target = names.get_name(f"{module}.weight", try_suffixes=(".weight",))
        if target is None:
            raise ValueError(f"no llama.cpp tensor name for {module} ({base['arch']})")
        if base["arch"] == "llama" and module.endswith(("q_proj", "k_proj")):
            lora_b = rotary_permute(lora_b, base["heads"] if module.endswith("q_proj") else base["kv_heads"])
        writer.add_tensor(f"{target}.lora_a", lora_a.numpy().astype(np.float16))
        writer.add_tensor(f"{target}.lora_b", lora_b.numpy().astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(out)


def write_tiny_gguf(source: str | Path, out: str | Path, *, hidden: int = 64, layers: int = 2, heads: int = 4,
                    kv_heads: int = 2, ffn: int = 128, seed: int = 0, init_std: float = 0.3) -> Path:
    """A random-weight llama GGUF with `source`'s tokenizer and chat template (the real vocabulary), every
    dimension shrunk: the reasoner's whole path (transformers reads it, llama.cpp serves it and its adapter) at
    test speed. It proves the path, never answer quality."""
    import gguf
    from transformers import LlamaConfig, LlamaForCausalLM

    reader = gguf.GGUFReader(Path(source))
    vocab = len(reader.fields["tokenizer.ggml.tokens"].contents())
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=ffn,
                                         num_hidden_layers=layers, num_attention_heads=heads,
                                         num_key_value_heads=kv_heads, max_position_embeddings=2048,
                                         rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
                                         initializer_range=init_std))
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name("tiny random llama (tests)")
    writer.add_block_count(layers)
    writer.add_context_length(2048)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(100000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_vocab_size(vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for name, field in reader.fields.items():
        if name.startswith("tokenizer."):
            sub = field.types[1] if len(field.types) > 1 else None
            writer.add_key_value(name, field.contents(), field.types[0], sub_type=sub)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
    for key, value in model.state_dict().items():
        if key == "lm_head.weight":  # tied to the embedding: llama.cpp reuses token_embd
            continue
        target = names.get_name(key, try_suffixes=(".weight",))
        if key.endswith(("q_proj.weight", "k_proj.weight")):
            value = rotary_permute(value, heads if "q_proj" in key else kv_heads)
        writer.add_tensor(target, value.float().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(out)
