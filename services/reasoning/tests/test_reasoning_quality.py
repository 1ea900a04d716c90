"""A CI-sized slice of benchmarks/reasoning_quality.py with the default packaged model: bad news is not
congratulated, the strategy follows the reading (checked through the real instruction mapper), and Mandarin is
answered in Mandarin. The whole scenario set (40, both languages, opener shares) runs in the benchmark."""

import pytest

from benchmarks.reasoning_quality import load_scenarios, run_scenario
from emoomni.core.config import load_config
from emoomni.services.instruction.core import InstructionCore
from emoomni.services.reasoning.backends.llama_cpp_backend import LlamaCppBackend

SLICE = ("I failed my driving test for the third time.", "I got the scholarship! Full tuition for four years!",
         "我的猫两个晚上没回家了。", "我第一次就通过了司法考试。")


@pytest.fixture(scope="module")
def rows():
    cfg = load_config(env={})
    assert cfg.reasoning.llama_cpp.model == "qwen2.5-coder-0.5b"
    backend, mapper = LlamaCppBackend(cfg.reasoning), InstructionCore(cfg)
    scenarios = {s["text"]: s for s in load_scenarios()}
    return [run_scenario(backend, mapper, scenarios[text]) for text in SLICE]


def test_reading_names_the_feeling_and_strategy_follows_it(rows):
    for row in rows:
        assert row["reading_ok"], (row["text"], row["reading"])
        assert row["strategy_fits"], (row["text"], row["strategy"], row["controls"])
        assert not row["congratulates_bad_news"], row["reply"]


def test_reply_is_in_the_language_heard(rows):
    for row in rows:
        assert row["language_ok"] and row["reply"], (row["lang"], row["reply"])
