"""The shipped tuned brain (the packaged Qwen2.5-Coder-0.5B with the E-CoT LoRA, llama.cpp, the stack's default
config) on fixed cues in both languages, among them the failures that made us train it: a Mandarin tease, a
cancelled flight, bad news said with worry.

What it proves: the shipped adapter loads (its pinned SHA-256 holds) and serves through the default config; the
reading uses the corpus's labels and names the right family of feeling on these turns; every reply is in the user's
language, insults and labels nobody, does not retell the user's words, and does not celebrate bad news. What it
does not prove: quality over many turns (benchmarks/brain_compare.py on the 200 development examples)."""

from __future__ import annotations

import pytest

from emoomni.core.config import load_config
from emoomni.services.reasoning.backends.interface import EMOTION, EMOTION_LABELS, INTENT, RESPONSE, STRATEGY
from emoomni.services.reasoning.backends.llama_cpp_backend import LlamaCppBackend
from emoomni.services.reasoning.core import WARMUP
from emoomni.v1 import perception_pb2 as pb
from training.reasoner.corpus import FAMILY_OF
from training.reasoner.reply_checks import check

# (what was said, language, face, voice words, the families a right reading may name)
TURNS = (
    ("你是不是傻呀，这么简单的问题都答错了，哈哈哈。", "zh", "happy", ["lively intonation", "voice loud"],
     {"playful"}),
    ("My flight got cancelled and now I'm stuck at the airport overnight.", "en", "angry",
     ["voice loud", "fast speech"], {"angry", "afraid", "sad"}),
    ("My grandmother passed away on Sunday.", "en", "sad", ["flat intonation", "voice quiet", "slow speech"],
     {"sad"}),
    ("明天要去医院拿检查结果，我心里有点慌。", "zh", "fear", ["voice quiet", "fast speech"], {"afraid"}),
    ("How many minutes should I boil an egg for a soft yolk?", "en", "neutral", ["voice normal loudness"],
     {"neutral", "confused"}),
    ("我今天第一次跑完了半程马拉松！", "zh", "happy", ["lively intonation", "voice loud", "fast speech"],
     {"positive"}),
)
CELEBRATION = ("congratulations", "congrats", "恭喜", "太棒了", "wonderful news")


def perception(said: str, language: str, face: str, voice: list[str]) -> pb.PerceptionResult:
    result = pb.PerceptionResult(transcript=pb.Transcript(text=said, language=language))
    result.cues.append(pb.Cue(modality="speech", text=f'The user said: "{said}"', brief=f'said "{said}"'))
    result.cues.append(pb.Cue(modality="face", text=f"Facial expression: mostly {face}", brief=f"face mostly {face}"))
    result.face.frames_sampled = result.face.frames_with_face = 8
    result.face.dominant_expression, result.face.dominant_expression_frames = face, 6
    result.face.mean_expression_scores[face] = 0.6
    result.cues.extend(pb.Cue(modality="voice", text=f"Voice: {words}", brief=words) for words in voice)
    return result


@pytest.fixture(scope="module")
def turns():
    backend = LlamaCppBackend(load_config(env={}).reasoning)
    assert backend.tuned, "the default config serves the tuned brain"
    list(backend.stream(WARMUP, ""))
    out = []
    for said, language, face, voice, families in TURNS:
        parts = {EMOTION: "", INTENT: "", STRATEGY: "", RESPONSE: ""}
        for piece in backend.stream(perception(said, language, face, voice), ""):
            parts[piece.part] += piece.text
        out.append((said, language, families, parts))
    return out


def test_the_reading_uses_the_labels_and_names_the_right_feeling(turns):
    right = 0
    for _, _, families, parts in turns:
        labels = parts[EMOTION].split("Overall, the user seems ", 1)[1].split(",")[0].split(" and ")
        assert all(label in EMOTION_LABELS for label in labels), parts[EMOTION]
        right += FAMILY_OF[labels[0]] in families
        assert parts[INTENT].strip() and parts[STRATEGY].strip() and parts[STRATEGY].isascii(), parts
    assert right >= len(turns) - 1, [(t[0], t[3][EMOTION]) for t in turns]


def test_replies_speak_the_users_language_kindly_and_in_their_own_words(turns):
    for said, language, families, parts in turns:
        reply = parts[RESPONSE].strip()
        result = check(reply, said, language)
        assert result["language_ok"] and not result["insults"] and not result["labels_user"], (said, reply, result)
        assert not result["retells"], (said, reply, result)
        if families & {"sad", "afraid", "angry"}:
            assert not any(word in reply.lower() for word in CELEBRATION), (said, reply)
