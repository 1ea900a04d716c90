"""Caption stage: the paper's six caption fields for each utterance clip, stated from the perception service's
measured cues (its face, prosody and ASR backends and its cue sentences), so that every caption rests on a
measurement. Fields the default models cannot see are said to be so, never made up."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np

from emoomni.core.config import PerceptionConfig
from emoomni.core.media import decode_frames
from emoomni.pipe.stage import Drop, Resources, Result, Stage
from emoomni.services.perception.backends.interface import AsrResult, WordTiming
from emoomni.services.perception.core import build_cues, speech_rate, summarise_faces
from emoomni.v1 import perception_pb2 as pb

_NEGATIVE = ("angry", "disgust", "fear", "sad")
CAPTION_FIELDS = ("video_description", "speech_content", "acoustic_features", "facial_expression", "body_language",
                  "sentiment")


def framing(boxes: list[list[int]], frame_height: int) -> str:
    if not boxes or frame_height <= 0:
        return ""
    share = float(np.median([b[3] for b in boxes])) / frame_height
    return "a close-up" if share > 0.35 else "a medium shot" if share > 0.15 else "a wide shot"


def head_movement(boxes: list[list[int]]) -> str:
    """How far the face centre wanders across the sampled frames, in face widths."""
    if len(boxes) < 2:
        return "not measured (fewer than two frames with a face)"
    centres = np.array([[b[0] + b[2] / 2, b[1] + b[3] / 2] for b in boxes], dtype=float)
    width = max(float(np.median([b[2] for b in boxes])), 1.0)
    spread = float(np.linalg.norm(centres.std(axis=0))) / width
    words = "head held still" if spread < 0.05 else "some head movement" if spread < 0.15 else "lively head movement"
    return f"{words} (face centre moves {spread:.2f} face widths; from the face position only, no body-pose model)"


def sentiment(face: pb.FaceCues) -> str:
    if not face.frames_with_face:
        return "unknown (no face found)"
    scores = face.mean_expression_scores
    positive = scores.get("happy", 0.0)
    negative = sum(scores.get(label, 0.0) for label in _NEGATIVE)
    word = "positive" if positive - negative > 0.15 else "negative" if negative - positive > 0.15 else "neutral"
    return f"{word} (facial expression scores: positive {positive:.2f}, negative {negative:.2f})"


class CaptionStage(Stage):
    name = "caption"
    resources = Resources(cpus=1)

    def __init__(self, settings, out_dir, perception: PerceptionConfig | None = None, threads: int = 1):
        super().__init__(settings, out_dir)
        perception = perception or PerceptionConfig()
        self.perception = perception.model_copy(
            update={"asr": perception.asr.model_copy(update={"cpu_threads": threads})})

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "perception": self.perception}

    def config(self) -> dict:
        return {**super().config(), "perception": self.perception.model_dump(),
                "faster_whisper": version("faster-whisper")}

    def setup(self) -> None:
        from emoomni.services.perception.backends import build_backends

        self.asr, self.face, self.prosody = build_backends(self.perception)

    def process(self, item: dict) -> Result:
        import soundfile as sf

        clip = str(self.out_dir / item["clip_video"])
        audio, rate = sf.read(self.out_dir / item["clip_audio"], dtype="float32")
        duration = audio.size / rate
        frames = decode_frames(clip, duration, self.settings.frames_sampled, self.perception.face.max_side_px)
        if not frames:
            raise Drop("the clip has no decodable video frames")
        face = summarise_faces(self.face.observe(frames))
        raw = self.prosody.measure(audio, rate)
        translation = ""
        if item["language"] != "en" and self.perception.asr.translate_to_english:
            translation = self.asr.transcribe(audio, rate).english_translation
        asr = AsrResult(text=item["text"], language=item["language"], language_probability=1.0,
                        english_translation=translation,
                        words=[WordTiming(text=w["text"], start_s=w["start_s"], end_s=w["end_s"])
                               for w in item["words"]])
        speed, pauses = speech_rate(asr)
        prosody = pb.ProsodyFeatures(
            duration_s=raw.duration_s, voiced_ratio=raw.voiced_ratio, pitch_median_hz=raw.pitch_median_hz,
            pitch_mean_hz=raw.pitch_mean_hz, pitch_std_hz=raw.pitch_std_hz, pitch_p10_hz=raw.pitch_p10_hz,
            pitch_p90_hz=raw.pitch_p90_hz, energy_mean_dbfs=raw.energy_mean_dbfs, energy_std_db=raw.energy_std_db,
            speech_rate_wps=speed, pause_ratio=pauses)
        cues = build_cues(asr, face, prosody)
        boxes = [list(f.box) for f in face.frames if f.face_found and len(f.box) == 4]
        shot = framing(boxes, frames[0][1].shape[0])
        seen = (f"a face is visible in {face.frames_with_face} of {face.frames_sampled} sampled frames"
                + (f", framed as {shot}" if shot else "") if face.frames_with_face else "no face is visible")
        said = f'"{item["text"]}" ({item["language"]})' + (f', in English: "{translation}"' if translation else "")
        voice = [c.text for c in cues if c.modality == "voice"]
        faces = [c.text for c in cues if c.modality == "face"]
        captions = {
            "video_description": f"A {duration:.1f} s shot of speaker {item['speaker']}; {seen}.",
            "speech_content": said,
            "acoustic_features": "; ".join(voice) or "not measured",
            "facial_expression": "; ".join(faces) or "no face found in the sampled frames",
            "body_language": head_movement(boxes),
            "sentiment": sentiment(face),
        }
        out = {**item, "captions": captions, "english_translation": translation,
               "cues": [{"modality": c.modality, "text": c.text, "brief": c.brief} for c in cues]}
        return Result("ok", outputs=[out])
