"""The eSpeak NG talker on the real library (libespeak-ng from espeakng-loader), found through its entry point.
Controls are checked by measuring the audio: pitch with pYIN, duration, RMS, voicing and spectral flatness."""

from __future__ import annotations

import threading

import librosa
import numpy as np
import pytest

from emoomni.services.talker.registry import discover
from emoomni.v1 import instruction_pb2

TEXT = "Take a slow breath with me. We will sort this out together, one step at a time."

# One short sentence per listed language, in its own script.
SAMPLES = {
    "en": "Hello, how are you today?", "zh": "你好，今天你过得怎么样？", "ja": "こんにちは、お元気ですか。",
    "de": "Hallo, wie geht es dir heute?", "fr": "Bonjour, comment allez-vous aujourd'hui ?",
    "es": "Hola, ¿cómo estás hoy?", "it": "Ciao, come stai oggi?", "pt": "Olá, como você está hoje?",
    "ru": "Привет, как ты сегодня?", "pl": "Cześć, jak się dzisiaj masz?", "nl": "Hallo, hoe gaat het vandaag?",
    "sv": "Hej, hur mår du idag?", "cs": "Ahoj, jak se dnes máš?", "fi": "Hei, mitä kuuluu tänään?",
    "vi": "Xin chào, hôm nay bạn thế nào?", "id": "Halo, apa kabar hari ini?", "el": "Γεια σου, πώς είσαι σήμερα;",
    "ro": "Bună, ce mai faci astăzi?", "fa": "سلام، امروز حالت چطور است؟", "ca": "Hola, com estàs avui?",
    "uk": "Привіт, як ти сьогодні?", "sw": "Habari, unaendeleaje leo?",
}


@pytest.fixture(scope="module")
def talker():
    engine = discover()["espeak"]()
    engine.load()
    engine.warm()
    return engine


def speak(talker, text=TEXT, language="en", **controls):
    instruction = instruction_pb2.AcousticInstruction(controls=instruction_pb2.AcousticControls(**controls))
    chunks = list(talker.synthesize(text, instruction, language))
    assert chunks, "no audio"
    assert all(c.sample_rate == talker.sample_rate and c.pcm16.dtype == np.int16 for c in chunks)
    return chunks, np.concatenate([c.pcm16 for c in chunks])


def as_float(audio):
    return audio.astype(np.float32) / 32768.0


def duration(talker, audio):
    return audio.size / talker.sample_rate


def rms(audio):
    return float(np.sqrt(np.mean(as_float(audio) ** 2)))


def loud_frames(y, hop):
    level = librosa.feature.rms(y=y, frame_length=1024, hop_length=hop)[0]
    return level > 0.1 * level.max()


def pyin(talker, audio):
    """(median F0 over voiced frames, spread of log2 F0, voiced share of the loud frames)."""
    y = as_float(audio)
    f0, voiced, _ = librosa.pyin(y, fmin=50, fmax=600, sr=talker.sample_rate, frame_length=1024, hop_length=256)
    loud = loud_frames(y, 256)[: len(voiced)]
    voiced_f0 = f0[voiced & loud]
    median = float(np.median(voiced_f0)) if voiced_f0.size else 0.0
    spread = float(np.std(np.log2(voiced_f0))) if voiced_f0.size else 0.0
    return median, spread, float(np.mean(voiced[loud]))


def flatness(audio):
    """Median spectral flatness of the loud frames: near 0 for a harmonic voice, higher with breath noise."""
    y = as_float(audio)
    flat = librosa.feature.spectral_flatness(y=y, n_fft=1024, hop_length=256)[0]
    return float(np.median(flat[loud_frames(y, 256)[: len(flat)]]))


def test_espeak_is_discovered_through_its_entry_point():
    plugins = discover()
    assert "espeak" in plugins
    cls = plugins["espeak"]
    assert cls.name == "espeak" and cls.capabilities.streaming
    assert "GPL-3.0" in cls.capabilities.license
    assert {"en", "zh", "ja", "de", "fr", "es"} <= set(cls.capabilities.languages)


def test_speaks_audible_english_sentence_by_sentence(talker):
    chunks, audio = speak(talker)
    assert len(chunks) == 2, "one piece per sentence"
    assert 3.0 < duration(talker, audio) < 9.0
    assert np.abs(audio).max() > 8000, "audible speech, not silence"
    assert chunks[0].ignored_controls == []


def test_pitch_scale_moves_the_median_f0(talker):
    neutral = pyin(talker, speak(talker, pitch_scale=1.0)[1])[0]
    high = pyin(talker, speak(talker, pitch_scale=1.3)[1])[0]
    low = pyin(talker, speak(talker, pitch_scale=0.85)[1])[0]
    assert 70 < neutral < 160, "the default voice is a male one"
    assert high > neutral * 1.15
    assert low < neutral * 0.95


def test_rate_scale_changes_duration(talker):
    neutral = duration(talker, speak(talker)[1])
    assert duration(talker, speak(talker, rate_scale=1.5)[1]) < neutral * 0.75
    assert duration(talker, speak(talker, rate_scale=0.7)[1]) > neutral * 1.25


def test_energy_scale_changes_loudness(talker):
    neutral = rms(speak(talker)[1])
    assert rms(speak(talker, energy_scale=1.5)[1]) > neutral * 1.3
    assert rms(speak(talker, energy_scale=0.5)[1]) < neutral * 0.6


def test_whisper_removes_voicing(talker):
    _, _, modal_voiced = pyin(talker, speak(talker)[1])
    chunks, whisper = speak(talker, voice_quality="whisper")
    _, _, whisper_voiced = pyin(talker, whisper)
    assert modal_voiced > 0.5
    assert whisper_voiced < 0.2 and whisper_voiced < modal_voiced / 3
    assert flatness(whisper) > 3 * flatness(speak(talker)[1])
    assert chunks[0].ignored_controls == []


def test_breathy_adds_breath_noise(talker):
    modal, breathy = speak(talker)[1], speak(talker, voice_quality="breathy")[1]
    assert flatness(breathy) > 3 * flatness(modal)
    assert pyin(talker, breathy)[2] < pyin(talker, modal)[2]
    assert abs(duration(talker, breathy) - duration(talker, modal)) < 0.2, "same words, same timing"


def test_gender_and_age_hints_pick_voices(talker):
    male = pyin(talker, speak(talker, gender_hint="male")[1])[0]
    female = pyin(talker, speak(talker, gender_hint="female")[1])[0]
    child = pyin(talker, speak(talker, age_hint="child")[1])[0]
    assert female > male * 1.5
    assert child > female * 1.15
    elderly_chunks, elderly = speak(talker, age_hint="elderly")
    assert elderly_chunks[0].ignored_controls == []
    assert not np.array_equal(elderly, speak(talker)[1])


def test_emotion_intensity_widens_or_flattens_pitch_range(talker):
    lively = pyin(talker, speak(talker, gender_hint="female", emotion="excited", intensity=1.0)[1])[1]
    subdued = pyin(talker, speak(talker, gender_hint="female", emotion="sad", intensity=1.0)[1])[1]
    assert lively > subdued * 1.5


def test_unavailable_controls_are_reported(talker):
    chunks, _ = speak(talker, voice_quality="tense", emotion="bewildered")
    assert chunks[0].ignored_controls == ["emotion", "voice_quality"]
    chunks, _ = speak(talker, voice_quality="whisper", age_hint="elderly")
    assert chunks[0].ignored_controls == ["age_hint"]


def test_mandarin_text_gives_audio(talker):
    chunks, audio = speak(talker, "你好，今天你过得怎么样？我希望你一切都好。", language="zh")
    assert len(chunks) == 2
    assert 2.0 < duration(talker, audio) < 9.0 and np.abs(audio).max() > 8000


def test_japanese_kanji_are_read_not_named(talker):
    # espeak-ng alone says "Chinese letter" for every kanji (about 10 s here); read as kana it is about 4 s.
    _, audio = speak(talker, "今日はお元気ですか。私はとても元気です。", language="ja")
    assert 1.5 < duration(talker, audio) < 6.0


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_every_listed_language_speaks(talker, language):
    assert language in talker.capabilities.languages
    _, audio = speak(talker, SAMPLES[language], language=language)
    assert 0.8 < duration(talker, audio) < 6.0
    assert np.abs(audio).max() > 5000


def test_language_codes_and_unknown_languages(talker):
    assert talker.voice_for("zh-CN") == "cmn"
    assert talker.voice_for("pt_BR") == "pt-br"
    assert talker.voice_for("EN") == "en-us"
    with pytest.raises(ValueError, match="no voice for language"):
        speak(talker, "Hello.", language="xx")


def test_voice_option_overrides_the_default():
    engine = discover()["espeak"]({"voice": {"en": "en-gb+f4"}})
    engine.load()
    assert engine.voice_for("en") == "en-gb+f4" and engine.voice_for("de") == "de"
    female = pyin(engine, speak(engine)[1])[0]
    assert female > 150
    male = pyin(engine, speak(engine, gender_hint="male")[1])[0]
    assert male < female / 1.5
    with pytest.raises(Exception, match="no voice"):
        discover()["espeak"]({"voice": "no-such-voice"}).load()


def test_concurrent_requests_do_not_mix(talker):
    texts = {"en": "The quick brown fox jumps over the lazy dog.", "de": "Der schnelle braune Fuchs springt."}
    expected = {lang: speak(talker, text, language=lang)[1] for lang, text in texts.items()}
    results: dict[str, list[np.ndarray]] = {lang: [] for lang in texts}

    def work(lang):
        for _ in range(5):
            results[lang].append(speak(talker, texts[lang], language=lang)[1])

    threads = [threading.Thread(target=work, args=(lang,)) for lang in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # espeak-ng is not bit-exact from call to call (a few samples of jitter), so compare length and loudness:
    # audio mixed between requests would be much longer, cut short, or in the other voice.
    for lang, outputs in results.items():
        assert len(outputs) == 5
        for out in outputs:
            assert abs(out.size - expected[lang].size) < 0.01 * expected[lang].size
            assert abs(rms(out) - rms(expected[lang])) < 0.05 * rms(expected[lang])


def test_whisper_base_understands_the_english(talker):
    import jiwer
    from faster_whisper import WhisperModel

    from emoomni.services.perception.backends.faster_whisper_asr import packaged_whisper_base

    text = "The weather is lovely today, so let us take a long walk in the park."
    _, audio = speak(talker, text)
    model = WhisperModel(str(packaged_whisper_base()), device="cpu", compute_type="int8", cpu_threads=2)
    y = librosa.resample(as_float(audio), orig_sr=talker.sample_rate, target_sr=16000)
    segments, _ = model.transcribe(y, language="en", beam_size=5)
    heard = " ".join(segment.text for segment in segments)

    def norm(s):
        return " ".join("".join(ch for ch in s.lower() if ch.isalnum() or ch.isspace()).split())

    assert jiwer.wer(norm(text), norm(heard)) < 0.25, heard
