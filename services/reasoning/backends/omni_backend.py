"""Omni backend: a Qwen2.5-Omni (or Qwen3-Omni) thinker that watches and hears the clip and writes the E-CoT.

This is the paper's thinker: the model reads the clip's frames and audio through its own processor (plus the
measured cues as text), and writes the four parts as tagged sections in one generation. xgrammar constrains
decoding to that format, so the output always parses, whatever the weights; the parts stream out as they are
written. An optional peft LoRA adapter (the paper's fine-tune) is loaded on top.

Memory safety: a clip past `reasoning.omni.max_audio_s`, or needing more than `max_frames` frames at `fps`,
is refused with a MediaError before anything is decoded.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from pathlib import Path

from emoomni.core import media as media_io
from emoomni.core.config import LimitsConfig, OmniConfig, ReasoningConfig
from emoomni.services.reasoning.backends.interface import (
    EMOTION,
    INTENT,
    RESPONSE,
    STRATEGY,
    MediaSource,
    Piece,
    evidence_text,
)
from emoomni.services.reasoning.prompt import cue_block
from emoomni.v1 import perception_pb2

log = logging.getLogger(__name__)

# The tag of each part, in causal order.
PART_TAGS = ((EMOTION, "emotion"), (INTENT, "intent"), (STRATEGY, "strategy"), (RESPONSE, "response"))


def format_regex(max_part_chars: int) -> str:
    """The four tagged parts in order; a part holds no '<' and at most `max_part_chars` characters, so every
    part ends even when the weights would ramble."""
    return "\n".join(f"<{tag}>[^<]{{1,{max_part_chars}}}</{tag}>" for _, tag in PART_TAGS)

SYSTEM_PROMPT = (
    "You are EmoOmni, a caring companion. You see and hear a person talking to you. Think about them in four "
    "steps and write each step inside its tag, in this order: <emotion> what their face, voice and words show, "
    "and the feeling these add up to </emotion>, <intent> what they want from you </intent>, <strategy> how you "
    "will answer: tone, pace and approach </strategy>, <response> the one or two sentences you say aloud to "
    "them </response>."
)

# model_type in config.json -> (transformers thinker class, whether the folder holds a full omni checkpoint).
_FAMILIES = {
    "qwen2_5_omni": ("Qwen2_5OmniThinkerForConditionalGeneration", True),
    "qwen2_5_omni_thinker": ("Qwen2_5OmniThinkerForConditionalGeneration", False),
    "qwen3_omni_moe": ("Qwen3OmniMoeThinkerForConditionalGeneration", True),
    "qwen3_omni_moe_thinker": ("Qwen3OmniMoeThinkerForConditionalGeneration", False),
}


def resolve_device_dtype(cfg: OmniConfig):
    """cuda when available; bfloat16 where the device supports it, float32 on CPU (bf16 matmuls are slow there)."""
    import torch

    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.dtype != "auto":
        return device, getattr(torch, cfg.dtype)
    if device.startswith("cuda"):
        return device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return device, torch.float32


def load_thinker(cfg: OmniConfig):
    """Thinker model (with the LoRA adapter when configured) and its processor, from local folders only."""
    import transformers
    from transformers import AutoConfig, AutoProcessor

    path = Path(cfg.model_path).expanduser()
    if not cfg.model_path or not (path / "config.json").is_file():
        raise ValueError(f"reasoning.omni.model_path must be a local model folder with config.json; got "
                         f"{cfg.model_path!r}")
    config = AutoConfig.from_pretrained(path)
    if config.model_type not in _FAMILIES:
        raise ValueError(f"{path} holds a {config.model_type!r} model; the omni backend reads "
                         f"{', '.join(sorted(_FAMILIES))}")
    class_name, full = _FAMILIES[config.model_type]
    device, dtype = resolve_device_dtype(cfg)
    model, info = getattr(transformers, class_name).from_pretrained(
        path, config=config.thinker_config if full else config, dtype=dtype, output_loading_info=True)
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise ValueError(f"{path} lacks {len(missing)} thinker weights (e.g. {missing[0]}): not a complete "
                         "checkpoint of this architecture")
    if cfg.adapter_path:
        from peft import PeftModel

        adapter = Path(cfg.adapter_path).expanduser()
        if not (adapter / "adapter_config.json").is_file():
            raise ValueError(f"reasoning.omni.adapter_path {cfg.adapter_path!r} has no adapter_config.json")
        model = PeftModel.from_pretrained(model, adapter)
    model.to(device).eval()
    return model, AutoProcessor.from_pretrained(path), device, dtype


class OmniBackend:
    needs_media = True

    def __init__(self, cfg: ReasoningConfig, limits: LimitsConfig, loaded: tuple | None = None):
        """`loaded` = (model, processor, device, dtype) already in memory (benchmarks build one from a config);
        otherwise the thinker is read from `reasoning.omni.model_path`."""
        import xgrammar

        self.cfg = cfg.omni
        self.limits = limits
        self.model, self.processor, self.device, self.dtype = loaded or load_thinker(self.cfg)
        tokenizer = self.processor.tokenizer
        vocab = self.model.config.get_text_config().vocab_size
        info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab)
        self._format = xgrammar.GrammarCompiler(info).compile_regex(format_regex(self.cfg.max_part_chars))
        log.info("omni thinker %s on %s (%s)%s", self.cfg.model_path, self.device, self.dtype,
                 f" + LoRA {self.cfg.adapter_path}" if self.cfg.adapter_path else "")

    # -- input preparation -------------------------------------------------------------------------------
    def _decode(self, source: MediaSource) -> media_io.DecodedMedia:
        cfg = self.cfg
        duration = media_io.probe(source, self.limits)
        if duration > cfg.max_audio_s:
            raise media_io.MediaError(f"the clip lasts {duration:.1f} s; the omni thinker takes at most "
                                      f"{cfg.max_audio_s:.0f} s (reasoning.omni.max_audio_s)")
        n_frames = max(2, math.ceil(duration * cfg.fps))
        if n_frames > cfg.max_frames:
            raise media_io.MediaError(f"the clip needs {n_frames} frames at {cfg.fps} fps, over the limit of "
                                      f"{cfg.max_frames} (reasoning.omni.max_frames / fps)")
        n_frames += n_frames % 2  # the vision tower groups frames in pairs
        rate = self.processor.feature_extractor.sampling_rate
        return media_io.decode(source, self.limits, sample_rate=rate, n_frames=n_frames,
                               max_side_px=cfg.max_side_px)

    def prepare(self, perception: perception_pb2.PerceptionResult, context: str, source: MediaSource):
        """Processor inputs for this turn: chat prompt, frames and audio; on the model's device and dtype."""
        import numpy as np

        clip = self._decode(source)
        content: list[dict] = []
        videos = None
        if clip.frames:
            frames = [frame for _, frame in clip.frames]
            if len(frames) % 2:
                frames.append(frames[-1])
            videos = [np.stack(frames)]
            content.append({"type": "video"})
        interleave = self.cfg.audio_in_video and videos is not None
        if not interleave:  # interleaved audio takes the video's place in the text, not a placeholder of its own
            content.append({"type": "audio"})
        language = perception.transcript.language or "en"
        content.append({"type": "text", "text": f"{cue_block(perception, context)}\nAnswer in the language "
                                                f"with ISO code {language!r}."})
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        # cap_pixels_per_frame: resize frames the way the models' reference preprocessing (qwen-vl-utils) does.
        videos_kwargs = ({"fps": len(videos[0]) / max(clip.duration_s, 1e-3), "cap_pixels_per_frame": True}
                         if videos else {})
        # `audio_from_video_indices=[0]`: the audio slot is video 0's sound, already decoded here.
        interleaving = {"load_audio_from_video": True, "audio_from_video_indices": [0]} if interleave else {}
        inputs = self.processor(text=[prompt], videos=videos, audio=[clip.audio], return_tensors="pt",
                                padding=True, videos_kwargs=videos_kwargs, **interleaving)
        inputs = inputs.to(self.device).to(self.dtype)
        inputs["use_audio_in_video"] = interleave  # the model places the interleaved positions on one time axis
        return inputs

    # -- generation ----------------------------------------------------------------------------------------
    def _generate_text(self, inputs) -> Iterator[str]:
        """Run generate() in a thread and yield decoded text as it comes; re-raise the thread's error."""
        from transformers import TextIteratorStreamer
        from xgrammar.contrib.hf import LogitsProcessor

        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = ({"do_sample": True, "temperature": self.cfg.temperature, "top_p": 0.9}
                    if self.cfg.temperature > 0 else {"do_sample": False})
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self.model.generate(**inputs, max_new_tokens=self.cfg.max_new_tokens, streamer=streamer,
                                    logits_processor=[LogitsProcessor(self._format)],
                                    pad_token_id=self.processor.tokenizer.pad_token_id, **sampling)
            except BaseException as exc:
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="omni-generate", daemon=True)
        worker.start()
        yield from streamer
        worker.join()
        if failure:
            raise failure[0]

    def stream(self, perception: perception_pb2.PerceptionResult, context: str,
               media: MediaSource | None = None) -> Iterator[Piece]:
        if media is None:
            raise media_io.MediaError("the omni backend needs the clip itself; none was forwarded")
        inputs = self.prepare(perception, context, media)
        yield Piece(EMOTION, evidence_text(perception) + " ")
        yield from parse_tagged_parts(self._generate_text(inputs))


def parse_tagged_parts(chunks: Iterator[str]) -> Iterator[Piece]:
    """Turn `<emotion>..</emotion>\\n<intent>..` text, arriving in arbitrary chunks, into Pieces.

    Text inside a part never holds '<' (the grammar forbids it), so a '<' always starts a tag and only the
    text from it on is held back until the tag is complete.
    """
    tags = {tag: part for part, tag in PART_TAGS}
    order = [part for part, _ in PART_TAGS]
    buffer, current, done = "", None, 0
    for chunk in chunks:
        buffer += chunk
        while buffer:
            if current is not None and not buffer.startswith("<"):
                cut = buffer.find("<")
                text, buffer = (buffer, "") if cut < 0 else (buffer[:cut], buffer[cut:])
                yield Piece(current, text)
                continue
            end = buffer.find(">")
            if end < 0:
                break  # tag not complete yet
            tag, buffer = buffer[:end + 1].strip(), buffer[end + 1:]
            name = tag.strip("</>")
            if tag.startswith("</") and current is not None and tags.get(name) == current:
                yield Piece(current, "", part_done=True)
                current, done = None, done + 1
            elif current is None and tags.get(name) == order[done]:
                current = order[done]
            else:
                raise RuntimeError(f"the omni model's output broke the E-CoT format at {tag!r}")
            buffer = buffer.lstrip("\n") if current is None else buffer
    if done < len(order):
        missing = PART_TAGS[done][1]
        raise RuntimeError(f"the omni model stopped before finishing the {missing} part "
                           "(raise reasoning.omni.max_new_tokens)")
