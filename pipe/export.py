"""Export: the training files, rewritten in full from the manifest's current outputs at the end of every run (sorted
by id, written to a temp name and renamed), so a re-run never duplicates a line.

- `stage1.jsonl`: one line per captioned utterance, ms-swift messages format (thinker stage 1: describe what is
  seen and heard; target `free`).
- `stage2.jsonl`: one line per kept reply: the user turn's clip and the dialogue so far in, the tagged E-CoT out
  (thinker stage 2; target `ecot`). Both are what `emoomni train thinker --data` reads.
- `talker.jsonl`: per reply, the acoustic instruction, the reply text and the reply's own audio.
- `rows.jsonl`: every kept reply with all its annotations and provenance (captions, verdicts, times, source hash).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from emoomni.pipe.stage import temp_path
from emoomni.pipe.stages.annotate import CAPTION_FIELDS
from emoomni.services.reasoning.backends.omni_backend import SYSTEM_PROMPT

STAGE1_QUESTION = ("<video>Describe what you see and hear: the scene, what is said, the voice, the face, the body "
                   "language and the overall sentiment.")
STAGE2_QUESTION = "<video>Watch and listen to me, then answer in the four parts."
_LABELS = {"video_description": "Video", "speech_content": "Speech", "acoustic_features": "Voice",
           "facial_expression": "Face", "body_language": "Body language", "sentiment": "Sentiment"}


def caption_text(captions: dict) -> str:
    return "\n".join(f"{_LABELS[name]}: {captions[name]}" for name in CAPTION_FIELDS)


def ecot_answer(ecot: dict) -> str:
    return "\n".join(f"<{tag}>{ecot[key]}</{tag}>" for tag, key in (
        ("emotion", "emotion_analysis"), ("intent", "intent"), ("strategy", "strategy"), ("response", "response")))


def context_text(row: dict) -> str:
    if not row["context"]:
        return ""
    lines = "\n".join(f'{t["speaker"]}: {t["text"]}' for t in row["context"])
    return f"Earlier in the conversation:\n{lines}\n"


def stage1_line(utterance: dict) -> dict:
    return {"id": utterance["id"], "messages": [
        {"role": "user", "content": STAGE1_QUESTION},
        {"role": "assistant", "content": caption_text(utterance["captions"])}], "videos": [utterance["clip_video"]]}


def stage2_line(row: dict) -> dict:
    return {"id": row["id"], "messages": [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": context_text(row) + STAGE2_QUESTION},
        {"role": "assistant", "content": ecot_answer(row["ecot"])}], "videos": [row["user"]["clip_video"]]}


def talker_line(row: dict) -> dict:
    return {"id": row["id"], "instruction": row["instruction"], "text": row["reply"]["text"],
            "language": row["reply"]["language"], "audio": row["reply"]["clip_audio"]}


def write_jsonl(path: Path, lines: list[dict]) -> Path:
    tmp = temp_path(path)
    with open(tmp, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def export(out_dir: Path, outputs: dict[str, list[dict]], summary: dict) -> dict[str, Path]:
    utterances = sorted(outputs.get("caption", []), key=lambda u: u["id"])
    rows = sorted(outputs.get("ecot", []), key=lambda r: r["id"])
    files = {
        "stage1": write_jsonl(out_dir / "stage1.jsonl", [stage1_line(u) for u in utterances]),
        "stage2": write_jsonl(out_dir / "stage2.jsonl", [stage2_line(r) for r in rows]),
        "talker": write_jsonl(out_dir / "talker.jsonl", [talker_line(r) for r in rows]),
        "rows": write_jsonl(out_dir / "rows.jsonl", rows),
    }
    tmp = temp_path(out_dir / "summary.json")
    tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, out_dir / "summary.json")
    files["summary"] = out_dir / "summary.json"
    return files
