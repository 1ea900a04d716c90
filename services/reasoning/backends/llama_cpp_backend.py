"""Cascade backend: perception cues -> a small instruct LLM through llama.cpp, one E-CoT part at a time.

Each part is its own completion that continues the same prompt, so llama.cpp reuses the cached prefix
and every part has its own token budget. The four parts always parse because their boundaries are written
by this code, not by the model. The emotion reading combines a text-emotion classifier on the words with the
face and voice measurements (reading.py); without the classifier, a grammar restricts the model's own
reading to enumerated emotion words. The free-text parts are constrained by logit bias and end at a
newline, which is ~2x faster than a grammar here: intent and strategy are plain ASCII English (the
instruction mapper reads English), and the reply is in the language heard when the model writes it
(English: ASCII only; Mandarin: no Latin letters, so a small model cannot drift back into English).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

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
from emoomni.services.reasoning.models import MODEL_LANGUAGES, model_file, packaged_smollm2  # noqa: F401
from emoomni.services.reasoning.prompt import (
    EMOTION_OPENER,
    INTENT_OPENER,
    STRATEGY_MANNER,
    STRATEGY_OPENER,
    chat_messages,
    reply_language,
)
from emoomni.services.reasoning.reading import Reading, TextEmotionClassifier, combine
from emoomni.v1 import perception_pb2

_LABEL_GRAMMAR = ("root ::= label (\" and \" label)? \".\"\nlabel ::= "
                  + " | ".join(f'"{label}"' for label in EMOTION_LABELS))
_BANNED = -1e9


class LlamaCppBackend:
    needs_media = False

    def __init__(self, cfg: ReasoningConfig):
        from llama_cpp import Llama, LlamaGrammar
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.cfg = cfg
        opts = cfg.llama_cpp
        path = str(model_file(opts.model, opts.model_path))
        self.llm = Llama(model_path=path, n_ctx=opts.n_ctx, n_threads=opts.n_threads,
                         n_threads_batch=opts.n_threads, n_batch=512, n_ubatch=128, seed=opts.seed, verbose=False)
        self._format = Jinja2ChatFormatter(template=self.llm.metadata["tokenizer.chat_template"],
                                           eos_token=self._piece(self.llm.token_eos()),
                                           bos_token=self._piece(self.llm.token_bos()))
        self._label_grammar = _LABEL_GRAMMAR
        self._grammar = LlamaGrammar.from_string
        self.languages = list(opts.reply_languages or MODEL_LANGUAGES.get(opts.model, ["en"]))
        self._processors = self._build_processors()
        self.words = TextEmotionClassifier(path, opts.n_threads) if opts.text_emotion else None

    def _piece(self, token: int) -> str:
        return self.llm.detokenize([token]).decode("utf-8", errors="ignore")

    def _build_processors(self) -> dict[str, list]:
        """Logit masks per kind of line, applied as one vector add per token (llama-cpp-python's own
        logit_bias loops over a dict in Python: milliseconds per token with thousands of banned tokens).
        "ascii": end-of-turn and every token that is not plain printable ASCII (CJK, emoji, ...);
        "zh": end-of-turn and every token with a Latin letter."""
        n_vocab = self.llm.n_vocab()
        not_ascii = np.zeros(n_vocab, dtype=bool)
        latin = np.zeros(n_vocab, dtype=bool)
        for token in range(n_vocab):
            raw = self.llm.detokenize([token])
            not_ascii[token] = bool(raw) and any(b > 126 or (b < 32 and b != 10) for b in raw)
            latin[token] = any(65 <= b <= 90 or 97 <= b <= 122 for b in raw)
        masks = {"ascii": not_ascii, "zh": latin}
        out = {}
        for name, mask in masks.items():
            mask[self.llm.token_eos()] = True
            bias = np.where(mask, _BANNED, 0.0).astype(np.float32)
            out[name] = [lambda _ids, scores, bias=bias: scores + bias]
        return out

    def _complete(self, prompt: str, max_tokens: int, *, label: bool = False, script: str = "ascii") -> Iterator[str]:
        from llama_cpp import LogitsProcessorList

        common = dict(max_tokens=max_tokens, temperature=self.cfg.llama_cpp.temperature, top_p=0.9,
                      repeat_penalty=1.15, stream=True, seed=self.cfg.llama_cpp.seed)
        if label:
            stream = self.llm.create_completion(prompt, grammar=self._grammar(self._label_grammar, verbose=False),
                                                **common)
        else:
            stream = self.llm.create_completion(prompt, logits_processor=LogitsProcessorList(self._processors[script]),
                                                stop=["\n"], **common)
        for chunk in stream:
            text = chunk["choices"][0]["text"]
            if text:
                yield text

    def reading(self, perception: perception_pb2.PerceptionResult) -> Reading | None:
        """The combined reading, or None when there is no words classifier or nothing was said."""
        said = perception.transcript.text.strip()
        if self.words is None or not said:
            return None
        return combine(self.words.scores(said), perception)

    def stream(self, perception: perception_pb2.PerceptionResult, context: str,
               media: MediaSource | None = None) -> Iterator[Piece]:
        limits = self.cfg.limits
        language = reply_language(perception, self.languages)
        prompt = self._format(messages=chat_messages(perception, context, language=language)).prompt
        prompt += f"Emotion: {EMOTION_OPENER}"
        reading = self.reading(perception)
        evidence = evidence_text(perception)
        if reading is not None:
            evidence = " ".join([evidence, *(s.rstrip(".") + "." for s in reading.sentences)])
            feeling = reading.phrase
            yield Piece(EMOTION, f"{evidence} {EMOTION_OPENER}{feeling}.")
            prompt += f"{feeling}."
        else:
            yield Piece(EMOTION, f"{evidence} {EMOTION_OPENER}")
            feeling = ""
            for delta in self._complete(prompt, 12, label=True):
                yield Piece(EMOTION, delta)
                feeling += delta
            prompt += feeling
        yield Piece(EMOTION, "", part_done=True)
        manner = STRATEGY_MANNER.get(feeling.split(" and ")[0].strip(" ."), "")
        strategy_opener = f"{STRATEGY_OPENER} {manner}".strip()
        for part, label, opener, budget in ((INTENT, "Intent", INTENT_OPENER, limits.intent_tokens),
                                            (STRATEGY, "Strategy", strategy_opener, limits.strategy_tokens),
                                            (RESPONSE, "Reply", "", limits.response_tokens)):
            # No trailing space after "Reply:": the tokenizer glues spaces to the next word.
            prompt += f"\n{label}: {opener}" if opener else f"\n{label}:"
            text = opener
            if opener:
                yield Piece(part, opener)
            script = "zh" if part == RESPONSE and language == "zh" else "ascii"
            for delta in self._complete(prompt, budget, script=script):
                if not text:
                    delta = delta.lstrip()
                text += delta
                if delta:
                    yield Piece(part, delta)
            if not text.strip():  # the model ended the line at once; say so rather than leave a hole
                text = "I will answer warmly." if part != RESPONSE else \
                    ("我在这儿，听你说。" if language == "zh" else "I hear you, and I am here with you.")
                yield Piece(part, text)
            prompt += text[len(opener):] if opener else f" {text}"
            yield Piece(part, "", part_done=True)
