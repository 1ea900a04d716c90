"""Fixtures the trainers' tests share: tiny random-weight checkpoints of the real architectures and small
training sets in the ms-swift messages format built from the real clips in ../shared/media, with the
reference E-CoT of reference_ecot.json as stage-2 targets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from emoomni.services.reasoning.backends.omni_backend import SYSTEM_PROMPT

QUESTION = "<video>Watch and listen to me, then answer in the four parts."


def ecot_answer(reference: dict) -> str:
    return (f"<emotion>{reference['emotion_analysis']}</emotion>\n<intent>{reference['intent']}</intent>\n"
            f"<strategy>{reference['strategy']}</strategy>\n<response>{reference['response']}</response>")


def messages_line(clip: Path, answer: str, question: str = QUESTION) -> dict:
    return {"messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question},
                         {"role": "assistant", "content": answer}], "videos": [str(clip)]}


def losses(out: Path) -> dict[int, float]:
    """step -> training loss, from a run folder's metrics log."""
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def assert_lora_halves_the_loss(out: Path, summary: dict, steps: int) -> dict[int, float]:
    """Every step logged; the loss of the last two steps under half that of the first two; LoRA trained a small
    share of the weights."""
    curve = losses(out)
    assert sorted(curve) == list(range(1, steps + 1))
    first, last = (curve[1] + curve[2]) / 2, (curve[steps - 1] + curve[steps]) / 2
    assert last < first / 2, curve
    assert 0 < summary["trainable_params"] < summary["total_params"] / 10
    return curve


def cut_run(out: Path, dest: Path, lost: str) -> Path:
    """A copy of a run folder as if the machine died just before checkpoint `lost` (it and final/ are gone)."""
    shutil.copytree(out, dest, ignore=shutil.ignore_patterns(lost, "final"))
    return dest


def assert_resumed_curve(full: Path, resumed: Path, steps: int, resumed_at: int) -> None:
    """The resumed run logged every step once and, after its checkpoint, the uninterrupted run's losses."""
    before, after = losses(full), losses(resumed)
    assert sorted(after) == list(range(1, steps + 1))
    for step in range(resumed_at + 1, steps + 1):
        assert after[step] == pytest.approx(before[step], rel=1e-4, abs=1e-5), (step, before, after)


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n"
                            for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def reference_ecot(shared_media) -> dict[str, dict]:
    return {item["clip"]: item for item in json.loads((shared_media / "reference_ecot.json").read_text())}


@pytest.fixture(scope="session")
def tiny_omni_checkpoint(tmp_path_factory) -> Path:
    from training.thinker.random_checkpoint import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-omni"))


@pytest.fixture(scope="session")
def stage1_jsonl(tmp_path_factory, shared_media, reference_ecot) -> Path:
    """Stage-1 (perceptual grounding) data: the same two clips, the reference emotion analysis as a free-text
    description of what is seen and heard."""
    folder = tmp_path_factory.mktemp("stage1-data")
    clips = ["merged_7e578e0b.mp4", "samplenew3_00083538.mp4"]
    return write_jsonl(folder / "stage1.jsonl",
                       [messages_line(shared_media / clip, reference_ecot[clip]["emotion_analysis"],
                                      "<video>Describe what you see and hear in this person.") for clip in clips])


@pytest.fixture(scope="session")
def stage2_jsonl(tmp_path_factory, shared_media, reference_ecot) -> Path:
    """Two real clips (English 5.1 s, Mandarin 3.8 s) with the paper system's E-CoT for each as the target."""
    folder = tmp_path_factory.mktemp("stage2-data")
    clips = ["merged_7e578e0b.mp4", "samplenew3_00083538.mp4"]
    return write_jsonl(folder / "stage2.jsonl",
                       [messages_line(shared_media / clip, ecot_answer(reference_ecot[clip])) for clip in clips])


@pytest.fixture(scope="session")
def tiny_llama_gguf(tmp_path_factory) -> Path:
    """A random-weight llama GGUF with SmolLM2's real tokenizer and chat template (the cascade's default model
    shrunk): transformers reads it, llama.cpp serves it."""
    from emoomni.services.reasoning.backends.llama_cpp_backend import packaged_smollm2
    from training.reasoner.gguf_io import write_tiny_gguf

    return write_tiny_gguf(packaged_smollm2(), tmp_path_factory.mktemp("tiny-llama") / "tiny.gguf")
