"""A CI-sized slice of benchmarks/reasoning_quality.py with the default packaged model, in both languages.

What the code guarantees, whatever the small model would rather write: the strategy opens with the manner that
fits the reading (checked through the real instruction mapper), bad news is never congratulated, Mandarin is
answered in Mandarin, no reply opens like another, and the same turn gives the same E-CoT whatever ran before
(each turn starts from the same pinned cache state and samples with its own seed). Copying the user's words is
only measured (benchmarks/RESULTS.md): the ban works on tokens, and Mandarin text tokenizes differently in a
reply than in the user's sentence. How often the reading names the scenario's feeling
is a property of the text-emotion classifier: it is checked on all 40 scenarios with a floor
(test_reading.py), not scenario by scenario here (a 0.5B model reads pride as joy; benchmarks/RESULTS.md).
"""

import pytest

from benchmarks.reasoning_quality import load_scenarios, run_scenario
from emoomni.core.config import load_config
from emoomni.services.instruction.core import InstructionCore
from emoomni.services.reasoning.backends.llama_cpp_backend import LlamaCppBackend

# Six feelings, both languages, one face that contradicts the words.
SLICE = ("I failed my driving test for the third time.", "I got the scholarship! Full tuition for four years!",
         "My landlord just kept my whole deposit for no reason!", "我的猫两个晚上没回家了。",
         "我第一次就通过了司法考试。", "我今天被裁员了。干了十二年，就给了我一个纸箱。")


@pytest.fixture(scope="module")
def turns():
    cfg = load_config(env={})
    backend, mapper = LlamaCppBackend(cfg.reasoning), InstructionCore(cfg)
    scenarios = {s["text"]: s for s in load_scenarios()}
    rows = [run_scenario(backend, mapper, scenarios[text]) for text in SLICE]
    again = run_scenario(backend, mapper, scenarios[SLICE[0]])
    return rows, again


def test_strategy_follows_the_reading_and_bad_news_is_not_congratulated(turns):
    rows, _ = turns
    for row in rows:
        assert row["strategy_follows_reading"], (row["text"], row["reading"], row["strategy"], row["controls"])
        assert row["valence_ok"], (row["text"], row["emotion"], row["reading"])
        assert not row["congratulates_bad_news"], row["reply"]


def test_reply_is_in_the_language_heard_and_its_own(turns):
    rows, _ = turns
    for row in rows:
        assert row["language_ok"] and row["reply"], (row["lang"], row["reply"])
    openers = [row["opener"] for row in rows]
    assert len(set(openers)) == len(openers), openers


def test_the_same_turn_gives_the_same_ecot(turns):
    rows, again = turns
    first = rows[0]
    assert (again["reading"], again["strategy"], again["reply"]) == (first["reading"], first["strategy"],
                                                                      first["reply"])

