"""Cascade backend: perception cues -> a small instruct LLM through llama.cpp, one E-CoT part at a time.

Each part is its own completion that continues the same prompt, so llama.cpp reuses the cached prefix
and every part has its own token budget. The four parts always parse because their boundaries are written
by this code, not by the model.

Two brains share this code. The tuned one (the default): the packaged Qwen with the shipped E-CoT LoRA, a short
system prompt and no worked examples; the model reads the feeling itself ("sad and lonely, ...": labels from a
grammar, then a short conclusion) and writes compact lines (COMPACT_BUDGETS). The prompt-only one (`tuned: false`,
or a model without an adapter): its emotion reading combines a text-emotion classifier on the words with
the face and voice measurements (reading.py); without the classifier, a grammar restricts the model's own
reading to enumerated emotion words. The free-text parts are constrained by logit bias and end at a
newline, which is ~2x faster than a grammar here: intent and strategy are plain ASCII English (the
instruction mapper reads English), and the reply is in the language heard when the model writes it
(English: ASCII only; Mandarin: no Latin letters, so a small model cannot drift back into English).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from pathlib import Path

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
from emoomni.services.reasoning.models import (  # noqa: F401  (packaged_smollm2: the trainers' base)
    MODEL_LANGUAGES,
    model_file,
    packaged_qwen_coder,
    packaged_smollm2,
    tuned_adapter,
)
from emoomni.services.reasoning.prompt import (
    EMOTION_OPENER,
    EXAMPLES,
    INTENT_OPENER,
    NEGATIVE_READINGS,
    NEVER_SAID_EN,
    NEVER_SAID_ZH,
    STRATEGY_MANNER,
    STRATEGY_OPENER,
    chat_messages,
    line_of,
    manner_label,
    reply_language,
    reply_of,
)
from emoomni.services.reasoning.reading import Reading, TextEmotionClassifier, combine, pin_prefix, rewind
from emoomni.v1 import perception_pb2

_LABELS = " | ".join(f'"{label}"' for label in EMOTION_LABELS)
_LABEL_GRAMMAR = f'root ::= label (" and " label)? "."\nlabel ::= {_LABELS}'
# The tuned brain's reading: one or two labels after a space, then the comma its conclusion follows.
_TUNED_LABEL_GRAMMAR = f'root ::= " " label (" and " label)? ","\nlabel ::= {_LABELS}'
# Token budgets of the tuned brain's generated lines (the config's limits still cap them): the conclusion after the
# labels, intent and strategy. The corpus keeps to 10, 12 and 16 words; a word is ~1.3 tokens.
COMPACT_BUDGETS = {EMOTION: 18, INTENT: 20, STRATEGY: 26}
# The tuned brain may not copy a run of this many tokens of the user's words (retelling them); shorter shared runs
# ("your sister", "这个周末") are how people talk.
TUNED_COPY_NGRAM = 6
_BANNED = -1e9
# The reply may not copy a run of this many tokens from the user's words or from a worked example's reply.
COPY_NGRAM = 3
# The reply is said aloud: it ends after this many sentences, whatever the token budget left.
REPLY_SENTENCES = 2
_SENTENCE_END = re.compile(r"[.!?。！？]+")


# Words that would take back the manner the strategy opens with: after a calm, soft or slow manner the model may
# not go on to a bright or cheerful one, and the other way round (a 0.5B model copies a worked example's
# strategy from another feeling: "...with bright energy, ... think of one calming step").
SOFT_WORDS = ("calm", "slow", "soft", "gentl", "quiet", "reassur", "sooth", "sorry", "comfort")
BRIGHT_READINGS = {"happy", "excited", "joyful", "proud", "hopeful", "amused", "playful", "surprised"}
BRIGHT_WORDS = ("cheer", "bright", "excit", "lively", "celebrat", "energ", "upbeat", "congrat", "enthusias")

# The lines after the emotion reading, in order: (part, label, opener). The reasoner trainer
# (training/reasoner) trains on exactly this layout; the backend adds the manner to the strategy's opener.
LINES = ((INTENT, "Intent", INTENT_OPENER), (STRATEGY, "Strategy", STRATEGY_OPENER), (RESPONSE, "Reply", ""))


def chat_formatter(template: str, eos: str, bos: str):
    """The chat formatter for the GGUF's own template (llama-cpp-python's Jinja2 renderer)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)


def turn_prompt(formatter, perception: perception_pb2.PerceptionResult, context: str, language: str = "en",
                tuned: bool = False) -> str:
    """The prompt up to the emotion reading: system, worked examples (not when `tuned`), this turn's cues,
    "Emotion: Overall, the user seems" (the tuned brain writes the space before its labels itself, as it was
    trained: a prompt that ends in a space tokenizes unlike the training text)."""
    opener = EMOTION_OPENER.rstrip() if tuned else EMOTION_OPENER
    return (formatter(messages=chat_messages(perception, context, language=language, tuned=tuned)).prompt
            + f"Emotion: {opener}")


def line_start(label: str, opener: str) -> str:
    """What this code writes before the model's text on one line (no trailing space after a bare label: the
    tokenizer glues spaces to the next word)."""
    return f"\n{label}: {opener}" if opener else f"\n{label}:"


class LlamaCppBackend:
    needs_media = False

    def __init__(self, cfg: ReasoningConfig):
        from llama_cpp import Llama, LlamaGrammar

        self.cfg = cfg
        opts = cfg.llama_cpp
        path = str(model_file(opts.model, opts.model_path))
        if opts.adapter_path and not Path(opts.adapter_path).is_file():
            raise FileNotFoundError(f"reasoning.llama_cpp.adapter_path: no such file {opts.adapter_path}")
        adapter = opts.adapter_path or (tuned_adapter(opts.model) if opts.tuned and not opts.model_path else None)
        # Any adapter brings the compact prompt it was trained on (training/reasoner trains that layout only).
        self.tuned = adapter is not None
        self.openers = (not self.tuned) if opts.openers is None else opts.openers
        # llama.cpp reports at error level, once per adapted tensor, that an adapter cannot share the repacked CPU
        # buffers and uses plain ones (harmless); loading one is quiet, as every other model load here is.
        with _quiet(adapter is not None):
            self.llm = Llama(model_path=path, n_ctx=opts.n_ctx, n_threads=opts.n_threads,
                             n_threads_batch=opts.n_threads, n_batch=512, n_ubatch=128, seed=opts.seed,
                             lora_path=str(adapter) if adapter else None, verbose=False)
        self._format = chat_formatter(self.llm.metadata["tokenizer.chat_template"],
                                      self._piece(self.llm.token_eos()), self._piece(self.llm.token_bos()))
        self._label_grammar = _LABEL_GRAMMAR
        self._grammar = LlamaGrammar.from_string
        self.languages = list(opts.reply_languages or MODEL_LANGUAGES.get(opts.model, ["en"]))
        self._processors = self._build_processors()
        # The prompt-only brain may not copy its worked examples (the tuned one is shown none).
        examples = () if self.tuned else EXAMPLES
        self._example_openers = {t for _, answer in examples for t in self._first_tokens(reply_of(answer))}
        # The strategy may not copy another feeling's worked strategy ("... think of one calming step" for joy).
        self._example_strategies = [self.llm.tokenize(f" {line_of(answer, 'Strategy')}".encode(), add_bos=False,
                                                      special=False) for _, answer in examples]
        self._example_replies = [self.llm.tokenize(f" {reply_of(answer)}".encode(), add_bos=False, special=False)
                                 for _, answer in examples]
        # The prompt-only brain's strategy may not take back its manner (the tuned one writes its manner itself).
        self._manner_bans = {} if self.tuned else {"soft": self._tokens_led_by(BRIGHT_WORDS),
                                                   "bright": self._tokens_led_by(SOFT_WORDS)}
        self._congratulation_tokens = sorted({t for word in ("Congratulations", "congratulations", "Congrats",
                                                             "congrats", "恭喜") for t in self._first_tokens(word)})
        # The words cue always runs on the packaged Qwen (measured in benchmarks/RESULTS.md), whichever model
        # writes the E-CoT: SmolLM2-135M was never shown to classify feelings. The tuned brain reads the feeling
        # itself (it read better than the classifier on the corpus's development set: benchmarks/RESULTS.md).
        self._prefix = pin_prefix(self.llm, [self._turn_prompt("A.", lang) for lang in ("en", "zh")])
        # The same thread count as the E-CoT (1 thread here costs 0.37 s of first audio on a quiet machine).
        self.words = TextEmotionClassifier(str(packaged_qwen_coder()), opts.n_threads) \
            if opts.text_emotion and not self.tuned else None

    def _turn_prompt(self, said: str, language: str) -> str:
        """A turn's prompt for a bare utterance (to find the part every turn shares)."""
        perception = perception_pb2.PerceptionResult(
            transcript=perception_pb2.Transcript(text=said, language=language),
            cues=[perception_pb2.Cue(modality="speech", text=said, brief=said)])
        return turn_prompt(self._format, perception, "", language, tuned=self.tuned)

    def _tokens_led_by(self, stems: tuple[str, ...]) -> list[int]:
        """Every token whose text, lower-cased and without its leading space, starts one of `stems`."""
        out = []
        for token in range(self.llm.n_vocab()):
            word = self.llm.detokenize([token]).decode("utf-8", errors="ignore").strip().lower()
            if any(word.startswith(stem) for stem in stems):
                out.append(token)
        return out

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
        lower_led = np.zeros(n_vocab, dtype=bool)
        blank = np.zeros(n_vocab, dtype=bool)
        insulting = np.zeros(n_vocab, dtype=bool)
        never_en = set(NEVER_SAID_EN)
        for token in range(n_vocab):
            raw = self.llm.detokenize([token])
            text = raw.decode("utf-8", errors="ignore")
            insulting[token] = text.strip().lower() in never_en or any(w in text for w in NEVER_SAID_ZH)
            not_ascii[token] = bool(raw) and any(b > 126 or (b < 32 and b != 10) for b in raw)
            latin[token] = any(65 <= b <= 90 or 97 <= b <= 122 for b in raw)
            lead = raw.lstrip()[:1]
            lower_led[token] = bool(lead) and 97 <= lead[0] <= 122
            blank[token] = bool(raw) and not raw.strip()
        # A reply opens with a capital, a digit or a quote, never " ouch": tokens led by a small letter (and, for the
        # prompt-only brain, bare whitespace, which would only put the small letter one token later; the tuned
        # brain learned Mandarin replies that open with a bare space token).
        self._lowercase_start = np.flatnonzero(lower_led if self.tuned else lower_led | blank)
        self._insult_tokens = np.flatnonzero(insulting).tolist()  # never said in a reply (prompt.NEVER_SAID_*)
        masks = {"ascii": not_ascii, "zh": latin}
        out = {}
        for name, mask in masks.items():
            mask[self.llm.token_eos()] = True
            bias = np.where(mask, _BANNED, 0.0).astype(np.float32)
            out[name] = [lambda _ids, scores, bias=bias: scores + bias]
        return out

    def _first_tokens(self, text: str) -> set[int]:
        """The token a line opening with `text` would start with, with and without a leading space."""
        out = set()
        for variant in (f" {text.strip()}", text.strip()):
            tokens = self.llm.tokenize(variant.encode(), add_bos=False, special=False)
            if tokens:
                out.add(tokens[0])
        return out

    def _reply_processor(self, perception: perception_pb2.PerceptionResult, feeling: str):
        """The reply's constraints against template collapse.

        A small model copies: the opening of the nearest worked example's reply, the user's own words, whole
        runs of an example. So neither an example's opening nor the user's first word may open the reply, and
        no run of COPY_NGRAM tokens may be copied from them: every turn has to find its own words. After bad
        news the reply may not congratulate (the issue's "Congratulations" to a lost job), and it never insults."""
        first = set(self._example_openers)
        said = perception.transcript.text.strip()
        sources = list(self._example_replies)
        if said:
            if not self.tuned:
                first |= self._first_tokens(said.split()[0] if said.isascii() else said[:2])
            sources += [self.llm.tokenize(variant.encode(), add_bos=False, special=False)
                        for variant in (said, f" {said}")]
        never: list[int] = list(self._insult_tokens)
        labels = feeling.replace(".", "").split(" and ")
        # Bad news is never congratulated: after any negative label, or for the tuned brain (which learned to
        # congratulate a happy event told with a lonely face) after a negative main label.
        if any(label in NEGATIVE_READINGS for label in (labels[:1] if self.tuned else labels)):
            never += self._congratulation_tokens
        return _ban(np.union1d(self._lowercase_start, sorted(first)).astype(np.int64), never, sources,
                    n=TUNED_COPY_NGRAM if self.tuned else COPY_NGRAM)

    def _complete(self, prompt: str, max_tokens: int, *, seed: int, label: str = "", script: str = "ascii",
                  extra=None) -> Iterator[str]:
        """One line's completion: `label` a grammar for the reading's labels, else free text up to a newline under
        the script's mask and `extra`'s bans."""
        from llama_cpp import LogitsProcessorList

        opts = self.cfg.llama_cpp
        common = dict(max_tokens=max_tokens, temperature=opts.tuned_temperature if self.tuned else opts.temperature,
                      top_p=0.9,
                      repeat_penalty=1.15, stream=True, seed=seed)
        if label:
            stream = self.llm.create_completion(prompt, grammar=self._grammar(label, verbose=False), **common)
        else:
            processors = list(self._processors[script]) + ([extra] if extra else [])
            stream = self.llm.create_completion(prompt, logits_processor=LogitsProcessorList(processors),
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
        seed = turn_seed(self.cfg.llama_cpp.seed, perception)
        prompt = turn_prompt(self._format, perception, context, language, tuned=self.tuned)
        if not context.strip():
            # A turn on its own starts from the pinned system prompt and examples, not after the last turn. A session's
            # turn keeps the cache instead: its prompt begins with the previous turn's history, which llama.cpp
            # then does not read again (services/reasoning/prompt.py puts the history first).
            rewind(self.llm, self._prefix)
        reading = self.reading(perception)
        evidence = evidence_text(perception)
        if self.tuned:
            feeling, prompt = yield from self._tuned_reading(prompt, evidence, seed)
        elif reading is not None:
            evidence = " ".join([evidence, *(s.rstrip(".") + "." for s in reading.sentences)])
            feeling = reading.phrase
            yield Piece(EMOTION, f"{evidence} {EMOTION_OPENER}{feeling}.")
            prompt += f"{feeling}."
        else:
            yield Piece(EMOTION, f"{evidence} {EMOTION_OPENER}")
            feeling = ""
            for delta in self._complete(prompt, 12, seed=seed, label=self._label_grammar):
                yield Piece(EMOTION, delta)
                feeling += delta
            prompt += feeling
        yield Piece(EMOTION, "", part_done=True)
        label_of_manner = manner_label(feeling)
        manner = STRATEGY_MANNER.get(label_of_manner, "")
        budgets = {INTENT: limits.intent_tokens, STRATEGY: limits.strategy_tokens, RESPONSE: limits.response_tokens}
        if self.tuned:
            budgets = {part: min(budget, COMPACT_BUDGETS.get(part, budget)) for part, budget in budgets.items()}
        for part, label, opener in LINES:
            opener = opener if self.openers else ""
            if part == STRATEGY and opener and not self.tuned:
                opener = f"{opener} {manner}".strip()
            budget = budgets[part]
            prompt += line_start(label, opener)
            text = opener
            if opener:
                yield Piece(part, opener)
            script = "zh" if part == RESPONSE and language == "zh" else "ascii"
            if part == RESPONSE:
                extra = self._reply_processor(perception, feeling)
            elif part == STRATEGY and not self.tuned:
                tone = "soft" if label_of_manner in NEGATIVE_READINGS | {"calm"} else \
                    "bright" if label_of_manner in BRIGHT_READINGS else ""
                extra = _ban([], self._manner_bans.get(tone, []), self._example_strategies)
            else:
                extra = None
            for delta in self._complete(prompt, budget, seed=seed, script=script, extra=extra):
                if not text:
                    delta = delta.lstrip()
                text += delta
                if delta:
                    yield Piece(part, delta)
                if part == RESPONSE and len(_SENTENCE_END.findall(text)) >= REPLY_SENTENCES \
                        and _SENTENCE_END.search(text[-2:]):
                    break
            if not text.strip():  # the model ended the line at once; say so rather than leave a hole
                text = "I will answer warmly." if part != RESPONSE else \
                    ("我在这儿，听你说。" if language == "zh" else "I hear you, and I am here with you.")
                yield Piece(part, text)
            prompt += text[len(opener):] if opener else f" {text}"
            yield Piece(part, "", part_done=True)

    def _tuned_reading(self, prompt: str, evidence: str, seed: int):
        """The tuned brain's emotion part after the measured evidence: its labels (a grammar keeps them to the
        reading words) and a short conclusion. Yields the pieces; returns (labels, the prompt after the line)."""
        yield Piece(EMOTION, f"{evidence} {EMOTION_OPENER.rstrip()}")
        labels = ""
        for delta in self._complete(prompt, 10, seed=seed, label=_TUNED_LABEL_GRAMMAR):
            labels += delta
            yield Piece(EMOTION, delta)
        prompt += labels
        note = ""
        for delta in self._complete(prompt, COMPACT_BUDGETS[EMOTION], seed=seed):
            note += delta
            yield Piece(EMOTION, delta)
        return labels.strip().rstrip(","), prompt + note


def _quiet(on: bool):
    """Silence the process's stdout and stderr (llama.cpp writes to the file descriptors) while `on`."""
    from llama_cpp._utils import suppress_stdout_stderr

    return suppress_stdout_stderr(disable=not on)


def turn_seed(seed: int, perception: perception_pb2.PerceptionResult) -> int:
    """The sampling seed of one turn: the configured seed mixed with what was said. Different turns draw
    independently (one seed for every turn would make similar turns pick
    the same words, itself a template)."""
    return (seed + zlib.crc32(perception.transcript.text.encode())) & 0x7FFFFFFF


def _ban(first, always: list[int], sources: list[list[int]] = (), n: int = COPY_NGRAM):
    """A logits processor: `first` banned at the first generated token only, `always` at every token, and
    any token that would complete an `n`-token run copied from one of `sources` (the user's words, the worked
    examples' replies)."""
    state: dict = {"start": None}
    follows: dict[tuple[int, ...], set[int]] = {}
    for source in sources:
        for i in range(len(source) - n + 1):
            follows.setdefault(tuple(source[i:i + n - 1]), set()).add(source[i + n - 1])

    def apply(ids, scores):
        if state["start"] is None:
            state["start"] = len(ids)
            if len(first):
                scores[first] = _BANNED
        if always:
            scores[always] = _BANNED
        if follows and len(ids) - state["start"] >= n - 1:
            banned = follows.get(tuple(int(t) for t in ids[len(ids) - n + 1:]))
            if banned:
                scores[list(banned)] = _BANNED
        return scores

    return apply
