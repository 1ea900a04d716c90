"""Perception on the real clips with the real packaged models, and every kind of bad input."""

import pytest

from conftest import BAD_MEDIA_REASONS, MANDARIN_CLIPS
from emoomni.core.config import load_config
from emoomni.core.media import MediaError
from emoomni.services.perception.core import PerceptionCore


@pytest.fixture(scope="module")
def core():
    return PerceptionCore(load_config(env={}))


def test_english_clip_transcript_face_and_prosody(core, english_clip):
    result = core.perceive(str(english_clip))
    text = result.transcript.text.lower()
    assert result.transcript.language == "en"
    assert "burial record" in text and "great aunt" in text
    words = result.transcript.words
    assert len(words) >= 15 and all(w.end_s >= w.start_s for w in words)
    assert words[-1].end_s <= result.media_duration_s + 0.5
    assert result.face.frames_sampled == 8 and result.face.frames_with_face >= 3
    assert result.face.dominant_expression in {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    prosody = result.prosody
    assert 80 < prosody.pitch_median_hz < 400 and prosody.pitch_p10_hz < prosody.pitch_p90_hz
    assert -60 < prosody.energy_mean_dbfs < 0
    assert 1.0 < prosody.speech_rate_wps < 8.0
    modalities = {c.modality for c in result.cues}
    assert modalities == {"speech", "face", "voice"}
    assert "burial record" in result.cue_summary


@pytest.mark.parametrize("clip", MANDARIN_CLIPS)
def test_mandarin_clips_are_recognised_as_chinese_with_an_english_rendering(core, shared_media, clip):
    result = core.perceive(str(shared_media / clip))
    assert result.transcript.language == "zh"
    assert sum("\u4e00" <= ch <= "\u9fff" for ch in result.transcript.text) >= 8
    assert result.transcript.english_translation.isascii() and len(result.transcript.english_translation) > 10
    assert "in English" in result.cues[0].text


def test_inline_bytes_give_the_same_transcript_as_a_path(core, english_clip):
    by_path = core.perceive(str(english_clip))
    by_bytes = core.perceive(data=english_clip.read_bytes())
    assert by_bytes.transcript.text == by_path.transcript.text


def test_a_voice_only_clip_is_heard_and_says_no_face_was_seen(core, bad_media):
    """A phone call, a voice message, a robot without a camera: no picture at all is not a refusal (a picture
    without a face still is, unless the caller allows it)."""
    result = core.perceive(str(bad_media["audio_only"]))
    assert "burial record" in result.transcript.text and result.face.frames_with_face == 0
    assert any(c.modality == "face" and c.brief == "no face seen" for c in result.cues)
    assert result.warnings == ["a voice-only clip (no picture); the analysis rests on voice and words"]
    assert "No face was seen" in result.cue_summary


@pytest.mark.parametrize("kind", sorted(BAD_MEDIA_REASONS))
def test_bad_input_gets_a_clear_reason(core, bad_media, kind):
    with pytest.raises(MediaError, match=BAD_MEDIA_REASONS[kind]):
        core.perceive(str(bad_media[kind]))


def test_size_and_duration_limits(english_clip):
    small = load_config(env={})
    small.limits.max_media_bytes = 1000
    core = PerceptionCore.__new__(PerceptionCore)  # decode-only: no models needed for the limits
    core.cfg = small
    with pytest.raises(MediaError, match="over the"):
        core.decode(str(english_clip), None)
    short = load_config(env={})
    short.limits.max_media_duration_s = 2.0
    core.cfg = short
    with pytest.raises(MediaError, match=r"lasts 5\.\d s, over the 2 s limit"):
        core.decode(str(english_clip), None)


def test_a_cancelled_turn_stops_its_perception_part_way(core, english_clip):
    """Issue 25, finding 5: a cancelled or timed-out turn's thread stops at its next step (after the decode,
    between ASR segments) instead of running on for nobody."""
    import threading
    import time

    from emoomni.services.perception.backends.interface import TurnCancelled

    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    with pytest.raises(TurnCancelled):
        core.perceive(str(english_clip), stop=stop)
    assert time.monotonic() - started < 1.0, "stopped right after the decode, before ASR"
    core.perceive(str(english_clip), stop=threading.Event())  # an unset stop changes nothing
