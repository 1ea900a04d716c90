"""Reasoning through any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, hosted APIs).

The model answers one JSON object whose keys are the E-CoT parts in causal order; with `json_schema: true`
the server constrains decoding to that schema. The stream is parsed as it grows (jiter's partial mode) so
each part is forwarded as deltas before the object is complete.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import jiter

from emoomni.core.config import ReasoningConfig
from emoomni.services.reasoning.backends.interface import (
    EMOTION,
    EMOTION_LABELS,
    INTENT,
    RESPONSE,
    STRATEGY,
    MediaSource,
    Piece,
    evidence_text,
)
from emoomni.services.reasoning.prompt import SYSTEM, cue_block
from emoomni.v1 import perception_pb2

_FIELDS = (("emotion_reading", EMOTION), ("intent", INTENT), ("strategy", STRATEGY), ("response", RESPONSE))

SCHEMA = {
    "type": "object",
    "properties": {
        # The measured evidence is written by EmoOmni; the model only adds its overall reading of it.
        "emotion_reading": {"type": "string", "description": "One sentence: the emotion the cues show, "
                            f"using words such as {', '.join(EMOTION_LABELS[:12])}."},
        "intent": {"type": "string"},
        "strategy": {"type": "string"},
        "response": {"type": "string"},
    },
    "required": [name for name, _ in _FIELDS],
    "additionalProperties": False,
}

_FORMAT_NOTE = ("Answer with one JSON object with the keys emotion_reading, intent, strategy, response, in "
                "that order. emotion_reading may only rest on the measured cues. Reply in the user's language.")


class OpenAICompatibleBackend:
    needs_media = False

    def __init__(self, cfg: ReasoningConfig):
        from openai import OpenAI

        self.cfg = cfg
        oc = cfg.openai_compatible
        self.client = OpenAI(base_url=oc.base_url, api_key=os.environ.get(oc.api_key_env) or "not-needed",
                             timeout=oc.timeout_s, max_retries=1)

    def stream(self, perception: perception_pb2.PerceptionResult, context: str,
               media: MediaSource | None = None) -> Iterator[Piece]:
        oc = self.cfg.openai_compatible
        limits = self.cfg.limits
        extra = {}
        if oc.response_format == "json_schema":
            extra["response_format"] = {"type": "json_schema",
                                        "json_schema": {"name": "ecot", "schema": SCHEMA, "strict": True}}
        elif oc.response_format == "json_object":
            extra["response_format"] = {"type": "json_object", "schema": SCHEMA}
        stream = self.client.chat.completions.create(
            model=oc.model, temperature=oc.temperature, stream=True,
            max_tokens=64 + limits.intent_tokens + limits.strategy_tokens + limits.response_tokens + 64,
            messages=[{"role": "system", "content": f"{SYSTEM} {_FORMAT_NOTE}"},
                      {"role": "user", "content": cue_block(perception, context)}], **extra)
        yield Piece(EMOTION, evidence_text(perception) + " ")
        buffer = ""
        sent = {name: 0 for name, _ in _FIELDS}
        current = 0  # index into _FIELDS of the part being streamed
        for chunk in stream:
            if not chunk.choices or not chunk.choices[0].delta.content:
                continue
            buffer += chunk.choices[0].delta.content
            try:
                partial = jiter.from_json(buffer.encode(), partial_mode="trailing-strings")
            except ValueError:
                continue  # not yet a JSON prefix jiter can read (e.g. leading whitespace or a code fence)
            if not isinstance(partial, dict):
                continue
            for index, (name, part) in enumerate(_FIELDS):
                value = partial.get(name)
                if not isinstance(value, str):
                    continue
                while current < index:  # a later key appeared: the earlier parts are complete
                    yield from self._finish(partial, sent, current)
                    current += 1
                if len(value) > sent[name]:
                    yield Piece(part, value[sent[name]:])
                    sent[name] = len(value)
        final = jiter.from_json(buffer.encode(), partial_mode="trailing-strings") if buffer else {}
        if not isinstance(final, dict) or any(not str(final.get(n, "")).strip() for n, _ in _FIELDS):
            raise RuntimeError(f"the reasoning endpoint returned an incomplete E-CoT: {buffer[:200]!r}")
        while current < len(_FIELDS):
            yield from self._finish(final, sent, current)
            current += 1

    @staticmethod
    def _finish(partial: dict, sent: dict[str, int], index: int) -> Iterator[Piece]:
        name, part = _FIELDS[index]
        value = str(partial.get(name, ""))
        if len(value) > sent[name]:
            yield Piece(part, value[sent[name]:])
            sent[name] = len(value)
        yield Piece(part, "", part_done=True)
