"""Speech stages: transcribe (Silero VAD, then faster-whisper with word timestamps, through the perception service's
ASR backend) and diarize (resemblyzer voice embeddings clustered into speakers over the whole source, then
consecutive segments of one speaker merged into utterances, as the paper does)."""

from __future__ import annotations

from collections import Counter
from importlib.metadata import version

import numpy as np
import soundfile as sf

from emoomni.core.config import AsrConfig
from emoomni.pipe.stage import Drop, Resources, Result, Stage


def _read_chunk_audio(stage: Stage, item: dict) -> np.ndarray:
    audio, rate = sf.read(stage.out_dir / item["audio"], dtype="float32")
    if rate != 16000:
        raise Drop(f"chunk audio is at {rate} Hz, expected 16000")
    return audio


class TranscribeStage(Stage):
    """Speech regions by the Silero VAD model that faster-whisper ships, each transcribed with word timestamps.

    Word times are absolute (seconds in the source video)."""

    name = "transcribe"
    resources = Resources(cpus=1)

    def __init__(self, settings, out_dir, asr: AsrConfig | None = None, threads: int = 1):
        super().__init__(settings, out_dir)
        # One pass per region, no English rendering here: it is made per utterance, where it can be split.
        self.asr_config = (asr or AsrConfig()).model_copy(update={"translate_to_english": False,
                                                                  "cpu_threads": threads})

    def config(self) -> dict:
        return {**super().config(), "asr": self.asr_config.model_dump(),
                "faster_whisper": version("faster-whisper"), "vad": "silero_vad_v6 (faster-whisper assets)"}

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "asr_config": self.asr_config}

    def setup(self) -> None:
        from faster_whisper.vad import get_vad_model

        from emoomni.services.perception.backends.faster_whisper_asr import FasterWhisperAsr

        self.asr = FasterWhisperAsr(self.asr_config)
        get_vad_model()

    def regions(self, audio: np.ndarray) -> list[tuple[int, int]]:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        s = self.settings
        spans = get_speech_timestamps(audio, VadOptions(threshold=s.vad_threshold,
                                                        min_silence_duration_ms=s.min_silence_ms,
                                                        max_speech_duration_s=s.max_region_s, speech_pad_ms=150))
        # Regions closer than `join_gap_s` are read as one window: a whispered word between two loud ones still
        # reaches the ASR, and very short regions (which Whisper transcribes badly on their own) get context.
        windows: list[tuple[int, int]] = []
        for span in spans:
            start, end = span["start"], span["end"]
            if windows and (start - windows[-1][1] < s.join_gap_s * 16000
                            and end - windows[-1][0] <= s.max_region_s * 16000):
                windows[-1] = (windows[-1][0], end)
            else:
                windows.append((start, end))
        return windows

    def process(self, item: dict) -> Result:
        audio = _read_chunk_audio(self, item)
        regions = self.regions(audio)
        if not regions:
            raise Drop("no speech found by the VAD")
        import ctranslate2

        words = []
        for start, end in regions:
            # Whisper falls back to sampling on windows it decodes with low confidence: seeded per window, the same
            # audio gives the same words in any worker, whatever it transcribed before.
            ctranslate2.set_random_seed(start)
            result = self.asr.transcribe(audio[start:end], 16000)
            offset = item["start_s"] + start / 16000
            for w in result.words:
                if w.text:
                    words.append({"text": w.text, "start_s": round(offset + w.start_s, 3),
                                  "end_s": round(offset + w.end_s, 3), "probability": round(w.probability, 3),
                                  "language": result.language})
        if not words:
            raise Drop(f"no words recognised in {len(regions)} speech region(s)")
        regions_s = [(round(item["start_s"] + a / 16000, 3), round(item["start_s"] + b / 16000, 3))
                     for a, b in regions]
        return Result("ok", outputs=[{**item, "regions": regions_s, "words": words}])


def _join(words: list[dict]) -> str:
    language = Counter(w["language"] for w in words).most_common(1)[0][0]
    joiner = "" if language in ("zh", "ja", "yue") else " "
    return joiner.join(w["text"] for w in words).strip()


class DiarizeStage(Stage):
    """Words -> segments (cut at pauses and language changes) -> speakers -> utterances.

    One item is every transcribed chunk of one source video (`group_by`), so that the speakers are clustered over the
    whole source: the same person in two chunks gets the same label."""

    name = "diarize"
    resources = Resources(cpus=1)
    group_by = "video_id"

    def __init__(self, settings, out_dir, threads: int = 1):
        super().__init__(settings, out_dir)
        self.threads = threads

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "threads": self.threads}

    def config(self) -> dict:
        return {**super().config(), "resemblyzer": version("resemblyzer"), "scikit-learn": version("scikit-learn")}

    def setup(self) -> None:
        import torch
        from resemblyzer import VoiceEncoder

        torch.set_num_threads(self.threads)
        self.encoder = VoiceEncoder("cpu", verbose=False)

    def segments(self, words: list[dict]) -> list[list[dict]]:
        s = self.settings
        out: list[list[dict]] = []
        for w in words:
            current = out[-1] if out else None
            if (current is None or w["start_s"] - current[-1]["end_s"] >= s.split_gap_s
                    or w["language"] != current[-1]["language"]
                    or w["end_s"] - current[0]["start_s"] > s.max_segment_s):
                out.append([w])
            else:
                current.append(w)
        return out

    def embed(self, audio: np.ndarray) -> np.ndarray:
        from resemblyzer import preprocess_wav

        trimmed = preprocess_wav(audio, source_sr=16000)
        return self.encoder.embed_utterance(trimmed if trimmed.size >= 8000 else audio)

    def speakers(self, embeddings: np.ndarray) -> list[int]:
        """One cluster id per segment (agglomerative, average linkage on cosine distance)."""
        if len(embeddings) == 1:
            return [0]
        from sklearn.cluster import AgglomerativeClustering

        labels = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                         distance_threshold=self.settings.speaker_distance).fit_predict(embeddings)
        return [int(label) for label in labels]

    def process(self, item: dict) -> Result:
        s = self.settings
        pieces: list[tuple[dict, list[dict]]] = []  # (chunk, segment) over the whole source, in time order
        embeddings = []
        for chunk in sorted(item["members"], key=lambda c: c["start_s"]):
            audio = _read_chunk_audio(self, chunk)
            for seg in self.segments(chunk["words"]):
                a = int((seg[0]["start_s"] - chunk["start_s"]) * 16000)
                b = int((seg[-1]["end_s"] - chunk["start_s"]) * 16000)
                embeddings.append(self.embed(audio[max(0, a - 1600):b + 1600]))  # 0.1 s either side
                pieces.append((chunk, seg))
        # One clustering over every chunk of the source: a speaker keeps one label across chunks.
        labels = self.speakers(np.stack(embeddings))
        # Merge consecutive segments of one speaker (one language, one chunk) when the pause between them is short.
        merged: list[tuple[int, dict, list[dict]]] = []
        for label, (chunk, seg) in zip(labels, pieces, strict=True):
            if (merged and merged[-1][0] == label and merged[-1][1] is chunk
                    and seg[0]["language"] == merged[-1][2][-1]["language"]
                    and seg[0]["start_s"] - merged[-1][2][-1]["end_s"] < s.merge_gap_s):
                merged[-1][2].extend(seg)
            else:
                merged.append((label, chunk, list(seg)))
        utterances = []
        names: dict[int, str] = {}  # speakers named in order of their first kept utterance in the source
        per_chunk: Counter = Counter()
        for label, chunk, words in merged:
            start, end = words[0]["start_s"], words[-1]["end_s"]
            if end - start < s.min_utterance_s:
                continue
            speaker = names.setdefault(label, f"S{len(names)}")
            index = per_chunk[chunk["id"]]
            per_chunk[chunk["id"]] += 1
            utterances.append({**{k: chunk[k] for k in ("video_id", "source", "source_sha256")},
                               "id": f"{chunk['id']}-u{index:04d}", "kind": "utterance", "chunk_id": chunk["id"],
                               "index": index, "speaker": speaker, "start_s": start, "end_s": end,
                               "language": Counter(w["language"] for w in words).most_common(1)[0][0],
                               "text": _join(words), "words": words})
        if not utterances:
            raise Drop(f"all {len(merged)} utterance(s) are shorter than {s.min_utterance_s} s")
        return Result("ok", outputs=utterances)
