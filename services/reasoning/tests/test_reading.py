"""The text-emotion cue and the combined reading, with the real packaged Qwen2.5-Coder-0.5B (llama.cpp).

The labelled set (services/reasoning/data/text_emotion_set.yaml, 119 utterances, English and Mandarin, seven
feelings) runs whole here: ~0.1-0.3 s per utterance on 2 cores. The threshold sits a few points under the
accuracy benchmarks/text_emotion.py measured (benchmarks/RESULTS.md), so a change that makes the cue worse
fails CI."""

import pytest

from benchmarks.reasoning_quality import load_scenarios, perception_for, valence
from benchmarks.text_emotion import evaluate, load_set
from emoomni.services.reasoning.models import QWEN_SHA256, packaged_qwen_coder
from emoomni.services.reasoning.reading import SHOT_TEXTS, TEXT_LABELS, TextEmotionClassifier, combine
from emoomni.v1 import perception_pb2 as pb


@pytest.fixture(scope="module")
def classifier():
    return TextEmotionClassifier(str(packaged_qwen_coder()))


def test_packaged_model_is_the_pinned_qwen(classifier):
    import hashlib

    path = packaged_qwen_coder()
    assert QWEN_SHA256[:12] in path.name
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(16 * 1024 * 1024):
            digest.update(block)
    assert digest.hexdigest() == QWEN_SHA256
    meta = classifier.llm.metadata
    assert meta["general.name"].startswith("Qwen2.5 Coder 0.5B Instruct") and meta["general.architecture"] == "qwen2"


def test_text_emotion_cue_on_the_labelled_set(classifier):
    items = load_set()
    assert len(items) >= 100 and {i["lang"] for i in items} == {"en", "zh"}
    assert {i["label"] for i in items} == set(TEXT_LABELS)
    assert not set(SHOT_TEXTS) & {i["text"] for i in items}, "the few-shot examples are not evaluated on"
    result = evaluate(classifier, items)
    assert result["accuracy"] >= ACCURACY_FLOOR, result["misses"]
    assert min(v["accuracy"] for v in result["by_language"].values()) >= LANGUAGE_FLOOR, result["by_language"]


def perception(face: str, voice: list[str]) -> pb.PerceptionResult:
    result = pb.PerceptionResult()
    result.face.frames_with_face, result.face.dominant_expression = 8, face
    for expression in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"):
        result.face.mean_expression_scores[expression] = 0.7 if expression == face else 0.05
    result.cues.extend(pb.Cue(modality="voice", text=v, brief=v) for v in voice)
    return result


def test_reading_follows_the_words_and_states_a_conflict(classifier):
    words = classifier.scores("My grandfather died this morning.")
    assert max(words, key=words.get) == "sad"
    agree = combine(words, perception("sad", ["voice quiet", "slow speech"]))
    assert agree.labels[0] == "sad" and not any("disagree" in s for s in agree.sentences)
    clash = combine(words, perception("happy", ["lively intonation"]))
    assert "sad" in clash.labels
    conflict = "The cues disagree: the words sound sad, but the face looks happy"
    assert any(s.startswith(conflict) for s in clash.sentences)
    # The paper's example: a lively voice with a frown.
    frown = combine(classifier.scores("Well, that went great."), perception("angry", ["lively intonation"]))
    assert any("the voice is lively, but the face looks angry" in s for s in frown.sentences)


def test_reading_on_the_scenario_set(classifier):
    """The combined reading (words, face, voice) on every scenario of the reasoning set: it names the scenario's
    feeling often, and almost never turns bad news into good or the reverse."""
    scenarios = load_scenarios()
    readings = [combine(classifier.scores(s["text"]), perception_for(s)) for s in scenarios]
    named = sum(s["emotion"] in r.labels for s, r in zip(scenarios, readings, strict=True))
    assert named / len(scenarios) >= SCENARIO_READING_FLOOR, named
    wrong_valence = [(s["text"], r.labels) for s, r in zip(scenarios, readings, strict=True)
                     if valence(s["emotion"]) not in {valence(label) for label in r.labels}]
    assert len(wrong_valence) <= WRONG_VALENCE_CEILING, wrong_valence


# A few points under the measurement in benchmarks/RESULTS.md (2026-12-02: 54.6 % overall, en 55.6 %, zh 53.6 %;
# chance is 14 %). Weak on proud (read as happy), surprised and neutral: see RESULTS.md.
ACCURACY_FLOOR = 0.50
LANGUAGE_FLOOR = 0.48
# Under the combined reading's 80 % (40 of 50) on the scenario set, 2026-12-02 (benchmarks/RESULTS.md); it misses
# pride (read as joy) and worry spoken quietly (read as sadness).
SCENARIO_READING_FLOOR = 0.72
# Measured 1 of 50 (2026-12-02, llama.cpp 0.3.36): "I lost my job today. Twelve years, and they gave me a box."
# said with a smile, whose words alone the 0.5B classifier reads as happy (0.42) over sad (0.34); the reading
# then says that the quiet, slow voice disagrees. One more is allowed, not a second kind of failure.
WRONG_VALENCE_CEILING = 2
