"""Both talker cores implement SpeechEngine, and a cancelled synthesis stops inside the in-process core."""

from __future__ import annotations

import inspect

from emoomni.sdk.talker import CancelToken
from emoomni.services.talker.core import TalkerCore
from emoomni.services.talker.interface import SpeechEngine
from emoomni.services.talker.triton_backend import TritonTalkerCore
from emoomni.v1 import instruction_pb2


def test_both_cores_implement_the_speech_engine_protocol():
    for core in (TalkerCore, TritonTalkerCore):
        for name in ("warmup", "activate", "speak"):
            wanted = inspect.signature(getattr(SpeechEngine, name))
            got = inspect.signature(getattr(core, name))
            assert list(got.parameters) == list(wanted.parameters), (core.__name__, name)
        # Attributes are set in __init__: check the source assigns them.
        source = inspect.getsource(core.__init__)
        assert "self.registry =" in source and "self.active =" in source, core.__name__


def test_a_cancelled_turn_stops_its_synthesis(stack_config):
    core = TalkerCore(stack_config)
    core.warmup()
    text = "The rain stopped an hour ago. The streets are still shining. Let us take a walk. It will do us good."
    whole = list(core.speak(text, instruction_pb2.AcousticInstruction()))
    assert len(whole) >= 3
    token = CancelToken()
    cut = []
    for chunk in core.speak(text, instruction_pb2.AcousticInstruction(), cancel=token):
        cut.append(chunk)
        token.cancel()
    assert len(cut) == 1 and not cut[0].last
    assert isinstance(core, SpeechEngine)
