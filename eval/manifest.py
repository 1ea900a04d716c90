"""Manifests (one JSON object per line) and loaders that turn local copies of MELD-test and CH-SIMS-v2 into
them. A bad line is reported with its number and skipped, so one typo does not cost a whole run."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ManifestItem(BaseModel):
    """One evaluation item. `video` is absolute or relative to the manifest's folder."""

    model_config = ConfigDict(extra="forbid")

    id: str
    video: str
    context: str = ""
    reference_response: str = ""
    language: str = ""
    # Column group in report.md (the paper's Table 1 splits MELD and ch-sims-v2); default: by language.
    dataset: str = ""
    emotion: str = Field(default="", description="dataset label, kept for the report; never shown to a judge")

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        # The id names the item's output folder, so it must be a plain file name.
        if not _ID.match(value):
            raise ValueError("id must be 1-128 characters of letters, digits, '.', '_' or '-' (it names a folder)")
        return value

    def video_path(self, base: Path) -> Path:
        path = Path(self.video).expanduser()
        return path if path.is_absolute() else base / path

    @property
    def group(self) -> str:
        return self.dataset or (self.language or "unknown")


class ManifestError(BaseModel):
    line: int
    message: str


def read_manifest(path: str | Path) -> tuple[list[ManifestItem], list[ManifestError]]:
    """Valid items and one error per bad line (bad JSON, unknown or missing keys, duplicate id, no video)."""
    path = Path(path)
    items: list[ManifestItem] = []
    errors: list[ManifestError] = []
    seen: set[str] = set()
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        try:
            item = ManifestItem.model_validate(json.loads(raw))
        except json.JSONDecodeError as exc:
            errors.append(ManifestError(line=number, message=f"{path}:{number}: not JSON ({exc.msg})"))
            continue
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors())
            errors.append(ManifestError(line=number, message=f"{path}:{number}: {problems}"))
            continue
        if item.id in seen:
            errors.append(ManifestError(line=number, message=f"{path}:{number}: duplicate id {item.id!r}"))
            continue
        seen.add(item.id)
        video = item.video_path(path.parent)
        if not video.is_file():
            errors.append(ManifestError(line=number, message=f"{path}:{number}: item {item.id!r}: no such video "
                                                             f"{video}"))
            continue
        items.append(item)
    return items, errors


def write_manifest(items: list[ManifestItem], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item.model_dump(exclude_defaults=True), ensure_ascii=False) + "\n")
    return path


def _find(root: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        hits = sorted(root.rglob(name))
        if hits:
            return hits[0]
    raise FileNotFoundError(f"none of {', '.join(names)} under {root}")


def meld_test(root: str | Path, context_turns: int = 3) -> tuple[list[ManifestItem], list[str]]:
    """MELD-test from a local MELD.Raw copy: `test_sent_emo.csv` (Sr No., Utterance, Speaker, Emotion,
    Sentiment, Dialogue_ID, Utterance_ID, ...) and the test clips named `dia{D}_utt{U}.mp4` (in
    `output_repeated_splits_test/` in the release; searched anywhere under root). Context: the previous
    `context_turns` utterances of the dialogue; reference response: the next utterance, when there is one.
    Returns the items and one note per row whose clip is missing."""
    root = Path(root)
    table = _find(root, ("test_sent_emo.csv",))
    clips = {p.name: p for p in root.rglob("dia*_utt*.mp4") if not p.name.startswith("._")}
    with table.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    dialogues: dict[int, list[dict]] = {}
    for row in rows:
        dialogues.setdefault(int(row["Dialogue_ID"]), []).append(row)
    items, missing = [], []
    for dia, turns in sorted(dialogues.items()):
        turns.sort(key=lambda r: int(r["Utterance_ID"]))
        for i, row in enumerate(turns):
            name = f"dia{dia}_utt{int(row['Utterance_ID'])}.mp4"
            if name not in clips:
                missing.append(f"{table.name}: Dialogue_ID {dia} Utterance_ID {row['Utterance_ID']}: no {name}")
                continue
            earlier = turns[max(0, i - context_turns):i]
            context = " ".join(f"{r['Speaker']}: {_meld_text(r['Utterance'])}" for r in earlier)
            reference = _meld_text(turns[i + 1]["Utterance"]) if i + 1 < len(turns) else ""
            items.append(ManifestItem(id=f"meld-dia{dia}-utt{int(row['Utterance_ID'])}", video=str(clips[name]),
                                      context=context, reference_response=reference, language="en",
                                      dataset="MELD", emotion=row.get("Emotion", "")))
    return items, missing


def _meld_text(text: str) -> str:
    # The MELD CSVs carry mis-decoded Windows-1252 quotes and dashes.
    return (text.replace("\u0092", "'").replace("\u0091", "'").replace("\u0093", '"').replace("\u0094", '"')
            .replace("\u0097", "-").replace("\u0085", "...").strip())


def ch_sims_v2(root: str | Path, split: str = "test") -> tuple[list[ManifestItem], list[str]]:
    """CH-SIMS-v2 from a local copy: `label.csv` (video_id, clip_id, text, label, label_T, label_A, label_V,
    annotation, mode) and `Raw/{video_id}/{clip_id}.mp4`. Rows whose `mode` is `split` are kept; context is
    the text of the earlier clips of the same source video (up to 3)."""
    root = Path(root)
    table = _find(root, ("label.csv",))
    raw = next((p for p in (table.parent / "Raw", root / "Raw") if p.is_dir()), None)
    if raw is None:
        raise FileNotFoundError(f"no Raw/ folder beside {table}")
    with table.open(encoding="utf-8-sig", newline="") as f:
        rows = [r for r in csv.DictReader(f) if (r.get("mode") or "").strip().lower() == split]
    by_video: dict[str, list[dict]] = {}
    for row in rows:
        by_video.setdefault(row["video_id"], []).append(row)
    items, missing = [], []
    for video_id, clips in by_video.items():
        clips.sort(key=lambda r: r["clip_id"].zfill(8))
        for i, row in enumerate(clips):
            clip_id = row["clip_id"].strip()
            path = next((p for p in (raw / video_id / f"{clip_id}.mp4", raw / video_id / f"{clip_id.zfill(4)}.mp4")
                         if p.is_file()), None)
            if path is None:
                missing.append(f"{table.name}: {video_id}/{clip_id}: no video under {raw / video_id}")
                continue
            context = " ".join(r["text"].strip() for r in clips[max(0, i - 3):i])
            items.append(ManifestItem(id=f"chsims-{video_id}-{clip_id}", video=str(path), context=context,
                                      language="zh", dataset="ch-sims-v2", emotion=row.get("annotation", "")))
    return items, missing
