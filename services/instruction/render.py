"""Controls -> natural-language instruction, for engines that read one ("Speak in a soft whisper, slowly")."""

from __future__ import annotations

from emoomni.v1 import instruction_pb2

# How each emotion sounds, as a phrase that follows "Speak".
_EMOTION_MANNER = {
    "neutral": "in a natural, even tone", "happy": "cheerfully, with a smile in the voice",
    "excited": "with lively excitement", "calm": "calmly and reassuringly", "tender": "tenderly and warmly",
    "sad": "sadly, with a heavy heart", "angry": "angrily", "serious": "seriously and firmly",
    "anxious": "urgently, with some tension", "fearful": "nervously, a little shaky",
    "amused": "playfully, with amusement", "hopeful": "encouragingly, with quiet confidence",
}
_VOICE_QUALITY = {"whisper": "in a whisper", "breathy": "with a soft, breathy voice", "tense": "with a tense edge"}
# (age, gender) -> whose voice; "" = not specified.
_SPEAKER = {("child", ""): "a child", ("child", "female"): "a young girl", ("child", "male"): "a young boy",
            ("elderly", ""): "an elderly person", ("elderly", "female"): "an elderly woman",
            ("elderly", "male"): "an elderly man", ("", "female"): "a woman", ("", "male"): "a man"}


def _degree(scale: float, up: str, down: str) -> str:
    """'a little faster', 'much slower', or '' when the scale is near neutral."""
    change = abs(scale - 1.0)
    if change < 0.05:
        return ""
    word = up if scale > 1.0 else down
    return f"a little {word}" if change < 0.12 else (word if change < 0.25 else f"much {word}")


def render_instruction(controls: instruction_pb2.AcousticControls) -> str:
    parts = [_EMOTION_MANNER.get(controls.emotion, f"with a {controls.emotion} feeling")]
    if controls.voice_quality in _VOICE_QUALITY:
        parts.append(_VOICE_QUALITY[controls.voice_quality])
    speaker = _SPEAKER.get((controls.age_hint, controls.gender_hint))
    if speaker:
        parts.append(f"in the voice of {speaker}")
    parts += [p for p in (_degree(controls.rate_scale, "faster", "slower"),
                          _degree(controls.pitch_scale, "higher-pitched", "lower-pitched"),
                          _degree(controls.energy_scale, "louder", "quieter")) if p]
    if controls.intensity >= 0.8:
        parts.append("with strong feeling")
    return "Speak " + ", ".join(parts) + "."
