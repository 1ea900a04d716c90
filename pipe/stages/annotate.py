"""Caption stage: the paper's six caption fields for each utterance clip, stated from the perception service's
measured cues (its face, prosody and ASR backends and its cue sentences), so that every caption rests on a
measurement. Fields the default models cannot see are said to be so, never made up.

With `--captioner URL[#MODEL]` a captioner model (any OpenAI-compatible endpoint; with media, the clip's video and
audio are sent as `caption.captioner_media` allows) rewrites the six fields from the clip and those measurements,
as JSON validated by pydantic. When it fails the item is transient (retried on the next run); on its last allowed
attempt the measured captions are kept instead, and the item says so (`caption_source`, `captioner_error`)."""

from __future__ import annotations

import base64
from importlib.metadata import version

import numpy as np
from pydantic import BaseModel, Field

from emoomni.core.config import PerceptionConfig
from emoomni.core.media import decode_frames
from emoomni.pipe.llm import PipeLLM, describe
from emoomni.pipe.stage import Drop, Resources, Result, Stage, config_hash
from emoomni.services.perception.backends.interface import AsrResult, WordTiming
from emoomni.services.perception.core import build_cues, speech_rate, summarise_faces
from emoomni.v1 import perception_pb2 as pb

_NEGATIVE = ("angry", "disgust", "fear", "sad")
CAPTION_FIELDS = ("video_description", "speech_content", "acoustic_features", "facial_expression", "body_language",
                  "sentiment")
CAPTIONER_KEY_ENV = "EMOOMNI_PIPE_CAPTIONER_KEY"
CAPTIONER_PROMPT = (
    "You write training captions for short clips of one person speaking in a film or TV series. You get the clip "
    "(its video and sound, when attached) and captions that were measured by simpler models: face detection and "
    "expression scores, pitch and loudness, the transcript. Rewrite the six captions so each reads as one or two "
    "clear sentences about this clip: video_description (the scene and the speaker), speech_content (what is said, "
    "quoted, with an English rendering if it is not English), acoustic_features (how the voice sounds), "
    "facial_expression, body_language and sentiment. Keep every measured fact; add only what you can see or hear "
    "in the attached media; never invent details. Answer only with the JSON object asked for.")


class Captions(BaseModel):
    """The six caption fields a captioner must return (each a non-empty sentence or two)."""

    video_description: str = Field(min_length=1, max_length=400)
    speech_content: str = Field(min_length=1, max_length=400)
    acoustic_features: str = Field(min_length=1, max_length=400)
    facial_expression: str = Field(min_length=1, max_length=400)
    body_language: str = Field(min_length=1, max_length=400)
    sentiment: str = Field(min_length=1, max_length=400)


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

    def __init__(self, settings, out_dir, perception: PerceptionConfig | None = None, threads: int = 1,
                 captioner: str = ""):
        super().__init__(settings, out_dir)
        perception = perception or PerceptionConfig()
        self.perception = perception.model_copy(
            update={"asr": perception.asr.model_copy(update={"cpu_threads": threads})})
        self.captioner_spec = captioner

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "perception": self.perception, "captioner_spec": self.captioner_spec}

    def config(self) -> dict:
        config = {**super().config(), "perception": self.perception.model_dump(),
                  "faster_whisper": version("faster-whisper")}
        if not self.captioner_spec:  # no captioner keys when off: runs without one keep their manifest keys
            config["settings"] = {k: v for k, v in config["settings"].items() if not k.startswith("captioner_")}
        else:
            config["captioner"] = describe(self.captioner_spec)
            config["captioner_prompt"] = config_hash([CAPTIONER_PROMPT, Captions.model_json_schema()])
        return config

    def setup(self) -> None:
        from emoomni.services.perception.backends import build_backends

        self.asr, self.face, self.prosody = build_backends(self.perception)
        self.captioner = (PipeLLM.shared(self.captioner_spec, key_envs=(CAPTIONER_KEY_ENV,))
                          if self.captioner_spec else None)

    def refine(self, item: dict, captions: dict[str, str], audio_wav: bytes) -> dict[str, str]:
        """The captioner's six fields for this clip, given its media (as allowed) and the measured captions."""
        measured = "\n".join(f"{k}: {v}" for k, v in captions.items())
        about = f"Speaker {item['speaker']}, {item['end_s'] - item['start_s']:.1f} s, language {item['language']}."
        parts: list[dict] = [{"type": "text", "text": f"{about}\nMeasured captions:\n{measured}"}]
        if "video" in self.settings.captioner_media:
            data = base64.b64encode((self.out_dir / item["clip_video"]).read_bytes()).decode()
            parts.append({"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{data}"}})
        if "audio" in self.settings.captioner_media:
            parts.append({"type": "input_audio",
                          "input_audio": {"data": base64.b64encode(audio_wav).decode(), "format": "wav"}})
        user = parts if len(parts) > 1 else parts[0]["text"]  # text-only endpoints get a plain string
        answer = self.captioner.verdict(CAPTIONER_PROMPT, user, Captions, self.settings.captioner_max_tokens)
        return answer.model_dump()

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
        if self.captioner is not None:
            out["measured_captions"] = captions
            try:
                out["captions"] = self.refine(item, captions, (self.out_dir / item["clip_audio"]).read_bytes())
                out["caption_source"] = describe(self.captioner_spec)
            except Exception as exc:
                if not self.last_attempt:
                    raise  # transient: the manifest retries it on the next run
                out["caption_source"] = "measured cues (the captioner failed on every allowed attempt)"
                out["captioner_error"] = f"{type(exc).__name__}: {exc}"[:300]
        return Result("ok", outputs=[out])
