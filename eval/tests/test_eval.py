"""EmoOmniEval end to end on real parts: the embedded agent on two real clips from ../shared/media, the
packaged Whisper-base for WER/CER, the real talker for the neutral reference, a real llama.cpp
OpenAI-compatible server (SmolLM2-135M) as a text-only judge, and SmolLM2 read by transformers as the local
judge. A 135M judge proves plumbing, parsing, retries and aggregation, not judge quality."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from emoomni.core.config import load_config
from emoomni.eval.judges import (
    JUDGE_METRICS,
    JudgeSpecError,
    TransformersJudge,
    VerdictError,
    judge_item,
    parse_judge_spec,
    parse_verdict,
)
from emoomni.eval.llm_server import llama_cpp_server
from emoomni.eval.manifest import ch_sims_v2, meld_test, read_manifest
from emoomni.eval.objective import error_rate
from emoomni.eval.pipeline import evaluate
from emoomni.eval.report import compare, load_report, summarise

pytestmark = pytest.mark.slow  # real agent turns and judges

CLIPS = {"en-burial": "merged_7e578e0b.mp4", "zh-playful": "samplenew3_00083538.mp4"}


@pytest.fixture(scope="module")
def cfg():
    return load_config(env={})


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, shared_media) -> Path:
    folder = tmp_path_factory.mktemp("manifest")
    lines = [json.dumps({"id": "en-burial", "video": str(shared_media / CLIPS["en-burial"]), "language": "en",
                         "context": "She has been researching her family history all week."}),
             json.dumps({"id": "zh-playful", "video": str(shared_media / CLIPS["zh-playful"]), "language": "zh"}),
             json.dumps({"id": "gone", "video": "missing.mp4"}),
             "{not json",
             json.dumps({"id": "typo", "vidoe": "x.mp4"})]
    path = folder / "m.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory, manifest, cfg):
    out = tmp_path_factory.mktemp("runs") / "plain"
    report, outcome = evaluate(manifest, out, cfg)
    return out, report, outcome


@pytest.fixture(scope="module")
def judge_url():
    with llama_cpp_server() as url:
        yield url


def test_bad_manifest_lines_are_named_and_the_rest_runs(plain_run):
    out, report, outcome = plain_run
    assert sorted(outcome.ran) == ["en-burial", "zh-playful"] and not outcome.failed
    errors = "\n".join(report.manifest_errors)
    assert "m.jsonl:3" in errors and "no such video" in errors and "'gone'" in errors
    assert "m.jsonl:4" in errors and "not JSON" in errors
    assert "m.jsonl:5" in errors and "vidoe" in errors
    assert report.run.items_in_manifest == 5 and report.run.items_done == 2 and report.run.items_failed == 3
    for item_id in CLIPS:
        assert (out / "items" / item_id / "turn.json").is_file() and (out / "items" / item_id / "reply.wav").is_file()


def test_without_a_judge_nothing_is_invented(plain_run):
    out, _, _ = plain_run
    data = json.loads((out / "report.json").read_text())
    for metric in JUDGE_METRICS:
        assert data["summary"]["all"][metric]["status"] == "not judged"
        assert data["summary"]["all"][metric]["mean"] is None
        assert all(item["metrics"][metric] is None for item in data["items"])
    assert data["run"]["judge"] is None
    assert "not judged" in (out / "report.md").read_text()


def test_objective_metrics_on_real_replies(plain_run):
    out, report, _ = plain_run
    items = {i.id: i for i in report.items}
    for item in items.values():
        objective = item.objective
        turn = json.loads((out / "items" / item.id / "turn.json").read_text())
        # Whisper heard the reply; the error rate is computed against the reply text the agent wrote.
        assert objective["asr_transcript"], item.id
        assert item.metrics[objective["error_metric"]] == objective["error_rate"] is not None
        # An error rate counts insertions too, so it may pass 1.0 (Whisper once heard a Mandarin reply three times
        # over, CER 1.24); it is a rate, never negative or undefined.
        assert math.isfinite(objective["error_rate"]) and objective["error_rate"] >= 0, (
            turn["ecot"]["response"], objective["asr_transcript"])
        assert item.metrics["latency"] == turn["timings_ms"]["total"] > 0
        assert 0 < item.metrics["first_audio_ms"] <= item.metrics["latency"]
        assert item.metrics["UTMOS"] is None  # no UTMOS model given: not measured, not guessed
        assert objective["neutral_features"]["rate"] > 0, "the neutral reference was synthesised and measured"
        expected = objective["acoustic_expected"]
        assert [c["feature"] for c in objective["acoustic_checks"]] == [f for f in expected if f in
                                                                         objective["reply_features"]]
        if objective["acoustic_checks"]:
            met = [c["met"] for c in objective["acoustic_checks"]]
            assert item.metrics["acoustic_following"] == pytest.approx(sum(met) / len(met))
    summary = report.summary["all"]
    assert summary["latency"].n == 2 and summary["latency"].ci95 is not None
    assert summary["UTMOS"].status == "not measured"
    for png in ("scores.png", "objective.png", "latency.png"):
        assert (out / png).stat().st_size > 5000
    md = (out / "report.md").read_text()
    assert "VS-RES ↑" in md and "WER ↓" in md and "neutral-resynthesis" in md


def test_resume_runs_nothing_twice(plain_run, manifest, cfg):
    out, _, _ = plain_run
    before = {i: (out / "items" / i / "turn.json").stat().st_mtime_ns for i in CLIPS}
    objective_before = {i: (out / "items" / i / "objective.json").stat().st_mtime_ns for i in CLIPS}
    report, outcome = evaluate(manifest, out, cfg)
    assert outcome.ran == [] and sorted(outcome.skipped) == sorted(CLIPS)
    assert before == {i: (out / "items" / i / "turn.json").stat().st_mtime_ns for i in CLIPS}
    assert objective_before == {i: (out / "items" / i / "objective.json").stat().st_mtime_ns for i in CLIPS}
    assert report.run.items_done == 2


def test_openai_judge_end_to_end_text_only(plain_run, manifest, cfg, judge_url, tmp_path):
    out = tmp_path / "judged"
    shutil.copytree(plain_run[0] / "items", out / "items")
    spec = parse_judge_spec(f"openai:{judge_url}?model=smollm2&media=none&max_tokens=300&retries=1")
    report, outcome = evaluate(manifest, out, cfg, spec, label="judged")
    assert outcome.ran == [], "the agent is not run again for items already done"
    assert report.run.judge_inputs == "text-only"
    assert "text-only" in (out / "report.md").read_text()
    scored = 0
    for item in report.items:
        if item.status != "done":
            continue
        assert {j.prompt for j in item.judgments} == {"VT-RC", "VT-EA+VT-RES", "VS-RC+VS-RES", "IF"}
        for j in item.judgments:
            assert "user_clip" in j.inputs_as_text or "reply_speech" in j.inputs_as_text or j.prompt == "VT-RC" \
                or j.prompt == "VT-EA+VT-RES"
            if j.status == "ok":
                assert all(s in (0, 1, 2) for s in j.scores.values()) and 1 <= j.attempts <= 2
                scored += len(j.scores)
            else:
                assert all(s is None for s in j.scores.values()) and j.attempts == 2 and j.errors
    assert scored, "constrained decoding gave at least some valid verdicts"
    done = [i for i in report.items if i.status == "done"]
    for metric in JUDGE_METRICS:
        values = [i.metrics[metric] for i in done if i.metrics[metric] is not None]
        s = report.summary["all"][metric]
        if values:
            assert s.status == "measured" and s.mean == pytest.approx(float(np.mean(values)), abs=1e-4)
        failed = sum(1 for i in done for j in i.judgments if j.status == "failed" and metric in j.scores)
        assert s.failures == failed
    # compare: the same objective figures, judge metrics only in the judged run.
    text = compare(load_report(plain_run[0]), load_report(out))
    assert "| all | latency |" in text and "| 0.000 |" not in text.split("| all | latency |")[0][-5:]
    assert "| all | VT-RC | not judged |" in text
    assert "different judge inputs" in text


def test_malformed_judge_output_is_retried_then_recorded_as_failure(plain_run, shared_media, cfg, judge_url,
                                                                    tmp_path):
    out = tmp_path / "truncated"
    shutil.copytree(plain_run[0] / "items" / "en-burial", out / "items" / "en-burial")
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"id": "en-burial", "video": str(shared_media / CLIPS["en-burial"])}) + "\n")
    # 4 tokens cannot hold a verdict: the real server returns cut-off JSON every time.
    spec = parse_judge_spec(f"openai:{judge_url}?model=smollm2&media=none&max_tokens=4&retries=1")
    report, _ = evaluate(one, out, cfg, spec)
    (item,) = report.items
    assert len(item.judgments) == 4
    for j in item.judgments:
        assert j.status == "failed" and j.attempts == 2 and len(j.errors) == 2
        assert all("not valid JSON" in e or "no '" in e for e in j.errors), j.errors
        assert all(v is None for v in j.scores.values())
    for metric in JUDGE_METRICS:
        s = report.summary["all"][metric]
        assert s.mean is None and s.failures == 1 and item.metrics[metric] is None
    assert "failed" in (out / "report.md").read_text()


def test_transformers_judge_on_packaged_smollm2(plain_run):
    from emoomni.services.reasoning.backends.llama_cpp_backend import packaged_smollm2

    spec = parse_judge_spec(f"transformers:{packaged_smollm2()}?max_tokens=12&retries=0")
    judge = TransformersJudge(spec)
    d = plain_run[0] / "items" / "en-burial"
    turn = json.loads((d / "turn.json").read_text())
    objective = json.loads((d / "objective.json").read_text())
    judgments = judge_item(judge, spec, turn, {"context": ""}, objective, Path("unused.mp4"), d / "reply.wav")
    assert [j.status for j in judgments] == ["ok"] * 4, [j.errors for j in judgments]
    assert sorted(m for j in judgments for m in j.scores) == sorted(JUDGE_METRICS)
    assert all(s in (0, 1, 2) for j in judgments for s in j.scores.values())


def test_cli_errors_and_compare(plain_run, manifest, tmp_path, capsys):
    from emoomni.apps.cli import main

    assert main(["eval", "--manifest", str(manifest), "--out", str(tmp_path), "--judge", "gemini:pro"]) == 2
    assert "unknown judge spec 'gemini:pro'" in capsys.readouterr().err
    assert main(["eval", "--manifest", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path)]) == 2
    assert main(["eval", "compare", str(plain_run[0]), str(plain_run[0])]) == 0
    assert "| all | latency |" in capsys.readouterr().out
    with pytest.raises(JudgeSpecError, match="media"):
        parse_judge_spec("openai:http://h:1/v1?media=smell")
    with pytest.raises(JudgeSpecError, match="text-only"):
        parse_judge_spec("transformers:/m?media=video")


def test_verdict_parsing_never_guesses():
    ok = parse_verdict('```json\n{"IF": {"reason": "calm", "score": 2}}\n```', ["IF"])
    assert ok["IF"].score == 2
    for bad in ('{"IF": {"reason": "x", "score": 3}}', '{"IF": {"reason": "x"}}', '{"If": {"score": 1}}',
                '{"IF": {"reason": "x", "score": 1', "The score is 2."):
        with pytest.raises(VerdictError):
            parse_verdict(bad, ["IF"])


def test_error_rates_and_confidence_interval():
    assert error_rate("Hello, world!", "hello world", "en") == ("WER", 0.0)
    metric, value = error_rate("我很高兴。", "我很高心", "zh")
    assert metric == "CER" and value == pytest.approx(0.25)
    values = [1.0, 2.0, 2.0, 0.0]
    s = summarise(values)
    half = stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / math.sqrt(4)
    assert s.ci95 == pytest.approx((1.25 - half, 1.25 + half), abs=1e-4)
    assert summarise([], unmeasured="not judged").status == "not judged"


def test_dataset_loaders(tmp_path, shared_media):
    meld = tmp_path / "MELD.Raw"
    (meld / "output_repeated_splits_test").mkdir(parents=True)
    with (meld / "test_sent_emo.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID"])
        w.writerow([1, "Guess what I found!", "Rachel", "joy", "positive", 0, 0])
        w.writerow([2, "What?", "Ross", "surprise", "neutral", 0, 1])
        w.writerow([3, "It don\u0092t matter.", "Rachel", "neutral", "neutral", 0, 2])
    for utt in (0, 1):
        (meld / "output_repeated_splits_test" / f"dia0_utt{utt}.mp4").symlink_to(shared_media / CLIPS["en-burial"])
    items, missing = meld_test(meld)
    assert [i.id for i in items] == ["meld-dia0-utt0", "meld-dia0-utt1"] and len(missing) == 1
    assert items[1].context == "Rachel: Guess what I found!" and items[1].reference_response == "It don't matter."
    assert items[0].dataset == "MELD" and items[0].language == "en"

    sims = tmp_path / "ch-sims-v2s"
    (sims / "Raw" / "aqgy3_0001").mkdir(parents=True)
    (sims / "Raw" / "aqgy3_0001" / "00001.mp4").symlink_to(shared_media / CLIPS["zh-playful"])
    (sims / "Raw" / "aqgy3_0001" / "00002.mp4").symlink_to(shared_media / CLIPS["zh-playful"])
    with (sims / "label.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "clip_id", "text", "label", "label_T", "label_A", "label_V", "annotation", "mode"])
        w.writerow(["aqgy3_0001", "00001", "你好。", 0.2, 0, 0, 0, "Neutral", "test"])
        w.writerow(["aqgy3_0001", "00002", "不是我。", -0.4, 0, 0, 0, "Negative", "test"])
        w.writerow(["aqgy3_0001", "00003", "训练。", 0.0, 0, 0, 0, "Neutral", "train"])
    items, missing = ch_sims_v2(sims)
    assert [i.id for i in items] == ["chsims-aqgy3_0001-00001", "chsims-aqgy3_0001-00002"] and not missing
    assert items[1].context == "你好。" and items[1].dataset == "ch-sims-v2" and items[1].language == "zh"
    from emoomni.eval.manifest import write_manifest

    back, errors = read_manifest(write_manifest(items, tmp_path / "sims.jsonl"))
    assert back == items and not errors
