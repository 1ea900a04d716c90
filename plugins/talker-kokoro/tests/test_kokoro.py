"""The Kokoro talker with its real packaged weights, found through its entry point and driven by the talker core."""

import re

import numpy as np
import pytest
from emoomni_talker_kokoro import (
    SAMPLE_RATE,
    assemble_packaged_model,
    split_clauses,
    split_mandarin,
    split_sentences,
    spoken_mandarin,
)

from emoomni.core.config import load_config
from emoomni.services.talker.core import TalkerCore
from emoomni.services.talker.registry import discover
from emoomni.v1 import instruction_pb2

SENTENCE = "Take a slow breath with me, and tell me what happened today."


@pytest.fixture(scope="module")
def core():
    return TalkerCore(load_config(env={}))


@pytest.fixture(scope="module")
def engine(core):
    return core.registry.get("kokoro")


def instruction(**controls):
    return instruction_pb2.AcousticInstruction(controls=instruction_pb2.AcousticControls(**controls))


def speak(core, text, **controls):
    chunks = list(core.speak(text, instruction(**controls), "en", talker="kokoro"))
    return chunks, np.frombuffer(b"".join(c.pcm16 for c in chunks), dtype=np.int16)


def rms(audio):
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))


def median_f0(audio):
    import librosa

    signal = audio.astype(np.float32) / 32768.0
    f0 = librosa.yin(signal, fmin=70, fmax=500, sr=SAMPLE_RATE, frame_length=2048)
    energy = librosa.feature.rms(y=signal, frame_length=2048, hop_length=512)[0][: len(f0)]
    return float(np.median(f0[: len(energy)][energy > 0.5 * np.median(energy)]))


def test_kokoro_is_discovered_through_its_entry_point():
    plugins = discover()
    assert "kokoro" in plugins
    caps = plugins["kokoro"].capabilities
    assert caps.languages == ["en", "zh"] and caps.streaming
    assert set(caps.controls) == {"pitch_scale", "rate_scale", "energy_scale", "gender_hint"}
    for word in ("GPL-3.0", "espeak-ng", "MIT", "Apache-2.0", "misaki"):
        assert word in caps.license


def test_packaged_parts_assemble_once_into_the_verified_model(tmp_path):
    first = assemble_packaged_model(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert first.stat().st_size > 80_000_000 and first.suffix == ".onnx"
    assert assemble_packaged_model(tmp_path) == first and first.stat().st_mtime_ns == stamp, "reused, not rebuilt"
    assert [p.name for p in tmp_path.iterdir()] == [first.name], "no temporary file left behind"


def test_text_is_split_into_sentences_and_long_sentences_into_clauses():
    assert split_sentences('I hear you. That sounds "hard." Okay?') == ["I hear you.", 'That sounds "hard."', "Okay?"]
    long = ("When everything piles up at once, at work and at home, it is easy to feel that nothing you do is "
            "enough; but you are doing more than you think.")
    pieces = split_clauses(long)
    assert len(pieces) >= 2 and " ".join(pieces) == long and all(len(p) >= 25 for p in pieces)
    assert split_clauses("Short, and whole.") == ["Short, and whole."]


def test_speaks_audible_english_of_plausible_length_sentence_by_sentence(core):
    chunks, audio = speak(core, "That is wonderful news. Let's look at it together.")
    assert len(chunks) == 2, "one chunk per sentence"
    assert [c.seq for c in chunks] == [0, 1] and chunks[-1].last and not chunks[0].last
    assert chunks[0].sample_rate == SAMPLE_RATE
    seconds = audio.size / SAMPLE_RATE
    assert 1.5 < seconds < 6.0, seconds
    assert np.abs(audio).max() > 3000, "audible speech, not silence"
    assert np.abs(audio).max() < 0.95 * 32767, "headroom kept"


def test_rate_changes_duration_in_the_right_direction(core):
    _, neutral = speak(core, SENTENCE)
    _, slow = speak(core, SENTENCE, rate_scale=0.7)
    _, fast = speak(core, SENTENCE, rate_scale=1.4)
    assert slow.size > neutral.size * 1.2
    assert fast.size < neutral.size * 0.85


def test_energy_changes_loudness_without_clipping(core):
    _, quiet = speak(core, SENTENCE, energy_scale=0.6)
    _, loud = speak(core, SENTENCE, energy_scale=1.5)
    _, very_loud = speak(core, SENTENCE, energy_scale=4.0)
    assert rms(loud) > rms(quiet) * 2.0
    assert rms(very_loud) > rms(loud)
    assert np.abs(very_loud).max() <= 0.91 * 32767, "loud styles are limited below full scale, never clipped"


def test_pitch_moves_f0_and_keeps_duration(core):
    _, neutral = speak(core, SENTENCE)
    _, low = speak(core, SENTENCE, pitch_scale=0.85)
    _, high = speak(core, SENTENCE, pitch_scale=1.2)
    assert median_f0(high) > median_f0(neutral) * 1.1 > median_f0(low) * 1.1
    for shifted in (low, high):
        assert 0.85 < shifted.size / neutral.size < 1.2, "speed compensation keeps the rate"


def test_gender_hint_picks_a_voice_of_that_gender(core, engine):
    assert engine.voice_for("female") == engine.voice == "jf_alpha"
    assert engine.voice_for("male") == "jm_kumo"
    _, female = speak(core, SENTENCE, gender_hint="female")
    _, male = speak(core, SENTENCE, gender_hint="male")
    assert median_f0(male) < median_f0(female) * 0.8
    assert engine.ignored(instruction(gender_hint="male", emotion="happy").controls) == ["emotion"]


def test_empty_and_unspeakable_text_is_refused(core, engine):
    with pytest.raises(ValueError, match="empty"):
        list(core.speak("   ", instruction(), "en", talker="kokoro"))
    with pytest.raises(ValueError, match="nothing to speak"):
        list(engine.synthesize("...", instruction(), "en"))
    with pytest.raises(ValueError, match="speaks en, zh"):
        list(engine.synthesize("안녕하세요.", instruction(), "ko"))


def test_english_reply_under_another_language_tag_is_still_spoken(engine):
    audio = np.concatenate([a.pcm16 for a in engine.synthesize("I understand.", instruction(), "zh")])
    assert audio.size > SAMPLE_RATE // 2


def test_speech_is_intelligible_to_whisper(core):
    from faster_whisper import WhisperModel
    from jiwer import wer
    from scipy.signal import resample_poly

    from emoomni.services.perception.backends.faster_whisper_asr import packaged_whisper_base

    text = "I am really glad you told me about your new job. Let's talk about what worries you the most."
    _, audio = speak(core, text, rate_scale=1.1, pitch_scale=0.9, energy_scale=1.2)
    asr = WhisperModel(str(packaged_whisper_base()), device="cpu", compute_type="int8", cpu_threads=2)
    speech = resample_poly(audio.astype(np.float32) / 32768.0, 2, 3).astype(np.float32)  # 24 kHz -> 16 kHz
    segments, _ = asr.transcribe(speech, language="en", beam_size=1)
    heard = " ".join(segment.text for segment in segments)

    def words(s):
        return " ".join(re.sub(r"[^a-z' ]", " ", s.lower()).split())

    assert wer(words(text), words(heard)) <= 0.15, heard


def test_options_choose_model_voices_file_and_voice(tmp_path):
    from emoomni_talker_kokoro import KokoroTalker, packaged_data_dir

    with np.load(packaged_data_dir() / "voices_ja.npz") as packaged:
        np.savez(tmp_path / "voices.npz", custom=packaged["jf_nezumi"])
    engine = KokoroTalker({"model_path": str(assemble_packaged_model()), "voices_path": str(tmp_path / "voices.npz"),
                           "voice": "custom"})
    engine.load()
    spoken = list(engine.synthesize("Hi there.", instruction(gender_hint="male"), "en"))
    assert sum(a.pcm16.size for a in spoken) > SAMPLE_RATE // 4
    assert spoken[0].ignored_controls == ["gender_hint"], "no voice of that gender to switch to"
    with pytest.raises(ValueError, match="not in"):
        KokoroTalker({"voice": "nobody"}).load()


def test_mandarin_is_split_after_sentences_and_long_sentences_after_clauses():
    text = "你好，我在这里陪着你。别着急，我们先看看报告上写了什么，然后再决定要不要去医院复查，好吗？"
    pieces = split_mandarin(text)
    assert pieces[0] == "你好，我在这里陪着你。" and "".join(pieces) == text
    assert len(pieces) == 3 and all(len(p) >= 6 for p in pieces)
    assert split_mandarin("好的。") == ["好的。"]


def test_a_mandarin_reply_gets_kokoro_by_its_language_and_whisper_hears_it(core):
    """No talker named: the reply's language picks the engine (talker.by_language), and the Mandarin it speaks is
    heard back by Whisper-base (the stack's own ears, not the engine that spoke) with a low character error rate."""
    from faster_whisper import WhisperModel
    from jiwer import cer
    from scipy.signal import resample_poly

    from emoomni.core.text import simplified
    from emoomni.services.perception.backends.faster_whisper_asr import packaged_whisper_base

    text = "别着急，我们一起看看报告上写了什么。明天上午再给医生打个电话，好吗？"
    chunks = list(core.speak(text, instruction(rate_scale=0.95), "zh"))
    assert {c.talker for c in chunks} == {"kokoro"} and not any(c.warnings for c in chunks)
    audio = np.frombuffer(b"".join(c.pcm16 for c in chunks), dtype=np.int16)
    assert 3.0 < audio.size / SAMPLE_RATE < 12.0
    asr = WhisperModel(str(packaged_whisper_base()), device="cpu", compute_type="int8", cpu_threads=2)
    speech = resample_poly(audio.astype(np.float32) / 32768.0, 2, 3).astype(np.float32)
    segments, _ = asr.transcribe(speech, language="zh", beam_size=5)
    heard = simplified("".join(segment.text for segment in segments))

    def han(s):
        return "".join(ch for ch in s if "\u4e00" <= ch <= "\u9fff")

    assert cer(han(text), han(heard)) <= 0.15, heard


def test_numbers_are_read_as_a_mandarin_speaker_reads_them_and_mandarin_has_its_own_voice(engine):
    assert spoken_mandarin("号码是13816052749。") == "号码是一三八一六零五二七四九。"
    assert spoken_mandarin("打400-820-1234") == "打四零零八二零一二三四"
    assert spoken_mandarin("明天10:30见，2025年6月18日") == "明天10点30见，2025年6月18日"  # years stay numbers
    assert engine.voice_for("", mandarin=True) == "jf_gongitsune" and engine.voice_for("") == "jf_alpha"
    assert engine.voice_for("male", mandarin=True) == "jm_kumo"

