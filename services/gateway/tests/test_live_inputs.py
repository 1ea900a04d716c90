"""What a client may send a live session, checked before anything acts on it: the opening config and camera
frames (real JPEG and PNG headers; bounded whatever their timestamps say). No stack needed."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from emoomni.core.config import StackConfig
from emoomni.services.gateway.admission import Admission, Refused
from emoomni.services.gateway.live.inputs import FrameBuffer, InputRefused, SessionError, check_config
from emoomni.v1 import agent_pb2


def jpeg(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (120, 90, 60)).save(out, "JPEG")
    return out.getvalue()


def opening(**config) -> agent_pb2.SessionInput:
    return agent_pb2.SessionInput(config=agent_pb2.SessionConfig(**config))


@pytest.mark.parametrize(("first", "code", "words"), [
    (None, "INVALID_ARGUMENT", "must begin with a `config`"),
    (agent_pb2.SessionInput(text="hi"), "INVALID_ARGUMENT", "must begin with a `config`"),
    (opening(sample_rate=11025), "INVALID_ARGUMENT", "sample_rate must be one of"),
    (opening(sample_rate=16000, session_id="a", resume_id="b"), "INVALID_ARGUMENT", "not both"),
    (opening(sample_rate=16000, session_id="a.b*"), "INVALID_ARGUMENT", "letters, digits"),
    (opening(sample_rate=16000, language="fr"), "INVALID_ARGUMENT", "'en', 'zh'"),
    (opening(sample_rate=16000, persona="x" * 100_000), "INVALID_ARGUMENT", "persona"),
])
def test_a_bad_opening_is_refused_with_what_is_wrong(first, code, words):
    with pytest.raises(SessionError) as refused:
        check_config(first, StackConfig())
    assert refused.value.code == code and words in str(refused.value)


def test_sessions_are_capped_per_caller_and_per_replica_with_a_retry_hint():
    cfg = StackConfig(live={"max_sessions": 3, "max_sessions_per_caller": 2})
    admission = Admission(cfg.live.max_sessions, cfg.live.max_sessions_per_caller, retry_after_s=35,
                          what="live sessions")
    with admission.hold("ipv4:10.0.0.5"), admission.hold("ipv4:10.0.0.5"):
        with pytest.raises(Refused, match=r"you hold 2 live sessions already .* try again in 35 s"), \
                admission.hold("ipv4:10.0.0.5"):
            pass
        with admission.hold("ipv4:10.0.0.9"), pytest.raises(Refused, match="this gateway holds 3 live sessions"), \
                admission.hold("ipv4:10.0.0.7"):
            pass
    assert not admission.by_caller  # every place given back
    assert check_config(opening(sample_rate=48000), cfg).sample_rate == 48000


def test_frames_are_checked_rate_limited_and_bounded():
    cfg = StackConfig()
    frames = FrameBuffer(cfg, video=True)
    with pytest.raises(InputRefused, match="empty"):
        frames.add(agent_pb2.VideoFrame(image=b"", time_s=0), now=0.0)
    with pytest.raises(InputRefused, match="limit"):
        frames.add(agent_pb2.VideoFrame(image=b"x" * (cfg.live.max_video_frame_bytes + 1), time_s=0), now=0.0)
    with pytest.raises(InputRefused):
        frames.add(agent_pb2.VideoFrame(image=b"not an image", time_s=0), now=0.0)
    with pytest.raises(InputRefused, match="said none would"):
        FrameBuffer(cfg, video=False).add(agent_pb2.VideoFrame(image=jpeg(), time_s=0), now=0.0)
    # a burst over max_video_fps in one second: told once, the rest dropped silently
    told = 0
    for index in range(int(cfg.live.max_video_fps) + 5):
        try:
            frames.add(agent_pb2.VideoFrame(image=jpeg(), time_s=index * 0.01), now=0.5)
        except InputRefused as refused:
            told += 1
            assert refused.code == "RESOURCE_EXHAUSTED"
    assert told == 1 and len(frames.frames) == cfg.live.max_video_fps


def test_frames_whose_time_never_advances_stay_bounded_and_it_is_said_once():
    cfg = StackConfig()
    frames = FrameBuffer(cfg, video=True)
    image, told = jpeg(), 0
    for second in range(frames.frames.maxlen // int(cfg.live.max_video_fps) + 3):
        for _ in range(int(cfg.live.max_video_fps)):
            try:
                frames.add(agent_pb2.VideoFrame(image=image, time_s=0.0), now=second * 1.5)
            except InputRefused as refused:
                told += 1
                assert "oldest are dropped" in str(refused)
    assert len(frames.frames) == frames.frames.maxlen and told == 1


def test_a_turn_gets_the_frames_of_its_speech_timed_from_its_audio():
    frames = FrameBuffer(StackConfig(), video=True)
    for index in range(10):
        frames.add(agent_pb2.VideoFrame(image=jpeg(), time_s=float(index)), now=float(index))
    picked = frames.between(2.5, 5.2, origin_s=3.0)
    assert [round(t, 1) for t, _ in picked] == [0.0, 1.0, 2.0]
