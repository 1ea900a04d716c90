"""A CI-sized slice of benchmarks/reasoning_quality.py with the prompt-only brain (`tuned: false`) on the packaged
model, in both languages.

What the code guarantees, whatever the small model would rather write: the strategy opens with the manner that
fits the reading (checked through the real instruction mapper), bad news is never congratulated, Mandarin is
answered in Mandarin, and replies do not share one opener (on six turns: no opener in more than two; the 20 %
goal is measured on the whole 50-scenario set by the benchmark). Copying the user's words is
only measured (benchmarks/RESULTS.md): the ban works on tokens, and Mandarin text tokenizes differently in a
reply than in the user's sentence. How often the reading names the scenario's feeling
is a property of the text-emotion classifier: it is checked on all 50 scenarios with a floor
(test_reading.py), not scenario by scenario here (a 0.5B model reads pride as joy; benchmarks/RESULTS.md).
"""

from collections import Counter

import pytest

from benchmarks.reasoning_quality import load_scenarios, run_scenario
from emoomni.core.config import load_config
from emoomni.services.instruction.core import InstructionCore
from emoomni.services.reasoning.backends.llama_cpp_backend import LlamaCppBackend
from emoomni.services.reasoning.core import WARMUP

# Six feelings, both languages, one face that contradicts the words.
SLICE = ("I failed my driving test for the third time.", "I got the scholarship! Full tuition for four years!",
         "My landlord just kept my whole deposit for no reason!", "我的猫两个晚上没回家了。",
         "我第一次就通过了司法考试。", "我今天被裁员了。干了十二年，就给了我一个纸箱。")


@pytest.fixture(scope="module")
def turns():
    cfg = load_config(env={})
    cfg.reasoning.llama_cpp.tuned = False  # the prompt-only brain's guarantees; the tuned one: test_tuned_brain.py
    backend, mapper = LlamaCppBackend(cfg.reasoning), InstructionCore(cfg)
    list(backend.stream(WARMUP, ""))  # the service's own first turn (ReasoningCore.warmup)
    scenarios = {s["text"]: s for s in load_scenarios()}
    return [run_scenario(backend, mapper, scenarios[text]) for text in SLICE]


def test_strategy_follows_the_reading_and_bad_news_is_not_congratulated(turns):
    rows = turns
    for row in rows:
        assert row["strategy_follows_reading"], (row["text"], row["reading"], row["strategy"], row["controls"])
        assert row["valence_ok"], (row["text"], row["emotion"], row["reading"])
        assert not row["congratulates_bad_news"], row["reply"]


def test_reply_is_in_the_language_heard_and_its_own(turns):
    rows = turns
    for row in rows:
        assert row["language_ok"] and row["reply"], (row["lang"], row["reply"])
    openers = Counter(row["opener"] for row in rows)
    assert openers.most_common(1)[0][1] <= 2, openers
