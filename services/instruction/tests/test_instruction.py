"""Strategy -> acoustic instruction with the real packaged MiniLM embedding model and the shipped head."""

import pytest

from emoomni.core.config import load_config
from emoomni.services.instruction.core import InstructionCore
from emoomni.services.instruction.delivery import DeliveryHead
from emoomni.services.instruction.render import render_instruction
from emoomni.v1 import instruction_pb2
from training.instruction.compose import load_facets
from training.instruction.train_head import heldout_report


@pytest.fixture(scope="module")
def core():
    return InstructionCore(load_config(env={}))


@pytest.mark.parametrize("strategy, check", [
    # Phrasings that appear neither in the training phrase bank nor in the held-out set.
    ("I'll keep my voice down to a hush since we're in a reading room, and speak gently.",
     lambda c: c.energy_scale < 0.8),
    ("Let's cheer for this wonderful news together, beaming with delight!",
     lambda c: c.pitch_scale > 1.02 and c.energy_scale > 1.05),
    ("Slow down, keep everything steady and soothing so their panic can settle.",
     lambda c: c.rate_scale < 0.95 and c.energy_scale < 1.0),
    ("Be direct and stern about the rule that was broken, without shouting.",
     lambda c: c.voice_quality == "tense" and c.emotion == "serious"),
])
def test_unseen_phrasings_map_to_the_expected_direction(core, strategy, check):
    result = core.map(strategy, "en")
    assert result.text.startswith("Speak ") and check(result.controls), (strategy, result)


def test_shipped_head_generalizes_to_the_held_out_phrasings(core):
    report = heldout_report(core.backend.embedder, core.backend.head)
    assert report["checked"] >= 45
    assert report["accuracy"] >= 0.8, report["misses"]


def test_nonsense_and_off_topic_text_fall_back_to_neutral_with_a_warning(core):
    _, off_topic = load_facets()
    for text in ["qzx vlorp 7731 ##", off_topic[0]]:
        result = core.map(text, "en")
        assert result.controls.emotion == "neutral" and result.controls.rate_scale == 1.0, text
        assert result.warnings and "neutral" in result.warnings[0]


def test_rendered_instruction_names_the_controls():
    controls = instruction_pb2.AcousticControls(emotion="sad", intensity=0.6, pitch_scale=0.9, rate_scale=0.8,
                                                energy_scale=1.0, voice_quality="breathy", age_hint="elderly",
                                                gender_hint="female")
    text = render_instruction(controls)
    assert text == ("Speak sadly, with a heavy heart, with a soft, breathy voice, in the voice of an elderly woman, "
                    "slower, a little lower-pitched.")


def test_head_loads_from_a_path_and_a_bad_path_is_a_clear_error(tmp_path, core):
    core.backend.head.save(tmp_path / "head")
    again = DeliveryHead.load(tmp_path / "head")
    assert again.config == core.backend.head.config
    with pytest.raises(FileNotFoundError, match="no delivery head"):
        DeliveryHead.load(tmp_path / "missing")


def test_empty_and_oversized_strategies_are_refused(core):
    with pytest.raises(ValueError, match="empty"):
        core.map("   ")
    with pytest.raises(ValueError, match="over the"):
        core.map("x" * 5000)
