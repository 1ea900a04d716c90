"""The emotion reading: what the words say (a zero-shot text-emotion classifier on the packaged LLM), what the
face shows and how the voice sounds, combined into one reading, with disagreements between them stated.

Why a classifier and not the E-CoT model's own pick: a 135M-0.5B model asked for "the user seems ..." after
a long prompt drifts to the worked examples' emotions ("excited" for every turn). Scoring each label as the
next token after a short, fixed prompt that holds only the words is a plain classification that such a
model does well, costs one prompt evaluation (~50 tokens) and gives probabilities to combine with the
face and voice measurements.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from emoomni.v1 import perception_pb2

# The feelings the words are scored on: the common ones a companion must tell apart. All are reading words
# of the E-CoT (interface.EMOTION_LABELS).
TEXT_LABELS = ("happy", "proud", "sad", "angry", "worried", "surprised", "neutral")
POSITIVE, NEGATIVE = {"happy", "proud"}, {"sad", "angry", "worried"}
# The expression model's classes as reading labels.
FACE_TO_LABEL = {"angry": "angry", "disgust": "angry", "fear": "worried", "happy": "happy", "sad": "sad",
                 "surprise": "surprised", "neutral": "neutral"}
FACE_WORD = {"angry": "angry", "disgust": "disgusted", "fear": "afraid", "happy": "happy", "sad": "sad",
             "surprise": "surprised", "neutral": "neutral"}
HIGH_AROUSAL, LOW_AROUSAL = {"angry", "surprised", "happy", "worried"}, {"sad", "neutral"}

# Weights of the evidence. The words carry the most: the face model is right on easy faces only, and a
# neutral face is common whatever a person says (so its neutral share counts half).
WORDS_WEIGHT, FACE_WEIGHT, AROUSAL_TILT = 0.6, 0.4, 0.12

_INSTRUCTION = ("Name the feeling in what the person says. Answer with one word: happy, proud, sad, angry, "
                "worried, surprised or neutral.")
# Few-shot examples, written for this project and kept apart from the evaluation set (a test checks that).
_SHOTS = (
    ("We're off to the lake this weekend and I love it there.", "happy"),
    ("I beat my personal best at the pool this morning.", "proud"),
    ("Since the move I miss my old friends every day.", "sad"),
    ("The repair shop overcharged me and now they won't even call back!", "angry"),
    ("My flight is late and I might miss the connection.", "worried"),
    ("Oh! The parcel came a whole week early?", "surprised"),
    ("The pharmacy opens at nine.", "neutral"),
    ("我终于学会游泳了，是我自己练会的！", "proud"),
    ("孩子发烧到半夜还没退，我心里好慌。", "worried"),
    ("他又放我鸽子了，真让人火大！", "angry"),
    ("明天上午十点开会。", "neutral"),
)
SHOT_TEXTS = tuple(text for text, _ in _SHOTS)


class TextEmotionClassifier:
    """Scores TEXT_LABELS for an utterance with a llama.cpp model (its own context, so the fixed few-shot
    prefix stays cached between calls and the E-CoT's cache is untouched)."""

    def __init__(self, model_path: str, n_threads: int = 2):
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llm = Llama(model_path=model_path, n_ctx=1024, n_threads=n_threads, n_threads_batch=n_threads,
                         n_batch=512, n_ubatch=128, verbose=False)
        piece = lambda t: self.llm.detokenize([t]).decode("utf-8", errors="ignore")  # noqa: E731
        self._format = Jinja2ChatFormatter(template=self.llm.metadata["tokenizer.chat_template"],
                                           eos_token=piece(self.llm.token_eos()), bos_token=piece(self.llm.token_bos()))
        # Each label with its leading space is one token in the Qwen and SmolLM2 vocabularies.
        first = [self.llm.tokenize(f" {label}".encode(), add_bos=False, special=False)[0] for label in TEXT_LABELS]
        if len(set(first)) != len(first):
            raise ValueError("the model's tokenizer starts two emotion labels with the same token")
        self._label_tokens = np.array(first)
        self._prefix = pin_prefix(self.llm, [self._prompt("A."), self._prompt("B?")])

    def _prompt(self, text: str) -> str:
        messages = [{"role": "system", "content": _INSTRUCTION}]
        for shot, label in _SHOTS:
            messages += [{"role": "user", "content": shot}, {"role": "assistant", "content": f"Feeling: {label}"}]
        messages.append({"role": "user", "content": text.strip()})
        return self._format(messages=messages).prompt + "Feeling:"

    def scores(self, text: str) -> dict[str, float]:
        """Probability of each label as the next token after "Feeling:", renormalised over the labels."""
        captured: list[np.ndarray] = []

        def capture(_ids, logits):
            captured.append(np.array(logits[self._label_tokens], dtype=np.float64))
            return logits

        rewind(self.llm, self._prefix)
        list(self.llm.create_completion(self._prompt(text), max_tokens=1, temperature=0.0,
                                        logits_processor=[capture], stream=True))
        logits = captured[0]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        return {label: float(p) for label, p in zip(TEXT_LABELS, probs, strict=True)}


def pin_prefix(llm, prompts: list[str]) -> int:
    """Evaluate the tokens every prompt of this kind starts with (system prompt, worked examples) into a fresh
    cache and return their count. Each turn then rewinds to this state (`rewind`) and reads only its own tokens.
    Not a promise of identical output: llama.cpp may place a turn's tokens in other cache cells after earlier
    turns, and the last bits of a logit can then differ (measured: the same turn's strategy changed between the
    process's first and a later run)."""
    tokens = [llm.tokenize(p.encode(), add_bos=True, special=True) for p in prompts]
    common = 0
    while all(len(t) > common for t in tokens) and len({t[common] for t in tokens}) == 1:
        common += 1
    llm.reset()
    llm.eval(tokens[0][:common])
    return common


def rewind(llm, prefix: int) -> None:
    """Back to the pinned prefix (the cache beyond it is dropped by the next evaluation)."""
    llm.n_tokens = min(llm.n_tokens, prefix)


@dataclass
class Reading:
    """The combined reading and the sentences that explain it."""

    labels: list[str]
    scores: dict[str, float]
    sentences: list[str] = field(default_factory=list)

    @property
    def phrase(self) -> str:
        return " and ".join(self.labels)


def _top(scores: dict[str, float]) -> tuple[str, float]:
    label = max(scores, key=scores.get)
    return label, scores[label]


def voice_arousal(perception: perception_pb2.PerceptionResult) -> tuple[int, list[str]]:
    """+1 per sign of an aroused voice (loud, fast, lively), -1 per sign of a low one (quiet, slow, flat), read
    from the voice cues' brief words as perception wrote them; and those words."""
    briefs = [c.brief for c in perception.cues if c.modality == "voice"]
    up = [b for b in briefs if any(w in b for w in ("loud", "fast", "lively"))]
    down = [b for b in briefs if any(w in b for w in ("quiet", "whisper", "slow", "flat"))]
    return len(up) - len(down), up + down


def face_scores(perception: perception_pb2.PerceptionResult) -> dict[str, float]:
    """The face model's mean class probabilities as reading labels (empty when no face was seen)."""
    if not perception.face.frames_with_face:
        return {}
    out = dict.fromkeys(TEXT_LABELS, 0.0)
    for expression, p in perception.face.mean_expression_scores.items():
        out[FACE_TO_LABEL.get(expression, "neutral")] += float(p)
    out["neutral"] *= 0.5
    total = sum(out.values()) or 1.0
    return {k: v / total for k, v in out.items()}


def combine(words: dict[str, float] | None, perception: perception_pb2.PerceptionResult) -> Reading:
    """Weighted sum of the words' and the face's label probabilities, tilted by the voice's arousal; the
    sentences say what each source shows and where they disagree."""
    face = face_scores(perception)
    arousal, voice_words = voice_arousal(perception)
    sources = [(WORDS_WEIGHT, words), (FACE_WEIGHT, face)]
    total = sum(w for w, s in sources if s) or 1.0
    scores = dict.fromkeys(TEXT_LABELS, 0.0)
    for weight, source in sources:
        for label, p in (source or {}).items():
            scores[label] += weight / total * p
    tilt = float(np.clip(arousal, -2, 2)) * AROUSAL_TILT
    for label in scores:
        scores[label] *= 1 + tilt if label in HIGH_AROUSAL else 1 - tilt if label in LOW_AROUSAL else 1
    norm = sum(scores.values()) or 1.0
    scores = {k: v / norm for k, v in scores.items()}
    ranked = sorted(scores, key=scores.get, reverse=True)
    labels = ranked[:1]
    if scores[ranked[1]] >= 0.25 and scores[ranked[0]] - scores[ranked[1]] < 0.08:
        labels.append(ranked[1])

    sentences = []
    if words:
        w_label, w_p = _top(words)
        second = sorted(words, key=words.get, reverse=True)[1]
        sentences.append(f"The words alone read as {w_label} (p {w_p:.2f}; next {second} {words[second]:.2f})")
        expression = perception.face.dominant_expression
        f_label = FACE_TO_LABEL.get(expression, "neutral")
        f_mean = perception.face.mean_expression_scores.get(expression, 0.0) if face else 0.0
        if face and f_mean >= 0.3 and w_p >= 0.4 and _opposed(w_label, f_label):
            sentences.append(f"The cues disagree: the words sound {w_label}, but the face looks "
                             f"{FACE_WORD.get(expression, expression)}")
            if w_label not in labels:
                # A smile over bad news (or a frown over good news) does not undo what was said: the reading
                # names both, the words' feeling first.
                labels = [w_label, labels[0]]
        elif w_p >= 0.4 and w_label in POSITIVE and arousal <= -2:
            sentences.append(f"The cues disagree: the words sound {w_label}, but the voice is "
                             f"{' and '.join(voice_words)}")
    if face and any("lively" in v for v in voice_words) and \
            perception.face.dominant_expression in ("sad", "angry", "disgust"):
        sentences.append(f"The cues disagree: the voice is lively, but the face looks "
                         f"{FACE_WORD[perception.face.dominant_expression]}")
    return Reading(labels=labels, scores=scores, sentences=sentences)


def _opposed(a: str, b: str) -> bool:
    return (a in POSITIVE and b in NEGATIVE) or (a in NEGATIVE and b in POSITIVE)
