"""E-CoT generation with the real packaged Qwen (llama.cpp; the tuned brain and the prompt-only one), and the
OpenAI-compatible backend against a real llama-cpp-python server that the test starts. These prove structure,
streaming and grounding; the replies' quality is measured by benchmarks/brain_compare.py and checked on fixed cues
by test_tuned_brain.py."""

import time

import pytest

from emoomni.core.config import load_config
from emoomni.core.natsserver import free_port
from emoomni.eval.llm_server import llama_cpp_server
from emoomni.services.reasoning.backends.interface import EMOTION, EMOTION_LABELS, INTENT, RESPONSE, STRATEGY
from emoomni.services.reasoning.core import ReasoningCore
from emoomni.v1 import perception_pb2 as pb
from emoomni.v1 import reasoning_pb2

ORDER = [EMOTION, INTENT, STRATEGY, RESPONSE]


def perception() -> pb.PerceptionResult:
    return pb.PerceptionResult(cues=[
        pb.Cue(modality="speech", text='The user said: "I finally finished my first marathon, I can barely walk!"'),
        pb.Cue(modality="face", text="Facial expression: mostly happy (6 of 8 frames with a face, mean p 0.71)"),
        pb.Cue(modality="voice", text="Speech rate: 3.4 words/s, fast"),
    ])


def collect(backend_cfg_env: dict, tuned: bool = True) -> tuple[list[reasoning_pb2.EcotDelta], reasoning_pb2.Ecot,
                                                                 float]:
    import asyncio

    cfg = load_config(env=backend_cfg_env)
    if cfg.reasoning.backend == "llama_cpp":
        cfg.reasoning.llama_cpp.tuned = tuned
    core = ReasoningCore(cfg)
    ecot = reasoning_pb2.Ecot()

    async def run():
        return [d async for d in core.reason(perception(), "", ecot)]

    start = time.perf_counter()
    deltas = asyncio.run(run())
    return deltas, ecot, time.perf_counter() - start


def assert_causal_order(deltas):
    done_order = [d.part for d in deltas if d.part_done]
    assert done_order == ORDER, "each part is completed once, in causal order"
    seen = []
    for d in deltas:
        if not seen or seen[-1] != d.part:
            seen.append(d.part)
    assert seen == ORDER, "parts stream one after the other, never interleaved"


@pytest.mark.parametrize("tuned", [True, False], ids=["tuned", "prompt-only"])
def test_llama_cpp_backend_streams_four_grounded_parts(tuned):
    deltas, ecot, _ = collect({}, tuned)
    assert_causal_order(deltas)
    assert sum(1 for d in deltas if d.part == RESPONSE and d.text) >= 3, "the reply streams in several deltas"
    for cue in perception().cues:
        assert cue.text in ecot.emotion_analysis, "the analysis opens with every measured cue"
    reading = ecot.emotion_analysis.split("Overall, the user seems ", 1)[1]
    labels, _, conclusion = reading.partition(",") if tuned else (reading.rstrip("."), "", "")
    assert all(word in EMOTION_LABELS for word in labels.split(" and ")), reading
    if tuned:  # the tuned brain writes whole lines, and its reading ends in a short conclusion
        assert conclusion.strip() and ecot.intent and ecot.strategy
    else:
        assert ecot.intent.startswith("The user wants") and len(ecot.intent) > len("The user wants ")
        assert ecot.strategy.startswith("I will respond")
    assert ecot.response and ecot.response.isascii(), "an English turn is answered in English"


@pytest.fixture(scope="module")
def openai_server():
    """A real OpenAI-compatible HTTP server (llama-cpp-python's) serving the packaged SmolLM2."""
    with llama_cpp_server(n_ctx=2048) as url:
        yield url


def test_openai_compatible_backend_streams_schema_constrained_parts(openai_server):
    env = {"EMOOMNI_REASONING_BACKEND": "openai_compatible", "EMOOMNI_OPENAI_BASE_URL": openai_server,
           "EMOOMNI_OPENAI_RESPONSE_FORMAT": "json_object"}
    deltas, ecot, _ = collect(env)
    assert_causal_order(deltas)
    assert ecot.emotion_analysis.startswith(perception().cues[0].text), "measured evidence comes first"
    assert all(getattr(ecot, f).strip() for f in ("intent", "strategy", "response"))


def test_unreachable_endpoint_fails_clearly():
    env = {"EMOOMNI_REASONING_BACKEND": "openai_compatible", "EMOOMNI_OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"}
    with pytest.raises(Exception, match=r"(?i)connect"):
        collect(env)
