"""The stack config (YAML + env overrides + validation) and incremental sentence splitting."""

import pytest
from pydantic import ValidationError

from emoomni.core.bus import subject, turn_id_of, valid_turn_id, work_subject
from emoomni.core.config import DEFAULT_CONFIG_PATH, load_config
from emoomni.core.text import SentenceSplitter


def test_default_config_file_loads_and_names_every_stage():
    cfg = load_config(DEFAULT_CONFIG_PATH, env={})
    assert cfg.reasoning.backend == "llama_cpp"
    assert cfg.perception.asr.backend == "faster_whisper"
    assert cfg.talker.active == "piper"
    assert cfg.services.gateway == "127.0.0.1:50051"


def test_environment_overrides_win_over_the_file(tmp_path):
    path = tmp_path / "stack.yaml"
    path.write_text("nats: {url: nats://10.0.0.1:4222}\nreasoning: {backend: llama_cpp}\n")
    cfg = load_config(path, env={"NATS_URL": "nats://127.0.0.1:5999", "EMOOMNI_REASONING_BACKEND": "openai_compatible",
                                 "EMOOMNI_OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert cfg.nats.url == "nats://127.0.0.1:5999"
    assert cfg.reasoning.backend == "openai_compatible"
    assert cfg.reasoning.openai_compatible.base_url == "http://127.0.0.1:9/v1"


def test_unknown_keys_and_backends_are_rejected(tmp_path):
    path = tmp_path / "stack.yaml"
    path.write_text("reasoning: {backend: magic}\n")
    with pytest.raises(ValidationError, match="backend"):
        load_config(path, env={})
    path.write_text("talkr: {active: piper}\n")
    with pytest.raises(ValidationError, match="talkr"):
        load_config(path, env={})


def test_turn_subjects_round_trip_and_reject_unsafe_ids():
    assert subject("abc", "audio") == "emoomni.v1.turn.abc.audio"
    assert turn_id_of(subject("t-1_x", "speak")) == "t-1_x"
    assert work_subject("speak") == "emoomni.v1.turn.*.speak"
    assert valid_turn_id("a1-b_2")
    for bad in ("a.b", "a b", "*", ">", "", "x" * 65):
        assert not valid_turn_id(bad)


def test_sentence_splitter_releases_sentences_as_they_complete():
    splitter = SentenceSplitter()
    out = []
    for delta in ["That is amaz", "ing! Okay, take a br", "eath. Dr. Smith will ", "help you"]:
        out += splitter.feed(delta)
    assert out == ["That is amazing!", "Okay, take a breath."]
    assert splitter.flush() == "Dr. Smith will help you"


def test_sentence_splitter_handles_chinese_punctuation():
    splitter = SentenceSplitter(min_chars=2)
    assert splitter.feed("这真是个好消息！我们一起") == ["这真是个好消息！"]
    assert splitter.flush() == "我们一起"


def test_spoken_language_follows_the_reply_text_not_only_what_was_heard():
    from emoomni.core.text import spoken_language

    assert spoken_language("I hear you, that sounds hard.", "zh") == "en"  # English model answering Mandarin
    assert spoken_language("我明白你的感受。", "zh") == "zh"
    assert spoken_language("我明白。", "en") == "zh"
    assert spoken_language("Das klingt schwer.", "de") == "de"
    assert spoken_language("Hello.", "") == "en"


def test_a_persona_and_a_history_that_could_not_fit_together_are_refused_at_load():
    """Issue 25, finding 8: each within its own limit, together over max_context_chars, every turn would fail."""
    from emoomni.core.config import StackConfig

    with pytest.raises(ValidationError, match=r"would not fit in limits\.max_context_chars"):
        StackConfig(live={"history_chars": 3500})
    assert StackConfig(live={"history_chars": 1900}).live.history_chars == 1900
