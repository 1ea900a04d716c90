"""Perception core: decode the clip, run ASR, face and prosody backends, and state the measured cues.

The cues are sentences built only from measurements; the reasoning stage must ground every claim of its
emotion analysis in them. Thresholds that turn numbers into words ("fast", "quiet") are documented here.
"""

from __future__ import annotations

import contextvars
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from emoomni.core.config import StackConfig
from emoomni.core.media import DecodedMedia, MediaError, decode, decode_audio, decode_frames, read_source
from emoomni.core.text import simplified
from emoomni.services.perception.backends import build_backends
from emoomni.services.perception.backends.interface import AsrResult, FaceObservation, ProsodyResult, TurnCancelled
from emoomni.v1 import perception_pb2 as pb

_HAN = re.compile(r"[\u4e00-\u9fff]")
SILENCE_DBFS = -50.0  # a clip whose loudest frame is below this is treated as silent


def speech_rate(asr: AsrResult) -> tuple[float, float]:
    """(units per second over the speaking span, pause share). Units are words, or Han characters in Chinese."""
    if not asr.words:
        return 0.0, 0.0
    span = asr.words[-1].end_s - asr.words[0].start_s
    if span <= 0:
        return 0.0, 0.0
    units = len(_HAN.findall(asr.text)) if _HAN.search(asr.text) else len(asr.words)
    gaps = [b.start_s - a.end_s for a, b in zip(asr.words, asr.words[1:], strict=False)]
    pauses = sum(g for g in gaps if g > 0.2)
    return units / span, pauses / span


def describe_rate(rate: float, chinese: bool) -> str:
    # Conversational English runs ~2.5-3 words/s; Mandarin ~4-5 characters/s.
    slow, fast = (3.5, 5.5) if chinese else (2.0, 3.3)
    return "fast" if rate > fast else "slow" if rate < slow else "moderate"


def describe_pitch_variation(p: ProsodyResult) -> str:
    if p.pitch_median_hz <= 0:
        return "no stable pitch"
    # Spread between the 10th and 90th percentile in semitones: < 4 sounds flat, > 8 lively.
    semitones = 12 * np.log2(max(p.pitch_p90_hz, 1) / max(p.pitch_p10_hz, 1))
    if semitones > 8:
        return f"lively intonation (pitch spans {semitones:.0f} semitones)"
    if semitones < 4:
        return f"flat intonation (pitch spans {semitones:.0f} semitones)"
    return f"moderately varied intonation (pitch spans {semitones:.0f} semitones)"


def describe_loudness(dbfs: float) -> str:
    # Relative to full scale of the recording; consumer recordings of normal speech sit around -30..-18 dBFS.
    if dbfs < -35:
        return "very quiet, close to a whisper"
    if dbfs < -28:
        return "quiet"
    if dbfs > -16:
        return "loud"
    return "normal loudness"


def summarise_faces(obs: list[FaceObservation]) -> pb.FaceCues:
    with_face = [o for o in obs if o.face_found]
    cues = pb.FaceCues(frames_sampled=len(obs), frames_with_face=len(with_face))
    for o in obs:
        cues.frames.append(pb.FaceFrame(time_s=o.time_s, face_found=o.face_found, box=o.box,
                                        expression=o.expression, expression_score=o.expression_score,
                                        expression_scores=o.scores))
    if with_face:
        counts = Counter(o.expression for o in with_face)
        cues.dominant_expression, cues.dominant_expression_frames = counts.most_common(1)[0]
        labels = with_face[0].scores.keys()
        for label in labels:
            cues.mean_expression_scores[label] = float(np.mean([o.scores[label] for o in with_face]))
    return cues


def build_cues(asr: AsrResult, face: pb.FaceCues, prosody: pb.ProsodyFeatures) -> list[pb.Cue]:
    chinese = bool(_HAN.search(asr.text))
    said = f'The user said: "{asr.text}"'
    # The prompt gets the words as said, and the English rendering for English-only reasoning models.
    brief = f'said "{asr.text}"' + (f' (in English: "{asr.english_translation}")' if asr.english_translation else "")
    if asr.english_translation:
        said += f' (in English: "{asr.english_translation}")'
    cues = [pb.Cue(modality="speech", text=said, brief=brief)]
    if face.frames_with_face:
        share = f"{face.dominant_expression_frames} of {face.frames_with_face} frames with a face"
        mean = face.mean_expression_scores[face.dominant_expression]
        cues.append(pb.Cue(modality="face", text=f"Facial expression: mostly {face.dominant_expression} "
                                                 f"({share}, mean probability {mean:.2f})",
                           brief=f"face mostly {face.dominant_expression}"))
        runner_up = sorted(((p, label) for label, p in face.mean_expression_scores.items()
                            if label != face.dominant_expression), reverse=True)
        if runner_up and runner_up[0][0] >= 0.15:
            cues.append(pb.Cue(modality="face", text=f"Facial expression also shows {runner_up[0][1]} "
                                                     f"(mean probability {runner_up[0][0]:.2f})",
                               brief=f"face also {runner_up[0][1]}"))
    else:
        cues.append(pb.Cue(modality="face", text="No face was seen: the reading rests on the voice and the words",
                           brief="no face seen"))
    if prosody.pitch_median_hz > 0:
        variation = describe_pitch_variation(ProsodyResult(
            duration_s=prosody.duration_s, voiced_ratio=prosody.voiced_ratio,
            pitch_median_hz=prosody.pitch_median_hz, pitch_mean_hz=prosody.pitch_mean_hz,
            pitch_std_hz=prosody.pitch_std_hz, pitch_p10_hz=prosody.pitch_p10_hz,
            pitch_p90_hz=prosody.pitch_p90_hz, energy_mean_dbfs=prosody.energy_mean_dbfs,
            energy_std_db=prosody.energy_std_db, energy_peak_dbfs=0.0))
        cues.append(pb.Cue(modality="voice", text=f"Voice pitch: median {prosody.pitch_median_hz:.0f} Hz, "
                                                  f"{variation}", brief=variation.split(" (")[0]))
    loudness = describe_loudness(prosody.energy_mean_dbfs)
    cues.append(pb.Cue(modality="voice", text=f"Voice loudness: {prosody.energy_mean_dbfs:.0f} dBFS, {loudness}",
                       brief=f"voice {loudness.split(',')[0]}"))
    if prosody.speech_rate_wps > 0:
        unit = "characters" if chinese else "words"
        pace = describe_rate(prosody.speech_rate_wps, chinese)
        cues.append(pb.Cue(modality="voice", text=f"Speech rate: {prosody.speech_rate_wps:.1f} {unit}/s, {pace}",
                           brief=f"{pace} speech"))
    if prosody.pause_ratio >= 0.15:
        cues.append(pb.Cue(modality="voice", text=f"Pauses take {prosody.pause_ratio:.0%} of the speaking time",
                           brief="many pauses"))
    return cues



def in_simplified(asr: AsrResult) -> AsrResult:
    """A Chinese transcript in Simplified characters, words included (the brain and the user read Simplified)."""
    if not _HAN.search(asr.text):
        return asr
    words = [w.model_copy(update={"text": simplified(w.text)}) for w in asr.words]
    return asr.model_copy(update={"text": simplified(asr.text), "words": words})

class PerceptionCore:
    """Loads the configured backends once; `perceive` is thread-safe for one call at a time per instance."""

    def __init__(self, cfg: StackConfig):
        self.cfg = cfg
        self.asr, self.face, self.prosody = build_backends(cfg.perception, cfg.triton)
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="perception")

    def warmup(self) -> None:
        """One pass on a second of tone so that the first real turn does not pay for lazy initialisation."""
        t = np.arange(16000, dtype=np.float32) / 16000
        tone = (0.1 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
        self.asr.transcribe(tone, 16000)
        self.prosody.measure(tone, 16000)
        self.face.observe([(0.0, np.zeros((120, 160, 3), dtype=np.uint8))])

    def transcribe_provisional(self, audio: np.ndarray, sample_rate: int) -> pb.Transcript:
        """The words so far of speech still going on (no word timings, no translation): a live turn's
        provisional transcript."""
        if sample_rate != 16000:
            import librosa

            audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=16000)
        asr = in_simplified(self.asr.transcribe(audio.astype(np.float32), 16000, provisional=True))
        return pb.Transcript(text=asr.text, language=asr.language, language_probability=asr.language_probability)

    def decode(self, path: str | None, data: bytes | None) -> DecodedMedia:
        """Audio and frames of a clip (used by tests and tools; `perceive` overlaps the two)."""
        face = self.cfg.perception.face
        return decode(read_source(path, data, self.cfg.limits), self.cfg.limits,
                      sample_rate=self.cfg.perception.prosody.sample_rate, n_frames=face.frames_sampled,
                      max_side_px=face.max_side_px)

    def _faces(self, source: bytes | str, duration_s: float) -> list:
        face = self.cfg.perception.face
        return self.face.observe(decode_frames(source, duration_s, face.frames_sampled, face.max_side_px))

    def perceive(self, path: str | None = None, data: bytes | None = None, face_optional: bool = False,
                 stop: threading.Event | None = None) -> pb.PerceptionResult:
        """`stop` set (the turn was cancelled or ran out of time): the work ends at its next step, so a thread
        that nobody waits for no longer holds the machine."""
        limits = self.cfg.limits
        require_face = limits.require_face and not face_optional
        source = read_source(path, data, limits)
        media = decode_audio(source, limits, self.cfg.perception.prosody.sample_rate)
        _check(stop)
        peak_dbfs = 20 * np.log10(max(float(np.abs(media.audio).max()), 1e-9))
        if peak_dbfs < SILENCE_DBFS:
            raise MediaError(f"the clip's audio is silent (peak {max(peak_dbfs, -120):.0f} dBFS)")
        # A clip without a picture (a phone call, a voice message, a robot without a camera) is answered from the
        # voice and the words; one with a picture must show the face unless the caller said it may not.
        require_face = require_face and media.has_video
        # Frames are decoded and read beside ASR: PyAV, CTranslate2 and LiteRT all release the GIL. Each task
        # runs in a copy of this context, so a backend that calls out (Triton) carries the current trace.
        faces = self._faces if media.has_video else (lambda source, duration_s: [])
        face_future = self._pool.submit(contextvars.copy_context().run, faces, source, media.duration_s)
        prosody_future = self._pool.submit(self.prosody.measure, media.audio, media.sample_rate)
        try:
            asr = in_simplified(self.asr.transcribe(media.audio, media.sample_rate, stop=stop))
        except TurnCancelled:
            face_future.cancel()
            prosody_future.cancel()
            raise
        face = summarise_faces(face_future.result())
        prosody_raw = prosody_future.result()
        warnings = []
        if not asr.text.strip():
            raise MediaError("no speech was recognised in the clip")
        if face.frames_with_face == 0:
            if require_face:
                raise MediaError(f"no face was found in any of the {face.frames_sampled} sampled frames")
            warnings.append("no face found in the sampled frames; the analysis rests on voice and words"
                            if media.has_video else "a voice-only clip (no picture); the analysis rests on voice "
                            "and words")
        rate, pause_ratio = speech_rate(asr)
        prosody = pb.ProsodyFeatures(
            duration_s=prosody_raw.duration_s, voiced_ratio=prosody_raw.voiced_ratio,
            pitch_median_hz=prosody_raw.pitch_median_hz, pitch_mean_hz=prosody_raw.pitch_mean_hz,
            pitch_std_hz=prosody_raw.pitch_std_hz, pitch_p10_hz=prosody_raw.pitch_p10_hz,
            pitch_p90_hz=prosody_raw.pitch_p90_hz, energy_mean_dbfs=prosody_raw.energy_mean_dbfs,
            energy_std_db=prosody_raw.energy_std_db, speech_rate_wps=rate, pause_ratio=pause_ratio)
        transcript = pb.Transcript(text=asr.text, language=asr.language, english_translation=asr.english_translation,
                                   language_probability=asr.language_probability,
                                   words=[pb.Word(text=w.text, start_s=w.start_s, end_s=w.end_s,
                                                  probability=w.probability) for w in asr.words])
        cues = build_cues(asr, face, prosody)
        return pb.PerceptionResult(transcript=transcript, face=face, prosody=prosody, cues=cues,
                                   cue_summary=" ".join(c.text.rstrip(".") + "." for c in cues),
                                   warnings=warnings, media_duration_s=media.duration_s)


def _check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise TurnCancelled("perception stopped: the turn was cancelled")
