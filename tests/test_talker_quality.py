"""The default talker follows instructions audibly and stays intelligible: the real instruction mapper, the
real Piper voice, YIN/RMS/duration measurements and an independent ASR (Whisper-base). A smaller run of
the talker_quality benchmark (three sentences instead of five, 3 takes per clip), held to the issue's goals."""

import pytest

from emoomni.core.config import load_config
from emoomni.eval.objective import load_asr
from emoomni.eval.talker_quality import SENTENCES, evaluate_talker
from emoomni.services.instruction.core import InstructionCore
from emoomni.services.talker.core import TalkerCore

pytestmark = pytest.mark.slow  # many syntheses and Whisper


@pytest.fixture(scope="module")
def piper_report():
    cfg = load_config(env={})
    assert cfg.talker.active == "piper"
    return evaluate_talker(TalkerCore(cfg), InstructionCore(cfg), load_asr(), "piper", sentences=SENTENCES[:3],
                           repeats=3)


def test_default_talker_meets_90_percent_of_expected_directions(piper_report):
    missed = [c for c in piper_report["checks"] if not c["met"]]
    assert piper_report["directions_checked"] == 13
    assert piper_report["direction_accuracy"] >= 0.9, missed


def test_default_talker_is_intelligible_to_whisper(piper_report):
    assert piper_report["wer"] <= 0.047, [(c["sentence"], c["transcript"]) for c in piper_report["clips"]]


def test_default_talker_is_faster_than_real_time(piper_report):
    # The 0.15 goal is checked by the benchmark on a quiet machine; here other tests share the cores.
    assert piper_report["rtf_median"] < 0.5 and piper_report["first_chunk_ms_median"] < 3000
