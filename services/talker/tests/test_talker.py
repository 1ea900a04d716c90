"""The talker core with the real Piper plugin found through its entry point."""

import numpy as np
import pytest

from emoomni.core.config import load_config
from emoomni.core.text import speech_chunks
from emoomni.services.talker.core import TalkerCore
from emoomni.services.talker.registry import UnknownTalker, discover
from emoomni.v1 import instruction_pb2


@pytest.fixture(scope="module")
def core():
    return TalkerCore(load_config(env={}))


def speak(core, text, **controls):
    instruction = instruction_pb2.AcousticInstruction(controls=instruction_pb2.AcousticControls(**controls))
    chunks = list(core.speak(text, instruction, "en"))
    return chunks, np.frombuffer(b"".join(c.pcm16 for c in chunks), dtype=np.int16)


def test_piper_is_discovered_through_its_entry_point():
    plugins = discover()
    assert "piper" in plugins
    assert "GPL" in plugins["piper"].capabilities.license


def test_speech_streams_in_numbered_chunks_with_one_last_flag(core):
    chunks, audio = speak(core, "That is amazing news. Let's check the record together.")
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert [c.last for c in chunks].count(True) == 1 and chunks[-1].last
    rate = chunks[0].sample_rate
    assert rate == 22050 and 2.0 < audio.size / rate < 8.0
    assert np.abs(audio).max() > 3000, "audible speech, not silence"


def test_rate_and_energy_controls_change_the_audio(core):
    _, neutral = speak(core, "Take a slow breath with me.", rate_scale=1.0, energy_scale=1.0)
    _, slow_loud = speak(core, "Take a slow breath with me.", rate_scale=0.7, energy_scale=1.5)
    assert slow_loud.size > neutral.size * 1.2
    assert np.sqrt(np.mean(slow_loud.astype(float) ** 2)) > np.sqrt(np.mean(neutral.astype(float) ** 2)) * 1.2


def test_bad_text_and_unknown_talker_are_refused(core):
    instruction = instruction_pb2.AcousticInstruction()
    with pytest.raises(ValueError, match="empty"):
        list(core.speak("  ", instruction))
    with pytest.raises(ValueError, match="over the 20000 limit"):
        list(core.speak("a" * 25000, instruction))
    with pytest.raises(UnknownTalker, match="no talker plugin named 'nope'"):
        list(core.speak("Hello.", instruction, talker="nope"))


def test_long_text_is_spoken_in_sentence_sized_pieces(core):
    text = " ".join(f"This is sentence number {i}, which keeps going for a while." for i in range(12))
    assert all(len(piece) <= 320 for piece in speech_chunks(text + " " + "word " * 200))
    chunks, audio = speak(core, text)
    assert len(chunks) >= 2 and chunks[-1].last
    assert audio.size / chunks[0].sample_rate > 20.0


def test_the_reply_language_picks_its_engine_and_a_named_one_that_cannot_speak_it_falls_back(core):
    neutral = instruction_pb2.AcousticInstruction()
    chunks = list(core.speak("我今天很高兴见到你。", neutral, "zh-CN"))
    assert {c.talker for c in chunks} == {"kokoro"} and not chunks[0].warnings  # talker.by_language
    assert {c.talker for c in core.speak("Nice to see you.", neutral, "en")} == {"piper"}  # the active one
    chunks = list(core.speak("我今天很高兴见到你。", neutral, "zh-CN", talker="piper"))
    assert {c.talker for c in chunks} == {"kokoro"}  # the first of talker.language_fallbacks
    assert any("does not speak 'zh'" in w for w in chunks[0].warnings)


def test_activation_warms_first_and_a_turn_keeps_its_engine():
    core = TalkerCore(load_config(env={}))
    core.warmup()
    instruction = instruction_pb2.AcousticInstruction()
    first = list(core.speak("First sentence.", instruction, turn_id="turn-a", sentence_index=0))
    switched = core.activate("espeak")
    assert (switched.previous, switched.active) == ("piper", "espeak") and switched.load_ms > 0
    assert core.registry.is_loaded("espeak")
    second = list(core.speak("Second sentence.", instruction, turn_id="turn-a", sentence_index=1))
    fresh = list(core.speak("A new turn.", instruction, turn_id="turn-b"))
    assert {c.talker for c in first + second} == {"piper"} and {c.talker for c in fresh} == {"espeak"}
    assert core.activate("piper").load_ms == 0.0, "already loaded: no second load"


def test_ignored_controls_are_reported_on_the_first_chunk(core):
    controls = instruction_pb2.AcousticControls(voice_quality="whisper", energy_scale=0.5, emotion="tender")
    chunks = list(core.speak("Keep it down.", instruction_pb2.AcousticInstruction(controls=controls)))
    assert set(chunks[0].warnings) == {"piper ignored voice_quality", "piper ignored emotion"}
