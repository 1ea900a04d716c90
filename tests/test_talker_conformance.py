"""The talker conformance suite (emoomni.testing.talker_conformance) on every plugin found by entry point."""

from __future__ import annotations

import pytest

from emoomni.services.talker.registry import discover
from emoomni.testing.talker_conformance import TalkerConformance

# Installed by scripts/setup.sh; each must be found, and each runs the whole suite.
PACKAGED = {"piper", "espeak", "kokoro", "qwen3-tts"}


def test_every_packaged_talker_is_found_by_entry_point():
    assert set(discover()) >= PACKAGED


@pytest.fixture(scope="module", params=sorted(discover()))
def plugin_name(request):
    return request.param


class TestTalkerConformance(TalkerConformance):
    pass
