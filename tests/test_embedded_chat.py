"""The embedded default: `emoomni chat` (one process, private nats-server) on the real clips."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

import pytest
import soundfile as sf

from conftest import ENGLISH_CLIP, MANDARIN_CLIPS
from emoomni.core.config import load_config
from emoomni.core.runtime import EmbeddedAgent
from emoomni.sdk.agent import LocalAgent
from emoomni.sdk.live import session_config
from emoomni.sdk.result import TurnResult
from emoomni.services.gateway.core import TurnFailed
from emoomni.v1 import agent_pb2, media_pb2

pytestmark = pytest.mark.slow  # every model loaded, real turns


def test_cli_chat_writes_turn_json_and_reply_wav(english_clip, tmp_path):
    run = subprocess.run([sys.executable, "-m", "emoomni", "chat", str(english_clip), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    turn = json.loads((tmp_path / "turn.json").read_text())
    assert "burial record" in turn["perception"]["transcript"] and turn["perception"]["language"] == "en"
    assert all(turn["ecot"][k] for k in ("emotion_analysis", "intent", "strategy", "response"))
    assert turn["instruction"]
    timings = turn["timings_ms"]
    for stage in ("perception", "reasoning", "instruction", "talker"):
        assert timings[stage] > 0
    assert 0 < timings["first_audio"] <= timings["total"]
    audio, rate = sf.read(tmp_path / "reply.wav", dtype="int16")
    assert rate == 22050 and audio.size / rate > 1.0
    # The waterfall shows every stage with its time.
    for label in ("perception", "reasoning", "instruction", "talker #0", "first audio"):
        assert label in run.stdout
    assert run.stderr.strip() == "", "no library chatter on a clean run"


@pytest.mark.parametrize("kind", ["empty", "not_media", "no_audio", "truncated"])
def test_cli_rejects_unusable_files_at_once(bad_media, kind, tmp_path):
    run = subprocess.run([sys.executable, "-m", "emoomni", "chat", str(bad_media[kind]), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.startswith("emoomni: ") and run.stderr.strip().count("\n") == 0
    assert not (tmp_path / "turn.json").exists()


def test_cli_missing_file_exits_2(tmp_path):
    run = subprocess.run([sys.executable, "-m", "emoomni", "chat", str(tmp_path / "nope.mp4")], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2 and "no such file" in run.stderr


def test_embedded_agent_on_all_clips_survives_bad_input(shared_media, bad_media):
    """Through the Agent port (LocalAgent over the EmbeddedAgent), as the web demo and `emoomni live` use it: clip
    turns, the talker list and a typed live turn."""
    async def scenario():
        results = {}
        async with EmbeddedAgent(load_config(env={})) as agent:
            port = LocalAgent(agent)
            for name in (ENGLISH_CLIP, "no_face", *MANDARIN_CLIPS):
                path = bad_media[name] if name == "no_face" else shared_media / name
                request = agent_pb2.ConverseRequest(media=media_pb2.MediaInput(path=str(path)))
                result = TurnResult()
                try:
                    async for event in port.converse(request):
                        result.add(event)
                    results[name] = result
                except TurnFailed as exc:
                    results[name] = exc
            results["talkers"] = await port.talkers()
            async with port.session(session_config(16000)) as session:
                await session.text("Hi, I just got back from a long walk.")
                async for event in session.events():
                    if event.WhichOneof("event") == "turn" and event.turn.WhichOneof("event") == "done":
                        results["typed"] = event.turn.done.ecot.response
                        await session.end()
        return results

    results = asyncio.run(scenario())
    assert any(t.active for t in results["talkers"].talkers) and len(results["talkers"].talkers) >= 2
    assert results["typed"].strip() and results["typed"].isascii()
    failed = results["no_face"]
    assert isinstance(failed, TurnFailed) and failed.code == "INVALID_ARGUMENT" and "no face" in str(failed)
    for clip in (ENGLISH_CLIP, *MANDARIN_CLIPS):
        result = results[clip]
        assert isinstance(result, TurnResult) and result.done is not None, clip
        turn = result.to_json()
        assert turn["perception"]["language"] == ("en" if clip == ENGLISH_CLIP else "zh")
        assert turn["ecot"]["response"] and result.audio.size > result.sample_rate
        # The default brain answers in the language heard (issue 15): Han characters and no Latin letters for
        # Mandarin, plain ASCII for English.
        reply = turn["ecot"]["response"]
        if clip == ENGLISH_CLIP:
            assert reply.isascii(), reply
        else:
            assert re.search(r"[\u4e00-\u9fff]", reply) and not re.search(r"[A-Za-z]", reply), reply
