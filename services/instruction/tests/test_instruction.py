"""Strategy -> acoustic instruction with the real packaged MiniLM embedding model."""

import pytest

from emoomni.config import load_config
from emoomni.services.instruction.core import InstructionCore


@pytest.fixture(scope="module")
def core():
    return InstructionCore(load_config(env={}))


@pytest.mark.parametrize("strategy, check", [
    # Phrasings that appear in none of the style descriptions.
    ("I'll keep my voice down to a hush since we're in a reading room, and speak gently.",
     lambda c: c.voice_quality == "whisper" and c.energy_scale < 0.8),
    ("Let's cheer for this wonderful news together, beaming with delight!",
     lambda c: c.pitch_scale > 1.02 and c.energy_scale > 1.05),
    ("Slow down, keep everything steady and soothing so their panic can settle.",
     lambda c: c.rate_scale < 0.95 and c.energy_scale < 1.0),
    ("Be direct and stern about the rule that was broken, without shouting.",
     lambda c: c.pitch_scale < 1.0 and c.voice_quality == "tense"),
])
def test_unseen_phrasings_map_to_the_expected_direction(core, strategy, check):
    result = core.map(strategy, "en")
    assert result.text and check(result.controls), (strategy, result)


def test_nonsense_falls_back_to_neutral_with_a_warning(core):
    result = core.map("qzx vlorp 7731 ##", "en")
    assert result.controls.emotion == "neutral" and result.warnings


def test_empty_and_oversized_strategies_are_refused(core):
    with pytest.raises(ValueError, match="empty"):
        core.map("   ")
    with pytest.raises(ValueError, match="over the"):
        core.map("x" * 5000)
