"""Listening for live sessions on real clips and the real models (Silero VAD, Smart Turn v3): where speech starts
and stops, when a turn ends (and when it must not), framing and sample rates, barge-in length, max turn, idle,
bad input. Audio goes in as PCM16 frames, as a session's client sends it, faster than real time."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ENGLISH_CLIP, MANDARIN_CLIPS, clip_audio
from emoomni.core.config import ListeningConfig
from emoomni.services.gateway.listening import (
    Idle,
    ListeningInputError,
    SpeechStarted,
    SpeechStopped,
    TurnDetector,
    TurnEnded,
    load_models,
)

RATE = 16000
CONFIG = ListeningConfig()
LOUD_CLIP = MANDARIN_CLIPS[0]   # 5.1 s of clear speech, from its first 0.1 s to its end
NATIVE_48K_CLIP = MANDARIN_CLIPS[1]   # recorded at 48 kHz


@pytest.fixture(scope="module")
def models():
    return load_models()


@pytest.fixture(scope="module")
def clips(shared_media) -> dict[str, np.ndarray]:
    return {name: clip_audio(shared_media / name, RATE) for name in (ENGLISH_CLIP, *MANDARIN_CLIPS)}


def silence(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(round(seconds * rate), dtype=np.float32)


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def stream(detector: TurnDetector, audio: np.ndarray, frame_ms: float | list[float] = 20,
           finish: bool = False) -> tuple[list, float]:
    """Feed `audio` in frames of `frame_ms` (or a repeating list of lengths); returns the events and the most
    speech_ms seen after any frame."""
    data, rate = pcm16(audio), detector.sample_rate
    lengths = frame_ms if isinstance(frame_ms, list) else [frame_ms]
    events, most_speech, offset, i = [], 0.0, 0, 0
    while offset < len(data):
        size = 2 * round(lengths[i % len(lengths)] * rate / 1000)
        events += detector.feed(data[offset:offset + size])
        most_speech = max(most_speech, detector.speech_ms)
        offset, i = offset + size, i + 1
    if finish:
        events += detector.finish()
    return events, most_speech


def of(kind, events):
    return [e for e in events if isinstance(e, kind)]


def test_speech_start_and_stop_are_found_around_inserted_silence(models, clips):
    """Clip + 2 s of silence + the same clip: two speech segments, each where the clip's speech is."""
    clip = clips[LOUD_CLIP]
    clip_ms = len(clip) / RATE * 1000
    events, _ = stream(TurnDetector(models, RATE), np.concatenate([clip, silence(2), clip, silence(3)]))
    starts, stops = of(SpeechStarted, events), of(SpeechStopped, events)
    assert len(starts) == len(stops) == 2, events
    assert 0 <= starts[0].start_ms <= 300
    second_onset = starts[1].start_ms - (clip_ms + 2000)
    assert abs(second_onset - starts[0].start_ms) <= 64, "the same speech starts at the same place in both copies"
    for stop, clip_end in zip(stops, (clip_ms, 2 * clip_ms + 2000), strict=True):
        assert clip_end - 300 <= stop.end_ms <= clip_end + 100, (stop, clip_end)
        assert stop.at_ms - stop.end_ms >= CONFIG.min_silence_ms
    assert [e.new_turn for e in starts] == [True, True]
    assert len(of(TurnEnded, events)) == 2


def test_a_whispered_onset_below_the_vad_threshold_is_in_the_turn(models, clips):
    """The English clip opens with a whisper ("I think I just found...") from ~0.2 s that the VAD scores 0.1-0.5
    until it passes 0.5 at ~1.4 s: the turn's audio still reaches back to the whisper, not only the pre-roll."""
    clip = clips[ENGLISH_CLIP]
    events, _ = stream(TurnDetector(models, RATE), np.concatenate([clip, silence(3)]))
    (turn,) = of(TurnEnded, events)
    assert turn.start_ms > 1200, "the VAD itself hears the speech late"
    assert turn.audio_start_ms == 0 < turn.start_ms - CONFIG.pre_roll_ms - 500, turn

    # Never before the previous turn's speech: the same clip twice, 1 s apart, gives two turns that do not overlap.
    events, _ = stream(TurnDetector(models, RATE), np.concatenate([clip, silence(1), clip, silence(3)]))
    first, second = of(TurnEnded, events)
    assert second.audio_start_ms >= first.end_ms


@pytest.mark.parametrize("name", [ENGLISH_CLIP, *MANDARIN_CLIPS])
def test_a_clip_then_silence_is_exactly_one_turn(models, clips, name):
    """One turn per clip; the English clip's two sentences with a ~0.4 s pause between them stay one turn."""
    clip = clips[name]
    clip_ms = len(clip) / RATE * 1000
    audio = np.concatenate([clip, silence(3)])
    events, _ = stream(TurnDetector(models, RATE), audio)
    (turn,) = of(TurnEnded, events)
    assert turn.reason == "complete" and turn.completion_probability >= CONFIG.turn_complete_threshold
    assert clip_ms - 500 <= turn.end_ms <= clip_ms + 100, (turn, clip_ms)
    delay = turn.at_ms - turn.end_ms
    assert CONFIG.endpoint_delay_ms <= delay < CONFIG.endpoint_delay_ms + 64, "ended as soon as the delay allowed"
    # The turn's audio, for perception: from the pre-roll before its onset to the decision, sample for sample.
    assert 0 <= turn.audio_start_ms <= turn.start_ms - CONFIG.pre_roll_ms or turn.audio_start_ms == 0
    sent = np.frombuffer(pcm16(audio), dtype="<i2").astype(np.float32) / 32768.0
    begin = round(turn.audio_start_ms * RATE / 1000)
    assert np.array_equal(turn.audio, sent[begin:round(turn.at_ms * RATE / 1000)])
    assert not of(Idle, events)


def test_turns_one_after_another_each_start_where_the_speech_does(models, clips):
    """A session: a loud turn, 1 s of silence, a quieter speaker, then the English clip. Three turns, each found
    from its onset: the VAD's recurrent state must not carry the first voice into the next turn (before the
    detector restarted it after clear non-speech, the second turn's first second was missed)."""
    order = (LOUD_CLIP, NATIVE_48K_CLIP, ENGLISH_CLIP)
    parts, onsets, position = [], [], 0
    for name in order:
        parts += [clips[name], silence(1)]
        onsets.append(position / RATE * 1000)
        position += len(clips[name]) + RATE
    events, _ = stream(TurnDetector(models, RATE), np.concatenate(parts))
    turns = of(TurnEnded, events)
    assert len(turns) == 3 and all(t.reason == "complete" for t in turns), turns
    for turn, onset in zip(turns, onsets, strict=True):
        assert onset <= turn.start_ms <= onset + 300, (turn, onset)


def mid_sentence_cut(clip: np.ndarray) -> int:
    """A word boundary mid-sentence in the English clip: "Can you help me figure out | what details I should check
    next?" (the perception ASR's faster-whisper word timings put it within 3.84-4.12 s); the cut is the quietest
    10 ms there."""
    lo, hi, hop = round(3.84 * RATE), round(4.12 * RATE), RATE // 100
    energy = [float(np.sum(clip[i:i + hop] ** 2)) for i in range(lo, hi, hop)]
    return lo + hop * int(np.argmin(energy))


@pytest.mark.parametrize("pause_s", [0.4, 0.6])
def test_a_pause_mid_sentence_does_not_end_the_turn(models, clips, pause_s):
    clip = clips[ENGLISH_CLIP]
    cut = mid_sentence_cut(clip)
    pause_end_ms = (cut / RATE + pause_s) * 1000
    audio = np.concatenate([clip[:cut], silence(pause_s), clip[cut:], silence(3)])
    events, _ = stream(TurnDetector(models, RATE), audio)
    (turn,) = of(TurnEnded, events)
    cut_ms = cut / RATE * 1000
    assert turn.at_ms > pause_end_ms + 500 and turn.reason == "complete", "the turn went on past the pause"
    assert turn.start_ms < cut_ms
    at_pause = [s for s in of(SpeechStopped, events) if cut_ms - 400 <= s.end_ms <= pause_end_ms]
    # A 0.4 s pause may be too short to end a VAD segment; where one ends, the turn model calls the turn unfinished.
    assert all(s.completion_probability < CONFIG.turn_complete_threshold for s in at_pause), at_pause
    if pause_s >= 0.6:
        assert at_pause, "a 0.6 s pause ends the speech segment"

    # The first half alone, then silence, does end the turn: later, because it sounded unfinished.
    events, _ = stream(TurnDetector(models, RATE), np.concatenate([clip[:cut], silence(3)]))
    (turn,) = of(TurnEnded, events)
    assert turn.reason == "silence"
    assert CONFIG.endpoint_delay_incomplete_ms <= turn.at_ms - turn.end_ms < CONFIG.endpoint_delay_incomplete_ms + 64


def test_framing_does_not_change_the_events(models, clips, shared_media):
    """10, 32 and 100 ms frames and an irregular mix give identical events and turn audio, also at 48 kHz."""
    audio = np.concatenate([clips[ENGLISH_CLIP], silence(1), clips[NATIVE_48K_CLIP], silence(2.6)])
    runs = [stream(TurnDetector(models, RATE), audio, ms)[0] for ms in (10, 32, 100, [17.5, 93.0, 41.0, 10.0])]
    assert len(of(TurnEnded, runs[0])) == 2
    for run in runs[1:]:
        assert run == runs[0]
        for a, b in zip(of(TurnEnded, run), of(TurnEnded, runs[0]), strict=True):
            assert np.array_equal(a.audio, b.audio)

    high = np.concatenate([clip_audio(shared_media / NATIVE_48K_CLIP, 48000), silence(2.6, 48000)])
    runs = [stream(TurnDetector(models, 48000), high, ms)[0] for ms in (10, [23.0, 100.0, 61.0, 10.5])]
    assert runs[0] == runs[1] and len(of(TurnEnded, runs[0])) == 1


@pytest.mark.parametrize("rate", [48000, 44100, 8000])
def test_declared_rates_are_resampled_to_the_same_timeline(models, shared_media, clips, rate):
    """The 48 kHz clip sent at 48, 44.1 and 8 kHz: the same speech at the same place on the audio clock."""
    at_16k, _ = stream(TurnDetector(models, RATE), np.concatenate([clips[NATIVE_48K_CLIP], silence(2.6)]))
    audio = np.concatenate([clip_audio(shared_media / NATIVE_48K_CLIP, rate), silence(2.6, rate)])
    events, _ = stream(TurnDetector(models, rate), audio)
    for kind in (SpeechStarted, SpeechStopped, TurnEnded):
        (mine,), (reference,) = of(kind, events), of(kind, at_16k)
        assert abs(mine.at_ms - reference.at_ms) <= 64, (mine, reference)
    (turn,) = of(TurnEnded, events)
    assert turn.reason == "complete"
    assert len(turn.audio) == round((turn.at_ms - turn.audio_start_ms) * RATE / 1000)
    assert turn.audio_start_ms <= max(turn.start_ms - CONFIG.pre_roll_ms, 0)


def test_short_sounds_do_not_reach_barge_in_length_and_speech_does(models, clips):
    """Barge-in is measured by speech_ms (default 300 ms in the session): a 150 ms noise burst or a 150 ms piece
    of a word stays well under it; continuing speech passes it within half a second."""
    rng = np.random.default_rng(7)
    noise = (rng.standard_normal(round(0.15 * RATE)) * 0.2).astype(np.float32)
    syllable = clips[LOUD_CLIP][round(0.3 * RATE):round(0.45 * RATE)]
    for burst in (noise, syllable):
        events, most = stream(TurnDetector(models, RATE), np.concatenate([silence(1), burst, silence(1)]))
        assert most < 200, (most, events)
        assert not of(TurnEnded, events) or of(TurnEnded, events)[0].voiced_ms < 200

    detector = TurnDetector(models, RATE)
    events, _ = stream(detector, np.concatenate([silence(1), clips[LOUD_CLIP][:round(1.6 * RATE)]]))
    (start,) = of(SpeechStarted, events)
    assert detector.in_speech and detector.speech_ms >= 300
    assert len(detector.turn_audio()) >= round((detector.position_ms - start.start_ms + CONFIG.pre_roll_ms)
                                               * RATE / 1000)


def test_max_turn_and_idle(models, clips):
    config = ListeningConfig(max_turn_s=2.0, idle_s=1.0)
    speech = clips[LOUD_CLIP][round(0.2 * RATE):round(4.8 * RATE)]   # no pause longer than 0.3 s in it
    events, _ = stream(TurnDetector(models, RATE, config), np.concatenate([silence(2.5), speech, silence(3.5)]))
    idle = of(Idle, events)
    assert [(e.at_ms, e.silent_ms) for e in idle[:2]] == [(1024.0, 1024.0), (2016.0, 2016.0)]
    turns = of(TurnEnded, events)
    assert [t.reason for t in turns[:2]] == ["max_turn", "max_turn"], turns
    first, second = turns[0], turns[1]
    assert first.at_ms - first.start_ms == pytest.approx(2000, abs=32) and first.end_ms == first.at_ms
    assert second.start_ms == first.at_ms, "speech that goes on opens the next turn at the cut"
    assert turns[-1].reason in {"complete", "silence"}
    after = [e for e in idle if e.at_ms > turns[-1].at_ms]
    assert after and after[0].silent_ms == pytest.approx(1000, abs=32), "idle counts from the end of the last turn"


def test_bad_input_is_refused_and_nothing_is_lost(models, clips):
    with pytest.raises(ListeningInputError, match="22050"):
        TurnDetector(models, 22050)
    with pytest.raises(ValueError, match="endpoint_delay_incomplete_ms"):
        ListeningConfig(endpoint_delay_ms=900, endpoint_delay_incomplete_ms=600)
    audio = np.concatenate([clips[LOUD_CLIP][:RATE * 2], silence(0.2)])
    clean, _ = stream(TurnDetector(models, RATE), audio, finish=True)

    detector = TurnDetector(models, RATE)
    data, events, frame = pcm16(audio), [], 2 * 320
    for offset in range(0, len(data), frame):
        for bad, reason in ((b"\x01\x02\x03", "odd-length"), (bytes(2 * 1601), "longer than 100 ms"), (b"", "empty"),
                            ("text", "PCM16 bytes")):
            with pytest.raises(ListeningInputError, match=reason):
                detector.feed(bad)
        events += detector.feed(data[offset:offset + frame])
    events += detector.finish()
    assert events == clean
    with pytest.raises(ListeningInputError, match="after the end"):
        detector.feed(data[:640])
    assert detector.finish() == []
    assert [type(e) for e in clean[-2:]] == [SpeechStopped, TurnEnded] and clean[-1].reason == "stream_ended"


@pytest.mark.slow
def test_smart_turn_features_are_whispers():
    """The turn model's input equals transformers' WhisperFeatureExtractor (what the model was trained on). Marked
    slow: transformers brings torch into the process (10-25 s on 2 busy cores), which listening itself avoids."""
    from faster_whisper.feature_extractor import FeatureExtractor
    from transformers import WhisperFeatureExtractor

    from emoomni.services.gateway.listening.turn_end import whisper_features

    rng = np.random.default_rng(3)
    audio = (np.sin(np.arange(8 * RATE) * 0.05) * 0.3 + rng.standard_normal(8 * RATE) * 0.05).astype(np.float32)
    mine = whisper_features(audio, FeatureExtractor(feature_size=80, hop_length=160, chunk_length=8, n_fft=400))
    reference = WhisperFeatureExtractor(chunk_length=8)(
        audio, sampling_rate=RATE, return_tensors="np", padding="max_length", max_length=8 * RATE, truncation=True,
        do_normalize=True).input_features[0]
    assert mine.shape == reference.shape == (80, 800)
    assert np.abs(mine - reference).max() < 1e-4
