"""The checks every talker plugin must pass, whoever wrote it. tests/test_talker_conformance.py runs them on every
plugin found under the entry-point group ``emoomni.talkers``; a third-party plugin runs them the same way:

    from emoomni.testing.talker_conformance import TalkerConformance

    @pytest.fixture(scope="module", params=["my-engine"])
    def plugin_name(request):
        return request.param

    class TestMyEngine(TalkerConformance):
        pass

Engines load once per session (`talker_engines`, with the plugin's `test_options`) and are shared by all checks.
What is checked: declared capabilities and typed options; every declared language (with a sample sentence here)
speaks; every honoured pitch/rate/energy control moves the measured audio the asked way (engines that read the
instruction as text are checked to report nothing ignored instead); controls not honoured are reported; audio
streams piece by piece; a cancelled token stops the synthesis; bad input gets a clear error and the engine
keeps working.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from emoomni.sdk.talker import CONTROL_NAMES, CancelToken, SpokenAudio, TalkerOptions, TalkerPlugin
from emoomni.v1 import instruction_pb2

SAMPLES = {
    "en": "Hello there, it is good to see you again.", "zh": "你好，今天过得怎么样？",
    "de": "Hallo, schön dich zu sehen.", "fr": "Bonjour, ravi de te revoir.", "es": "Hola, me alegra verte otra vez.",
    "ja": "こんにちは、また会えて嬉しいです。",
    "it": "Ciao, che bello rivederti.", "pt": "Olá, que bom ver você de novo.", "ru": "Привет, рад тебя видеть.",
    "ko": "안녕하세요, 다시 만나서 반가워요.",
}
THREE_SENTENCES = "The rain stopped an hour ago. The streets are still shining. Let us take a walk."
# Control -> (scale asked for, acoustic feature, which way it must move).
MEASURED = {"rate_scale": (1.5, "rate", "up"), "energy_scale": (2.0, "loudness", "up"),
            "pitch_scale": (1.25, "pitch", "up")}


def neutral() -> instruction_pb2.AcousticInstruction:
    return instruction_pb2.AcousticInstruction()


def with_controls(**controls) -> instruction_pb2.AcousticInstruction:
    return instruction_pb2.AcousticInstruction(controls=instruction_pb2.AcousticControls(**controls))


def speak(engine: TalkerPlugin, text: str, instruction=None, language: str = "en") -> np.ndarray:
    pieces = list(engine.stream(text, instruction or neutral(), language))
    assert pieces and all(isinstance(p, SpokenAudio) for p in pieces)
    rates = {p.sample_rate for p in pieces}
    assert len(rates) == 1 and rates.pop() > 0
    return np.concatenate([np.asarray(p.pcm16) for p in pieces])


class TalkerConformance:
    """Subclass as `Test...` beside a `plugin_name` fixture (module scope) naming the engine to check."""

    @pytest.fixture
    def engine(self, plugin_name, talker_engines) -> TalkerPlugin:
        return talker_engines.get(plugin_name)

    def test_declares_capabilities_and_typed_options(self, engine):
        cls = type(engine)
        caps = cls.capabilities
        assert cls.name and caps.languages and caps.license
        assert all(len(code) == 2 and code.islower() for code in caps.languages), caps.languages
        assert set(caps.controls) <= set(CONTROL_NAMES), caps.controls
        assert issubclass(cls.Options, TalkerOptions) and isinstance(engine.options, cls.Options)
        with pytest.raises(ValueError, match="no_such_option"):
            cls({"no_such_option": 1})

    def test_speaks_every_declared_language(self, engine):
        spoken = [code for code in engine.capabilities.languages if code in SAMPLES]
        assert spoken, f"no sample sentence for any of {engine.capabilities.languages}"
        for code in spoken[:4]:
            audio = speak(engine, SAMPLES[code], language=code)
            assert audio.dtype == np.int16 and audio.size > 0 and np.abs(audio).max() > 0, code

    def test_honoured_controls_move_the_measured_audio(self, engine):
        from emoomni.eval.acoustics import change, direction_met, features

        measured = [c for c in engine.capabilities.controls if c in MEASURED]
        if engine.capabilities.reads_instruction_text:
            # Read as words by the model: honoured as far as it follows them; nothing may be reported ignored.
            assert engine.ignored(with_controls(**{c: MEASURED[c][0] for c in measured}).controls) == []
            return
        assert measured, "an engine that does not read instructions must honour at least one scale control"
        rate = engine_rate(engine)
        base = features(speak(engine, SAMPLES["en"]), rate)
        for control in measured:
            scale, feature, direction = MEASURED[control]
            value = features(speak(engine, SAMPLES["en"], with_controls(**{control: scale})), rate)
            index = ("pitch", "loudness", "rate").index(feature)
            delta = change(feature, value[index], base[index])
            assert direction_met(feature, direction, delta), f"{control}={scale}: {feature} moved {delta:+.3f}"

    def test_controls_not_honoured_are_reported(self, engine):
        everything = with_controls(emotion="sad", intensity=0.8, pitch_scale=1.2, rate_scale=0.8, energy_scale=1.3,
                                   voice_quality="breathy", age_hint="old", gender_hint="female").controls
        honoured = set(engine.capabilities.controls)
        ignored = set(engine.ignored(everything))
        assert ignored.isdisjoint(honoured)
        assert ignored >= {c for c in ("pitch_scale", "rate_scale", "energy_scale", "voice_quality", "age_hint",
                                       "gender_hint", "emotion") if c not in honoured}

    def test_audio_streams_piece_by_piece(self, engine):
        started = time.perf_counter()
        stamps = [time.perf_counter() - started for _ in engine.stream(THREE_SENTENCES, neutral(), "en")]
        assert len(stamps) >= 2, "three sentences came out as one piece"
        # The first piece was handed on before the engine made the last one.
        assert stamps[0] < stamps[-1]

    def test_a_cancelled_synthesis_stops(self, engine):
        token = CancelToken()
        pieces = 0
        for _ in engine.stream(THREE_SENTENCES, neutral(), "en", token):
            pieces += 1
            token.cancel()
        assert pieces == 1
        assert speak(engine, SAMPLES["en"]).size > 0  # and the engine speaks the next request normally

    def test_bad_input_is_a_clear_error_and_the_engine_keeps_working(self, engine):
        for text in ("", "   \n"):
            with pytest.raises(ValueError, match="empty"):
                list(engine.stream(text, neutral(), "en"))
        with pytest.raises(ValueError, match="'xx'"):
            list(engine.stream("Hello.", neutral(), "xx"))
        assert speak(engine, SAMPLES["en"]).size > 0


def engine_rate(engine: TalkerPlugin) -> int:
    return next(iter(engine.stream("Hi.", neutral(), "en"))).sample_rate
