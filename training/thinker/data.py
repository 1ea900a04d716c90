"""Turning a messages sample into the thinker's inputs: frames, sound and text through the checkpoint's own
processor, with labels on the answer tokens only.

Frames are sampled at `media.fps`, at most `media.max_frames` per video, each resized by the processor to at
most `media.max_pixels`. With `media.audio_in_video` a video's sound is its own audio track, interleaved with
the frames on one time axis (as the omni backend serves it); other `<audio>` placeholders are separate inputs.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from emoomni.core import media as media_io
from emoomni.core.config import LimitsConfig
from training.common.messages import MEDIA_KINDS, BadLine, Sample, ecot_parts
from training.thinker.config import MediaSection

IGNORE = -100  # label of a token that is not trained on
_PLACEHOLDER = re.compile(r"<(video|audio|image)>")


def ecot_layout(answer: str) -> str:
    """The four parts in exactly the layout the omni backend's format grammar writes."""
    return "\n".join(f"<{tag}>{text.strip()}</{tag}>"
                     for tag, text in zip(("emotion", "intent", "strategy", "response"),
                                          ecot_parts(answer).values(), strict=True))


def answer_mask(ids: list[int], header: list[int], end: int) -> list[bool]:
    """True on every token of every assistant answer (and its end-of-turn token), False elsewhere."""
    mask = [False] * len(ids)
    i, n = 0, len(header)
    while i <= len(ids) - n:
        if ids[i:i + n] != header:
            i += 1
            continue
        j = i + n
        while j < len(ids) and ids[j] != end:
            mask[j] = True
            j += 1
        if j < len(ids):
            mask[j] = True
        i = j + 1
    return mask


class ThinkerEncoder:
    def __init__(self, processor, media: MediaSection, *, target: str, max_length: int):
        self.processor = processor
        self.media = media
        self.target = target
        self.max_length = max_length
        self.rate = processor.feature_extractor.sampling_rate
        self.limits = LimitsConfig(max_media_bytes=1 << 40, max_media_duration_s=media.max_clip_s)
        tokenizer = processor.tokenizer
        self.header = tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
        self.end = tokenizer.convert_tokens_to_ids("<|im_end|>")

    # -- media ------------------------------------------------------------------------------------------
    def _video(self, path) -> tuple[np.ndarray, np.ndarray, float]:
        """(frames T x H x W x 3, 16 kHz audio, duration): `fps` frames a second, at most `max_frames`, even."""
        duration = media_io.probe(str(path), self.limits)
        count = min(self.media.max_frames, max(2, math.ceil(duration * self.media.fps)))
        side = max(224, math.ceil(2 * math.sqrt(self.media.max_pixels)))
        clip = media_io.decode(str(path), self.limits, sample_rate=self.rate, n_frames=count, max_side_px=side)
        frames = [frame for _, frame in clip.frames]
        if not frames:
            raise BadLine(f"{path.name} has no video frames")
        if len(frames) % 2:  # the vision tower groups frames in pairs
            frames = frames[:-1] if len(frames) > self.media.max_frames - 1 else [*frames, frames[-1]]
        return np.stack(frames), clip.audio, clip.duration_s

    def _audio(self, path) -> np.ndarray:
        return media_io.decode_audio(str(path), self.limits, self.rate).audio

    @staticmethod
    def _image(path) -> np.ndarray:
        from PIL import Image

        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    # -- text -------------------------------------------------------------------------------------------
    def _conversation(self, sample: Sample, with_answer: bool) -> tuple[list[dict], list[tuple[str, int]]]:
        """Chat messages with media parts, and the media in order of appearance as (kind, index)."""
        messages, order = [], []
        seen = dict.fromkeys(MEDIA_KINDS, 0)
        turns = sample.messages if with_answer else sample.messages[:-1]
        for message in turns:
            text = message["content"]
            if message["role"] == "assistant":
                messages.append({"role": "assistant", "content": ecot_layout(text) if self.target == "ecot"
                                 else text})
                continue
            parts: list[dict] = []
            cursor = 0
            for match in _PLACEHOLDER.finditer(text):
                if match.start() > cursor:
                    parts.append({"type": "text", "text": text[cursor:match.start()]})
                kind = match.group(1)
                order.append((kind, seen[kind]))
                seen[kind] += 1
                parts.append({"type": kind})
                cursor = match.end()
            if cursor < len(text):
                parts.append({"type": "text", "text": text[cursor:]})
            messages.append({"role": message["role"], "content": parts})
        return messages, order

    def encode(self, sample: Sample, *, with_answer: bool = True):
        """Processor inputs (batch of one); with the answer: `labels` on the answer tokens only. Without it, the
        prompt ends with the assistant header, ready for generate()."""
        messages, order = self._conversation(sample, with_answer)
        interleave = self.media.audio_in_video
        videos, video_fps, images, audio, slots = [], [], [], [], []
        for kind, index in order:
            path = sample.media(kind)[index]
            if kind == "video":
                frames, sound, duration = self._video(path)
                video_fps.append(len(frames) / max(duration, 1e-3))
                videos.append(frames)
                if interleave:
                    audio.append(sound)
                    slots.append(len(videos) - 1)
            elif kind == "audio":
                audio.append(self._audio(path))
                slots.append(None)
            else:
                images.append(self._image(path))
        # An interleaved video's sound has no placeholder of its own: it rides in the video's place in the text.
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=not with_answer, tokenize=False)
        size = {"shortest_edge": self.media.min_pixels, "longest_edge": self.media.max_pixels}
        kwargs: dict = {"images_kwargs": {"size": size}} if images else {}
        if videos:
            # One fps for the batch: the clips of a sample are sampled alike.
            kwargs["videos_kwargs"] = {"fps": float(np.mean(video_fps)), "size": size, "cap_pixels_per_frame": True}
        if interleave and videos:
            kwargs.update(load_audio_from_video=True, audio_from_video_indices=slots)
        inputs = self.processor(text=[prompt], images=images or None, videos=videos or None, audio=audio or None,
                                return_tensors="pt", padding=False, **kwargs)
        inputs["use_audio_in_video"] = bool(interleave and videos)
        if with_answer:
            ids = inputs["input_ids"][0].tolist()
            mask = torch.tensor(answer_mask(ids, self.header, self.end))
            if not mask.any():
                raise BadLine("no answer tokens found after the chat template (is the last turn the assistant's?)")
            inputs["labels"] = torch.where(mask, inputs["input_ids"][0], IGNORE).unsqueeze(0)
        return inputs

    def check(self, sample: Sample) -> str | None:
        """The trainer's own per-line check: media decodes and the sample fits `max_length` tokens."""
        try:
            length = self.encode(sample)["input_ids"].shape[1]
        except (media_io.MediaError, BadLine) as exc:
            return str(exc)
        except (OSError, ValueError) as exc:
            return f"the processor refused the sample ({type(exc).__name__}: {exc})"
        if length > self.max_length:
            return f"{length} tokens, over the cap of {self.max_length} (data.max_length)"
        return None


class ThinkerDataset(torch.utils.data.Dataset):
    def __init__(self, samples: list[Sample], encoder: ThinkerEncoder, cache: bool = False):
        self.samples = samples
        self.encoder = encoder
        self.cache: dict | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        if self.cache is None:
            return self.encoder.encode(self.samples[index])
        if index not in self.cache:
            self.cache[index] = self.encoder.encode(self.samples[index])
        return self.cache[index]


class CollateOne:
    """Batches are one sample (per_device_batch_size 1): the processor has already batched it. Float inputs
    (pixels, audio features) take the weights' dtype."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype

    def __call__(self, items: list) -> dict:
        if len(items) != 1:
            raise ValueError("the thinker trainer feeds one sample per device per step (per_device_batch_size 1)")
        return {key: value.to(self.dtype) if torch.is_tensor(value) and value.is_floating_point() else value
                for key, value in items[0].items()}
