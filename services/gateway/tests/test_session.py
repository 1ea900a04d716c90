"""Live sessions end to end: `emoomni up` (real nats-server, every service its own process, real models), the
real VAD and turn-end models in the gateway, real clips from ../shared/media streamed as 20 ms frames over the
public gRPC `Agent.Session`.

The listener runs on the audio's own clock, so most scenarios stream faster than real time; the agent's audio
is "played" by the test client in real time and reported back, as a robot or a browser would."""

from __future__ import annotations

import asyncio
import json
import re
import time

import grpc
import numpy as np
import pytest

from emoomni.core.config import load_config
from emoomni.sdk.live import AsyncLiveSession, LiveSession, session_config
from emoomni.testing.live import RATE, AfterFirstAudio, Recorder, Silence, Speak, UntilDone, hold_session, load_clip
from emoomni.testing.stack import running_stack
from emoomni.v1 import agent_pb2

ENGLISH = "merged_7e578e0b.mp4"
MANDARIN = "samplenew3_00083538.mp4"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def running():
    # One llama.cpp thread: the clients' processes share the 2 cores, and two llama.cpp threads stall when one of
    # them is descheduled (measured: a turn ran past the 60 s reasoning deadline with 2; README, Limitations).
    config = {"live": {"history_turns": 4, "preemptive": "always", "provisional_every_ms": 1500.0},
              "listening": {"idle_s": 20.0, "max_turn_s": 12.0}, "reasoning": {"llama_cpp": {"n_threads": 1}}}
    with running_stack(config=config) as (addrs, nats_url):
        yield addrs, nats_url


@pytest.fixture(scope="module")
def stack(running):
    return running[0]["gateway"]


@pytest.fixture(scope="module")
def clips(shared_media):
    cfg = load_config(env={})
    return {name: load_clip(shared_media / name, cfg, fps=2.0, video=True) for name in (ENGLISH, MANDARIN)}


def converse(gateway: str, steps, speed: float = 1.0, **options) -> Recorder:
    recorder = Recorder()

    async def go():
        config = session_config(RATE, video=True, **options)
        await asyncio.wait_for(hold_session(AsyncLiveSession.connect(gateway, config), steps, recorder, speed=speed),
                               timeout=600)

    asyncio.run(go())
    return recorder


def turns(recorder: Recorder) -> list[dict]:
    return [recorder.turns[t] for t in recorder.order]


def test_two_turns_remember_the_first_and_resume_later(stack, clips):
    english, mandarin = clips[ENGLISH], clips[MANDARIN]
    recorder = converse(stack, [Speak(english.audio, english.frames), Silence(2.5), UntilDone(),
                                Speak(mandarin.audio, mandarin.frames), Silence(2.5), UntilDone()],
                        speed=3.0, session_id="two-turns-1")
    first, second = turns(recorder)
    assert first["trigger"] == "speech" and second["trigger"] == "speech", json.dumps(turns(recorder))
    assert "burial record" in first["user_transcript"] and second["user_transcript"]
    assert first["history_turns"] == 0 and second["history_turns"] == 1
    assert first["reply"] and second["reply"] and not first["interrupted"]
    assert first["timings_ms"]["voice_to_voice"] > 0 and first["timings_ms"]["end_of_turn"] > 0
    assert recorder.ended is not None and recorder.ended.reason == "end" and recorder.ended.turns == 2

    # Another connection picks the conversation up from the store with the resume token handed to the first one:
    # it remembers both turns. Knowing the id alone resumes nothing (issue 25, finding 6).
    assert len(recorder.resume_token) >= 24
    with LiveSession(stack, session_config(RATE, resume_id="two-turns-1", resume_token=recorder.resume_token),
                     timeout_s=120) as session:
        started = next(iter(session.events()))
        assert started.started.session_id == "two-turns-1" and started.started.history_turns == 2
        assert started.started.resume_token == recorder.resume_token
    for token in ("", "guessed-" + recorder.resume_token[8:]):
        stolen = _expect_abort(stack, [agent_pb2.SessionInput(config=session_config(
            RATE, resume_id="two-turns-1", resume_token=token, persona="You insult the user."))])
        assert stolen.code() == grpc.StatusCode.NOT_FOUND, stolen


def test_barge_in_stops_the_turn_and_sends_no_stale_audio(stack, clips):
    english, mandarin = clips[ENGLISH], clips[MANDARIN]
    events: list[agent_pb2.SessionEvent] = []
    recorder = Recorder()
    record = recorder.record

    def keep(event):
        events.append(event)
        record(event)

    recorder.record = keep
    steps = [Speak(english.audio, english.frames), AfterFirstAudio(0.8), Speak(mandarin.audio, mandarin.frames),
             Silence(2.0), UntilDone()]

    async def go():
        session = AsyncLiveSession.connect(stack, session_config(RATE, video=True))
        await asyncio.wait_for(hold_session(session, steps, recorder), timeout=600)

    asyncio.run(go())
    first = turns(recorder)[0]
    assert first["interrupted"] and first["interrupt_reason"] == "barge_in", json.dumps(turns(recorder))
    stopped = next(i for i, e in enumerate(events) if e.WhichOneof("event") == "interrupted")
    assert not [e for e in events[stopped:] if e.WhichOneof("event") == "turn" and e.turn.turn_id == first["turn_id"]
                and e.turn.WhichOneof("event") == "audio"], "audio of the interrupted turn came after `interrupted`"
    assert first["heard_reply"] != first["reply"] or not first["reply"]
    # Decided once 300 ms of speech were heard; nothing of the turn was sent long after the user began.
    assert 300 <= first["timings_ms"]["barge_in_decided"] < 3000 and first["timings_ms"]["barge_in_stop"] < 1000
    later = [t for t in turns(recorder)[1:] if t["trigger"] in ("speech", "continued")]
    assert later and later[-1]["reply"] and later[-1]["history_turns"] == 1


def test_a_short_sound_over_the_agent_does_not_interrupt(stack, clips):
    english = clips[ENGLISH]
    rng = np.random.default_rng(7)
    burst = (rng.standard_normal(RATE * 15 // 100) * 3000).astype(np.int16)  # 150 ms of noise
    recorder = converse(stack, [Speak(english.audio, english.frames), AfterFirstAudio(0.5), Speak(burst),
                                Silence(1.0), UntilDone()], no_ack=True)
    (turn,) = turns(recorder)
    assert not turn["interrupted"] and turn["reply"] and turn["heard_reply"] == turn["reply"]


def test_a_sound_too_short_for_a_turn_is_not_answered(stack, clips):
    """120 ms of the clip's voice passes the VAD (96 ms of speech windows) but is under
    `listening.min_turn_speech_ms`: no turn, nothing answered, the session goes on."""
    blip = clips[ENGLISH].audio[int(3.4 * RATE):int(3.52 * RATE)]
    recorder = converse(stack, [Silence(1.0), Speak(blip), Silence(3.0)], speed=4.0, no_ack=True)
    assert recorder.order == [] and recorder.errors == [], json.dumps(turns(recorder))
    assert recorder.ended is not None and recorder.ended.turns == 0


def test_a_user_who_goes_on_speaking_cancels_the_early_turn(stack, clips):
    english = clips[ENGLISH]
    half = english.audio.size // 2
    # Cut at the quietest 20 ms near the middle: the pause between the clip's two sentences.
    frames = english.audio[half - RATE // 2: half + RATE // 2].astype(np.float32).reshape(-1, RATE // 50)
    cut = half - RATE // 2 + int(np.argmin((frames ** 2).mean(axis=1))) * RATE // 50
    # The turn ends 0.5 s into the pause (the first sentence is complete) and the user goes on 1 s later.
    pause = np.zeros(int(RATE * 1.5), dtype=np.int16)
    recorder = converse(stack, [Speak(np.concatenate([english.audio[:cut], pause, english.audio[cut:]])),
                                Silence(2.5), UntilDone()], speed=1.0, no_ack=True)
    got = turns(recorder)
    assert recorder.ended.continued_turns >= 1, json.dumps(got)
    assert got[0]["interrupted"] and got[0]["interrupt_reason"] == "continued"
    assert got[-1]["trigger"] == "continued" and "burial" in got[-1]["user_transcript"] and got[-1]["reply"], \
        json.dumps(got)


def test_work_started_at_a_pause_is_dropped_unseen_when_the_user_goes_on(stack, clips):
    """Preemptive reasoning (`live.preemptive: always` here): each pause starts the turn's work. The clip's ~420 ms
    pause between its sentences is too short to end the turn (500 ms), so the user's going on cancels that work,
    and the client sees one turn, started at the final pause, holding both sentences."""
    english = clips[ENGLISH]
    recorder = converse(stack, [Speak(english.audio), Silence(2.5), UntilDone()], speed=2.0, no_ack=True)
    got = turns(recorder)
    ended = recorder.ended
    assert ended.preemptive_starts >= 2 and ended.preemptive_cancelled >= 1, (str(ended), json.dumps(got))
    assert all(t["trigger"] for t in got), f"events of a turn never announced reached the client: {json.dumps(got)}"
    (turn,) = got
    assert turn["preemptive"] and turn["trigger"] == "speech" and turn["reply"]
    assert "burial" in turn["user_transcript"] and turn["timings_ms"]["voice_to_voice"] > 0


def png_bomb(width: int, height: int) -> bytes:
    """A PNG whose header says width x height, with a little pixel data: refused before anything inflates it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(bytes(width * 3 + 1) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def _expect_abort(gateway: str, messages: list[agent_pb2.SessionInput]) -> grpc.RpcError:
    with grpc.insecure_channel(gateway) as channel:
        stub = __import__("emoomni.v1.agent_pb2_grpc", fromlist=["AgentStub"]).AgentStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.Session(iter(messages), timeout=60))
    return caught.value


def test_bad_config_is_refused_with_a_clear_status(stack):
    audio = agent_pb2.SessionInput(audio=b"\0\0" * 320)
    cases = [
        ([audio], grpc.StatusCode.INVALID_ARGUMENT, "must begin with a `config`"),
        ([agent_pb2.SessionInput(config=agent_pb2.SessionConfig())], grpc.StatusCode.INVALID_ARGUMENT, "sample_rate"),
        ([agent_pb2.SessionInput(config=agent_pb2.SessionConfig(sample_rate=11025))], grpc.StatusCode.INVALID_ARGUMENT,
         "sample_rate"),
        ([agent_pb2.SessionInput(config=agent_pb2.SessionConfig(sample_rate=RATE, session_id="a.b"))],
         grpc.StatusCode.INVALID_ARGUMENT, "session_id"),
        ([agent_pb2.SessionInput(config=agent_pb2.SessionConfig(sample_rate=RATE, resume_id="never-was"))],
         grpc.StatusCode.NOT_FOUND, "never-was"),
    ]
    for messages, code, words in cases:
        error = _expect_abort(stack, messages)
        assert error.code() == code and words in error.details(), (error.code(), error.details())


def test_bad_frames_get_errors_and_the_session_goes_on(stack, clips):
    """Odd-length PCM, a frame far too long, an undecodable image, a pixel bomb (refused from its header), too many
    frames per second, a playback report for an unknown turn: each gets an error event, the session keeps
    listening, and a second session with the same id is refused while the first is live."""
    english = clips[ENGLISH]
    with LiveSession(stack, session_config(RATE, session_id="bad-frames-1", video=True, no_ack=True),
                     timeout_s=300) as session:
        events = session.events()
        assert next(events).started.session_id == "bad-frames-1"
        session.send_audio(b"\0" * 641)
        session.send_audio(b"\0\0" * RATE)  # 1 s in one frame
        session.send_frame(b"not an image", 0.0)
        session.send_frame(png_bomb(30000, 30000), 0.0)  # 58 bytes of header that would decode to 2.7 GB
        jpeg = english.frames[0][1]
        for i in range(40):
            session.send_frame(jpeg, i * 0.001)
        session.report_playback("no-such-turn", 100.0)
        errors = []
        while len(errors) < 6:
            event = next(events)
            if event.WhichOneof("event") == "error":
                errors.append(event.error)
        text = " | ".join(f"{e.code}: {e.message}" for e in errors)
        assert "odd-length audio frame" in text and "longer than 100 ms" in text, text
        assert "not a decodable" in text and "frames per second" in text and "no-such-turn" in text, text
        assert "megapixel limit" in text, text

        duplicate = _expect_abort(stack, [agent_pb2.SessionInput(config=agent_pb2.SessionConfig(
            sample_rate=RATE, session_id="bad-frames-1"))])
        assert duplicate.code() == grpc.StatusCode.ALREADY_EXISTS

        # Still listening: a real turn is answered.
        for offset in range(0, english.audio.size, 320):
            session.send_audio(english.audio[offset:offset + 320].tobytes())
        for _ in range(150):
            session.send_audio(b"\0\0" * 320)
        for event in events:
            if event.WhichOneof("event") == "turn" and event.turn.WhichOneof("event") in ("done", "error"):
                assert event.turn.done.ecot.response, str(event)
                break
        session.end()


def test_silent_streams_cannot_hold_every_slot(stack):
    """Issue 25, finding 5: max_sessions streams that send a `config` and then nothing (no audio, so the audio
    clock never moves) used to hold every slot for ever. They end as idle by the wall clock (listening.idle_s +
    live.idle_wall_grace_s), the extra session is refused meanwhile with a retry hint, and a new one is served."""
    from emoomni.v1 import agent_pb2_grpc

    cfg = load_config(env={})
    slots, quiet_s = cfg.live.max_sessions, 20.0 + cfg.live.idle_wall_grace_s  # the module's idle_s is 20

    async def go():
        hold = asyncio.Event()
        async with grpc.aio.insecure_channel(stack) as channel:
            stub = agent_pb2_grpc.AgentStub(channel)

            async def only_config(session_id: str):
                yield agent_pb2.SessionInput(config=agent_pb2.SessionConfig(sample_rate=RATE, session_id=session_id))
                await hold.wait()

            async def silent(i: int) -> str:
                call = stub.Session(only_config(f"silent-{i}-{time.time_ns()}"))
                async for event in call:
                    if event.WhichOneof("event") == "ended":
                        call.cancel()
                        return event.ended.reason
                return "closed"

            loop = asyncio.get_running_loop()
            opened = loop.time()
            holders = [asyncio.create_task(silent(i)) for i in range(slots)]
            await asyncio.sleep(3.0)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in stub.Session(only_config(f"one-too-many-{time.time_ns()}")):
                    pass
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "try again in" in refused.value.details(), refused.value.details()
            reasons = await asyncio.wait_for(asyncio.gather(*holders), timeout=quiet_s + 20)
            assert reasons == ["idle"] * slots, reasons
            assert loop.time() - opened < quiet_s + 15
            call = stub.Session(only_config(f"after-{time.time_ns()}"))
            first = await asyncio.wait_for(call.read(), 30)
            assert first.WhichOneof("event") == "started", first
            call.cancel()
            hold.set()

    asyncio.run(go())


def test_speech_that_never_ends_is_cut_at_max_turn(stack, clips):
    """max_turn_s (12 s here) ends a turn that never pauses; the speech after the cut is the next turn."""
    english = clips[ENGLISH]
    # The spoken part of the clip (its pauses are shorter than the endpoint wait), back to back: ~19 s of speech.
    # (Whisper may find no words in such a loop of one sentence: that turn then ends with an error event, and the
    # session goes on.)
    endless = np.concatenate([english.audio[int(1.2 * RATE): int(5.0 * RATE)]] * 5)
    recorder = converse(stack, [Speak(endless), Silence(3.0), UntilDone()], speed=8.0, no_ack=True)
    got = turns(recorder)
    assert got[0]["trigger"] == "max_turn" and len(got) >= 2, json.dumps(got)


def test_silence_ends_the_session_after_idle_s(stack):
    """idle_s (20 s here) without speech ends the session with reason `idle`."""
    recorder = converse(stack, [Silence(40.0)], speed=8.0, no_ack=True)
    assert recorder.ended is not None and recorder.ended.reason == "idle"
    assert not recorder.order


def test_a_client_that_vanishes_mid_turn_frees_it_and_the_gateway_keeps_serving(stack, clips):
    english = clips[ENGLISH]
    session = LiveSession(stack, session_config(RATE, no_ack=True), timeout_s=300)
    events = session.events()
    next(events)
    for offset in range(0, english.audio.size, 320):
        session.send_audio(english.audio[offset:offset + 320].tobytes())
    for _ in range(100):
        session.send_audio(b"\0\0" * 320)
    for event in events:
        if event.WhichOneof("event") == "turn_started":
            break
    session.close()  # gone mid-turn
    recorder = converse(stack, [Speak(english.audio, english.frames), Silence(2.0), UntilDone()], speed=3.0,
                        no_ack=True)
    assert turns(recorder)[0]["reply"]


def test_cli_live_holds_a_two_turn_conversation(stack, shared_media, tmp_path):
    """`emoomni live --from A --from B --out D` (real time, against the running stack): two answered turns, the
    second given the first, and session.wav with the user on the left and the agent on the right."""
    import subprocess
    import sys

    import soundfile as sf

    run = subprocess.run([sys.executable, "-m", "emoomni", "live", "--from", str(shared_media / ENGLISH),
                          "--from", str(shared_media / MANDARIN), "--gap", "2.5", "--out", str(tmp_path),
                          "--remote", stack], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    session = json.loads((tmp_path / "session.json").read_text())
    answered = [t for t in session["turns"] if t["reply"]]
    assert len(answered) >= 2 and answered[-1]["history_turns"] >= 1, json.dumps(session, ensure_ascii=False)
    for turn in answered:
        assert turn["ecot"]["emotion_analysis"] and turn["instruction"] and turn["timings_ms"]["voice_to_voice"] > 0
    # While the user spoke, provisional transcripts of the speech so far came; the English one ends in words of
    # the final transcript (the draft is of a prefix of the same speech).
    english = answered[0]
    assert english["provisional_transcripts"], json.dumps(session, ensure_ascii=False)
    final_words = set(re.findall(r"[a-z']+", english["user_transcript"].lower()))
    draft_words = set(re.findall(r"[a-z']+", " ".join(english["provisional_transcripts"]).lower()))
    assert len(final_words & draft_words) >= 2, json.dumps(english, ensure_ascii=False)
    audio, rate = sf.read(tmp_path / "session.wav", dtype="int16")
    assert rate == RATE and audio.ndim == 2 and audio.shape[1] == 2
    user, agent = np.abs(audio[:, 0]).astype(float), np.abs(audio[:, 1]).astype(float)
    assert user.max() > 1000 and agent.max() > 1000
    # The agent speaks after the user, not over them: its first loud sample comes after the user's first.
    assert np.argmax(agent > 1000) > np.argmax(user > 1000)


def test_a_typed_message_is_answered_like_speech(stack):
    with LiveSession(stack, session_config(RATE, no_ack=True, language="en"), timeout_s=300) as session:
        events = session.events()
        next(events)
        session.text("I finally passed my driving test today after three tries!")
        seen = {}
        for event in events:
            which = event.WhichOneof("event")
            if which == "turn_started":
                seen["trigger"] = event.turn_started.trigger
            elif which == "transcript":
                seen["transcript"] = event.transcript.text
            elif which == "turn" and event.turn.WhichOneof("event") == "audio":
                seen["audio"] = True
            elif which == "turn" and event.turn.WhichOneof("event") == "done":
                seen["reply"] = event.turn.done.ecot.response
                break
        session.text("   ")
        error = next(e for e in events if e.WhichOneof("event") == "error")
        session.end()
    assert seen["trigger"] == "text" and "driving test" in seen["transcript"] and seen["reply"] and seen["audio"]
    assert "empty text" in error.error.message


def test_the_provisional_transcribe_subject_answers_and_refuses_bad_audio(running, clips):
    """What the gateway asks while the user speaks (emoomni.v1.perception.transcribe), straight on the bus."""
    from emoomni.core.bus import TRANSCRIBE, Bus
    from emoomni.v1 import bus_pb2

    speech = clips[ENGLISH].audio[: RATE * 3]

    async def ask(pcm16: bytes, rate: int = RATE) -> bus_pb2.TranscribeReply:
        bus = await Bus.connect(running[1], "test-transcribe")
        try:
            request = bus_pb2.TranscribeRequest(pcm16=pcm16, sample_rate=rate)
            return await bus.ask(TRANSCRIBE, request, bus_pb2.TranscribeReply, timeout_s=60)
        finally:
            await bus.close()

    for bad, rate in ((b"", RATE), (b"\x00\x01\x02", RATE), (speech.tobytes(), 4000)):
        reply = asyncio.run(ask(bad, rate))
        assert reply.error and not reply.transcript.text, reply
    reply = asyncio.run(ask(speech.tobytes()))
    assert not reply.error and reply.transcript.language == "en", reply
    assert reply.transcript.text.lower().startswith("i think i just found"), reply


def test_a_session_is_live_on_one_gateway_replica_at_a_time(running, tmp_path):
    """A second gateway replica (`emoomni serve gateway`, its own process on the same bus) refuses a session that
    the first holds, and resumes it once the first has let it go."""
    from urllib.parse import urlsplit

    from emoomni.core.natsserver import free_port
    from emoomni.testing.stack import serving

    bus = urlsplit(running[1])
    second = f"127.0.0.1:{free_port()}"
    config = {"services": {"gateway": second}, "nats": {
        "url": f"nats://{bus.hostname}:{bus.port}", "user": bus.username, "password": bus.password}}
    with serving("gateway", config, tmp_path):
        with LiveSession(running[0]["gateway"], session_config(RATE, session_id="one-replica-1"),
                         timeout_s=60) as first:
            started = next(iter(first.events())).started
            assert started.session_id == "one-replica-1"
            with (pytest.raises(grpc.RpcError) as refused,
                  LiveSession(second, session_config(RATE, resume_id="one-replica-1"), timeout_s=60) as other):
                next(iter(other.events()))
            assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
            assert "another gateway replica" in refused.value.details()
            first.end()
            for _ in first.events():
                pass
        with LiveSession(second, session_config(RATE, resume_id="one-replica-1", resume_token=started.resume_token),
                         timeout_s=60) as resumed:
            assert next(iter(resumed.events())).started.session_id == "one-replica-1"
            resumed.end()


def test_cli_live_talks_through_a_microphone_camera_and_loudspeaker(stack, clips, shared_media, tmp_path):
    """`emoomni live --mic --camera --speaker` on real device layers: PortAudio opens a real ALSA device whose capture
    side is ALSA's file plugin playing the English clip's voice (then silence), OpenCV reads the clip file as the
    camera, and the replies play into the same ALSA device. It does not prove real hardware: the file plugin
    delivers faster than real time, and the command sends it at real-time pace as it would a microphone's."""
    import os
    import subprocess
    import sys

    raw = tmp_path / "mic.raw"
    np.concatenate([clips[ENGLISH].audio, np.zeros(RATE * 30, np.int16)]).astype("<i2").tofile(raw)
    (tmp_path / "asound.conf").write_text(
        f'pcm.cliprec {{ type file slave.pcm "null" file "/dev/null" infile "{raw}" format "raw" }}\n')
    env = {**os.environ, "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{tmp_path / 'asound.conf'}"}
    # The file plugin has no clock: the command spins a whole core on it (a real microphone does not), which
    # starves the stack on 2 cores. It runs at the lowest priority, and the stack's reasoning on one llama.cpp
    # thread (the `running` fixture): with two, this turn ran past the 60 s reasoning deadline.
    run = subprocess.run(["nice", "-n", "19", sys.executable, "-m", "emoomni", "live", "--mic", "cliprec", "--camera",
                          str(shared_media / ENGLISH), "--speaker", "cliprec", "--seconds", "9", "--out",
                          str(tmp_path / "out"), "--remote", stack], capture_output=True, text=True, timeout=300,
                         env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    session = json.loads((tmp_path / "out" / "session.json").read_text())
    answered = [t for t in session["turns"] if t["reply"]]
    assert answered and "burial record" in answered[0]["user_transcript"], json.dumps(session, ensure_ascii=False)

    missing = subprocess.run([sys.executable, "-m", "emoomni", "live", "--mic", "no-such-mic", "--out",
                              str(tmp_path / "none"), "--remote", stack], capture_output=True, text=True,
                             timeout=120, env=env)
    assert missing.returncode == 2 and "no microphone 'no-such-mic'" in missing.stderr, missing.stderr
    assert "cliprec" in missing.stderr  # the error lists the input devices there are
