"""Presets, the loud error for a missing config, declared and nested environment overrides, the reasoning union,
and field descriptions in the exported schema."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from emoomni.core.config import OmniReasoning, StackConfig, load_config
from emoomni.core.config_sources import declared_env_vars, presets


def test_presets_named_in_the_readme_load():
    assert {"stack", "omni", "openai", "triton"} <= set(presets())
    assert load_config("omni", env={}).reasoning.omni.model_path == "/models/Qwen2.5-Omni-7B"
    assert load_config("openai", env={}).reasoning.backend == "openai_compatible"
    triton = load_config(env={"EMOOMNI_CONFIG": "triton"})
    assert triton.perception.asr.backend == "triton" and triton.talker.backend == "triton"


def test_a_named_config_that_does_not_exist_is_a_loud_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no-such\.yaml.*--config"):
        load_config(tmp_path / "no-such.yaml", env={})
    with pytest.raises(FileNotFoundError, match=r"nonesuch.*EMOOMNI_CONFIG.*omni, openai, stack, triton"):
        load_config(env={"EMOOMNI_CONFIG": "nonesuch"})


def test_every_legacy_variable_is_declared_on_its_field():
    declared = {var for var, _, _ in declared_env_vars(StackConfig)}
    assert declared >= {"NATS_URL", "EMOOMNI_GATEWAY_ADDR", "EMOOMNI_PERCEPTION_ADDR", "EMOOMNI_REASONING_ADDR",
                        "EMOOMNI_INSTRUCTION_ADDR", "EMOOMNI_TALKER_ADDR", "EMOOMNI_REASONING_BACKEND",
                        "EMOOMNI_OPENAI_BASE_URL", "EMOOMNI_OPENAI_MODEL", "EMOOMNI_OPENAI_RESPONSE_FORMAT",
                        "EMOOMNI_LLM_PATH", "EMOOMNI_TALKER", "EMOOMNI_OMNI_PATH", "EMOOMNI_OMNI_ADAPTER", "TRITON_URL"}


def test_overrides_for_the_chosen_backend_apply_and_others_are_ignored():
    env = {"EMOOMNI_OPENAI_MODEL": "exported-but-unused", "EMOOMNI_LLM_PATH": "/m.gguf", "TRITON_URL": "t:1",
           "EMOOMNI_TALKER_ADDR": "0.0.0.0:9", "EMOOMNI__DEADLINES__TURN_S": "30", "EMOOMNI__REASONING__LIMITS__"
           "INTENT_TOKENS": "12"}
    cfg = load_config(env=env)
    assert cfg.reasoning.backend == "llama_cpp" and cfg.reasoning.llama_cpp.model_path == "/m.gguf"
    assert cfg.triton.url == "t:1" and cfg.services.talker == "0.0.0.0:9"
    assert cfg.deadlines.turn_s == 30.0 and cfg.reasoning.limits.intent_tokens == 12
    omni = load_config(env={"EMOOMNI_REASONING_BACKEND": "omni", "EMOOMNI_OMNI_PATH": "/o", "EMOOMNI_LLM_PATH": "/x"})
    assert isinstance(omni.reasoning, OmniReasoning) and omni.reasoning.omni.model_path == "/o"


def test_a_section_for_a_backend_the_stage_does_not_use_is_an_error(tmp_path):
    path = tmp_path / "stack.yaml"
    path.write_text("reasoning: {backend: llama_cpp, omni: {model_path: /o}}\n")
    with pytest.raises(ValidationError, match="omni"):
        load_config(path, env={})


def test_a_config_built_in_code_reads_no_environment(monkeypatch):
    monkeypatch.setenv("NATS_URL", "nats://elsewhere:1")
    monkeypatch.setenv("EMOOMNI__DEADLINES__TURN_S", "1")
    cfg = StackConfig()
    assert cfg.nats.url == "nats://127.0.0.1:4222" and cfg.deadlines.turn_s == 120.0


def test_the_schema_carries_field_descriptions():
    schema = StackConfig.model_json_schema()
    talker = schema["$defs"]["TalkerConfig"]["properties"]
    assert "emoomni.talkers" in talker["active"]["description"]
    assert {m["$ref"].rsplit("/", 1)[1] for m in schema["properties"]["reasoning"]["oneOf"]} == {
        "LlamaCppReasoning", "OpenAICompatibleReasoning", "OmniReasoning"}
