"""The omni thinker backend on a real clip, through a small random-weight Qwen2.5-Omni checkpoint.

What these tests prove: a checkpoint in the real Qwen2.5-Omni layout (config, safetensors, BPE tokenizer,
processor and chat template files) loads through the same path a user's Qwen2.5-Omni-7B folder takes; the
clip's frames and audio go through the model's own processor into the real thinker architecture (vision
tower, audio tower, M-RoPE text model), by default with the sound interleaved into the video's 2 s chunks
(or, if configured, as a separate input); constrained generation yields the four E-CoT parts, streamed and
parsed; a peft LoRA adapter loads on top and changes the model; the memory caps refuse long clips; and a turn
runs end to end through the gateway's gRPC API on `emoomni up`. What they do not prove: anything about answer
quality (the weights are random, so the text is gibberish by design), or that the 7B checkpoint fits a GPU.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from emoomni.core.config import OmniReasoning, load_config
from emoomni.core.media import MediaError
from emoomni.services.reasoning.backends import build_backend
from emoomni.services.reasoning.backends.interface import EMOTION, INTENT, RESPONSE, STRATEGY, Piece
from emoomni.services.reasoning.backends.omni_backend import parse_tagged_parts
from emoomni.v1 import perception_pb2
from training.thinker.random_checkpoint import write_tiny_checkpoint

ORDER = [EMOTION, INTENT, STRATEGY, RESPONSE]


@pytest.fixture(scope="module")
def tiny_omni(tiny_omni_checkpoint):
    return tiny_omni_checkpoint


def omni_config(model_path, **overrides):
    cfg = load_config(env={})
    cfg.reasoning = OmniReasoning()
    cfg.reasoning.omni.model_path = str(model_path)
    # Random weights ramble until a part's cap: small caps keep a turn to ~150 tokens on CPU.
    cfg.reasoning.omni.max_part_chars = 40
    cfg.reasoning.omni.max_new_tokens = 400
    for key, value in overrides.items():
        setattr(cfg.reasoning.omni, key, value)
    return cfg


def perception(language="en"):
    result = perception_pb2.PerceptionResult(cues=[
        perception_pb2.Cue(modality="speech", text='The person said "I found the burial record".',
                           brief='said "I found the burial record"')])
    result.transcript.language = language
    return result


@pytest.fixture(scope="module")
def backend(tiny_omni):
    cfg = omni_config(tiny_omni)
    return build_backend(cfg.reasoning, cfg.limits)


def token_runs(ids: list[int], cfg) -> list[str]:
    """The prompt's media placeholders as runs: e.g. ["V", "A", "V", "A"] for interleaved 2 s chunks."""
    runs: list[str] = []
    for token in ids:
        kind = {cfg.video_token_id: "V", cfg.audio_token_id: "A"}.get(token)
        if kind and (not runs or runs[-1] != kind):
            runs.append(kind)
    return runs


def test_real_clip_goes_through_the_processor_into_every_tower(backend, english_clip):
    inputs = backend.prepare(perception(), "", str(english_clip))
    ids = inputs["input_ids"][0].tolist()
    cfg = backend.model.config
    # 5.1 s at 1 fps -> 6 frames, grouped in pairs by the vision tower: 3 temporal patches.
    assert inputs["video_grid_thw"][0, 0].item() == 3
    assert ids.count(cfg.video_token_id) == inputs["video_grid_thw"].prod().item() // 4
    assert ids.count(cfg.audio_token_id) > 50  # ~25 audio tokens per second of speech
    assert inputs["feature_attention_mask"].sum().item() == pytest.approx(5.1 * 100, rel=0.05)
    # Audio in video (the default): one time axis cut into 2 s chunks, each chunk's frames then its sound. The
    # 3 frame pairs start at 0, 1.7 and 3.4 s (chunks 0, 0, 1); the 5.1 s of sound fills chunks 0, 1 and 2.
    assert inputs["use_audio_in_video"] is True
    assert token_runs(ids, cfg) == ["V", "A", "V", "A"]
    bos = ids.index(cfg.vision_start_token_id)
    assert ids[bos + 1] == cfg.audio_start_token_id  # the layout the model's position index reads


def test_audio_can_go_in_as_its_own_input(tiny_omni, backend, english_clip):
    import torch

    from emoomni.services.reasoning.backends.omni_backend import OmniBackend

    cfg = omni_config(tiny_omni, audio_in_video=False)
    separate = OmniBackend(cfg.reasoning, cfg.limits, loaded=(backend.model, backend.processor, backend.device,
                                                               backend.dtype))
    apart = separate.prepare(perception(), "", str(english_clip))
    together = backend.prepare(perception(), "", str(english_clip))
    cfg = backend.model.config
    assert apart["use_audio_in_video"] is False and token_runs(apart["input_ids"][0].tolist(), cfg) == ["V", "A"]
    # Same media, same number of placeholders, placed differently in time: the model sees a different input.
    assert apart["input_ids"].shape == together["input_ids"].shape
    with torch.no_grad():
        assert not torch.allclose(backend.model(**apart).logits[0, -1], backend.model(**together).logits[0, -1])


def test_streams_four_parts_in_causal_order(backend, english_clip):
    pieces = list(backend.stream(perception(), "a friend", str(english_clip)))
    done = [p.part for p in pieces if p.part_done]
    assert done == ORDER
    # Parts never interleave: once a part is done, no more text for it.
    seen = []
    for piece in pieces:
        if not seen or seen[-1] != piece.part:
            assert piece.part not in seen
            seen.append(piece.part)
    texts = {part: "".join(p.text for p in pieces if p.part == part) for part in ORDER}
    assert texts[EMOTION].startswith('The person said "I found the burial record".')
    assert all(texts[part].strip() and "<" not in texts[part] for part in ORDER)
    # Text streams out part by part as generated (transformers' streamer releases it at whitespace and line ends,
    # so how finely random gibberish splits varies; the parser's handling of any chunking is tested below).
    assert all(any(p.part == part and p.text for p in pieces) for part in ORDER)
    assert sum(1 for p in pieces if p.text) >= len(ORDER) + 1


def test_lora_adapter_loads_on_top_and_changes_the_model(tiny_omni, backend, english_clip, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    # The paper's fine-tune shape (r=8, alpha=32, dropout 0.05) on the text model's attention; random B so that
    # the adapter is not a no-op.
    names = [n for n, _ in backend.model.named_modules() if n.endswith(("q_proj", "v_proj")) and
             "audio_tower" not in n and "visual" not in n]
    peft_model = get_peft_model(build_backend(omni_config(tiny_omni).reasoning).model,
                                LoraConfig(r=8, lora_alpha=32, lora_dropout=0.05, target_modules=names,
                                           init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    cfg = omni_config(tiny_omni, adapter_path=str(tmp_path / "adapter"))
    tuned = build_backend(cfg.reasoning, cfg.limits)
    assert type(tuned.model).__name__ == "PeftModel"
    inputs = backend.prepare(perception(), "", str(english_clip))
    with torch.no_grad():
        base = backend.model(**inputs).logits[0, -1]
        adapted = tuned.model(**inputs).logits[0, -1]
    assert not torch.allclose(base, adapted)
    assert [p.part for p in tuned.stream(perception(), "", str(english_clip)) if p.part_done] == ORDER


def test_long_clips_are_refused_before_decoding(tiny_omni, english_clip, tmp_path):
    cfg = omni_config(tiny_omni, max_audio_s=3.0)
    backend = build_backend(cfg.reasoning, cfg.limits)
    with pytest.raises(MediaError, match=r"lasts 5\.1 s.*max_audio_s"):
        list(backend.stream(perception(), "", str(english_clip)))
    backend.cfg.max_audio_s, backend.cfg.fps, backend.cfg.max_frames = 30.0, 4.0, 8
    with pytest.raises(MediaError, match=r"needs 21 frames at 4\.0 fps.*max_frames"):
        list(backend.stream(perception(), "", str(english_clip)))
    with pytest.raises(MediaError, match="needs the clip itself"):
        list(backend.stream(perception(), "", None))


def test_qwen3_omni_moe_checkpoint_runs_the_same_path(tmp_path, english_clip):
    """Qwen3-Omni (MoE thinker, 16 px patches, interleaved M-RoPE) through the same backend code."""
    path = write_tiny_checkpoint(tmp_path / "tiny-qwen3-omni", family="qwen3_omni")
    cfg = omni_config(path)
    qwen3 = build_backend(cfg.reasoning, cfg.limits)
    assert type(qwen3.model).__name__ == "Qwen3OmniMoeThinkerForConditionalGeneration"
    pieces = list(qwen3.stream(perception(), "", str(english_clip)))
    assert [p.part for p in pieces if p.part_done] == ORDER


def test_bad_model_folders_fail_clearly(tmp_path):
    cfg = omni_config(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"local model folder with config\.json"):
        build_backend(cfg.reasoning, cfg.limits)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="holds a 'bert' model"):
        build_backend(omni_config(tmp_path).reasoning)


@pytest.mark.parametrize("chunking", [1, 3, 1000])
def test_tagged_output_parses_whatever_the_chunking(chunking):
    text = "<emotion>calm, a bit tired</emotion>\n<intent>rest</intent>\n<strategy>gentle</strategy>\n" \
           "<response>Take it easy tonight.</response>"
    pieces = list(parse_tagged_parts(text[i:i + chunking] for i in range(0, len(text), chunking)))
    joined = {part: "".join(p.text for p in pieces if p.part == part) for part in ORDER}
    assert joined == {EMOTION: "calm, a bit tired", INTENT: "rest", STRATEGY: "gentle",
                      RESPONSE: "Take it easy tonight."}
    assert [p.part for p in pieces if p.part_done] == ORDER
    with pytest.raises(RuntimeError, match="before finishing the strategy part"):
        list(parse_tagged_parts(iter([text[:text.index("<strategy>") + 14]])))
    with pytest.raises(RuntimeError, match="broke the E-CoT format"):
        list(parse_tagged_parts(iter(["<intent>x</intent>"])))
    assert isinstance(pieces[0], Piece)


def test_turn_through_the_public_grpc_api_with_the_omni_backend(tiny_omni, english_clip):
    """`emoomni up` (every service its own process) with `reasoning.backend: omni`; a client sends the clip's
    bytes to the gateway's Agent.Converse, so the clip reaches the omni thinker through the bus."""
    from emoomni.sdk.client import Client
    from emoomni.testing.stack import running_stack as stack_processes

    reasoning = omni_config(tiny_omni).model_dump(mode="json")["reasoning"]
    with stack_processes(config={"reasoning": reasoning}) as (addrs, _), Client(addrs["gateway"]) as client:
        events = list(client.converse(english_clip))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "perception" and kinds[-1] == "done", kinds
    parts = [e.ecot_delta.part for e in events if e.WhichOneof("event") == "ecot_delta" and e.ecot_delta.part_done]
    assert parts == ORDER
    done = events[-1].done
    assert "burial record" in events[0].perception.transcript.text
    assert all([done.ecot.emotion_analysis, done.ecot.intent, done.ecot.strategy, done.ecot.response])
    audio = [e.audio for e in events if e.WhichOneof("event") == "audio"]
    assert audio and audio[-1].last and done.timings.reasoning_ms > 0


def test_gpu_benchmark_script_runs_its_whole_path_on_a_tiny_model(tmp_path):
    """benchmarks/omni_gpu.py builds the full model (thinker, talker, token2wav) with random weights and times
    it; here on the tiny size and CPU, so that the script is known to work before a GPU is lent."""
    out = tmp_path / "omni_gpu.json"
    run = subprocess.run([sys.executable, "benchmarks/omni_gpu.py", "--size", "tiny", "--device", "cpu", "--runs",
                          "1", "--decode-tokens", "8", "--talker-tokens", "10", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["size"] == "tiny" and result["frames"] == 6
    assert result["ttft_ms"]["median"] > 0 and result["decode_tokens_per_s"]["median"] > 0
    assert result["talker_audio_s"]["median"] == pytest.approx(0.2) and result["talker_rtf"]["median"] > 0
