"""The manifest: one record per item per stage, in SQLite (out/manifest.sqlite), so a run can stop anywhere.

A record is keyed by (stage, item id, chain hash). Item ids derive from the source's content hash (a video's id is its
SHA-256 prefix; its chunks, utterances and dialogues extend it), and the chain hash folds in the config of this stage
and of every stage before it: changing one stage's settings re-runs that stage and those after it only.

Each record is written in one SQLite transaction after the stage's files are in place (they are written to a temp
name and renamed), so a record never points at a half-written file. On resume a record counts as done only if
every file it names still exists with the recorded SHA-256; `dropped` is final; `transient` is tried again on the
next run until `max_attempts` runs have failed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from emoomni.pipe.stage import Result, sha256_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
  stage TEXT NOT NULL, item_id TEXT NOT NULL, chain TEXT NOT NULL,
  status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
  outputs TEXT NOT NULL DEFAULT '[]', files TEXT NOT NULL DEFAULT '{}', provenance TEXT NOT NULL DEFAULT '{}',
  seconds REAL NOT NULL DEFAULT 0, run_id TEXT NOT NULL DEFAULT '', updated REAL NOT NULL,
  PRIMARY KEY (stage, item_id, chain))
"""


class Manifest:
    def __init__(self, path: Path, max_attempts: int = 3):
        self.path = Path(path)
        self.out_dir = self.path.parent
        self.max_attempts = max_attempts
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(_SCHEMA)
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    def get(self, stage: str, item_id: str, chain: str) -> dict | None:
        row = self.db.execute("SELECT status, reason, attempts, outputs, files, provenance, seconds, run_id "
                              "FROM records WHERE stage=? AND item_id=? AND chain=?",
                              (stage, item_id, chain)).fetchone()
        if row is None:
            return None
        keys = ("status", "reason", "attempts", "outputs", "files", "provenance", "seconds", "run_id")
        record = dict(zip(keys, row, strict=True))
        for key in ("outputs", "files", "provenance"):
            record[key] = json.loads(record[key])
        return record

    def files_intact(self, record: dict) -> bool:
        for rel, digest in record["files"].items():
            path = self.out_dir / rel
            if not path.is_file() or sha256_file(path) != digest:
                return False
        return True

    def todo(self, stage: str, item_id: str, chain: str) -> bool:
        """Whether this item still needs this stage."""
        record = self.get(stage, item_id, chain)
        if record is None:
            return True
        if record["status"] == "ok":
            return not self.files_intact(record)
        if record["status"] == "dropped":
            return False
        return record["attempts"] < self.max_attempts

    def attempts_failed(self, stage: str, item_id: str, chain: str) -> int:
        """How many runs have failed this item transiently so far."""
        record = self.get(stage, item_id, chain)
        return record["attempts"] if record and record["status"] == "transient" else 0

    def record(self, stage: str, item_id: str, chain: str, result: Result, provenance: dict, run_id: str) -> None:
        previous = self.get(stage, item_id, chain)
        attempts = (previous["attempts"] if previous else 0) + 1
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (stage, item_id, chain, result.status, result.reason, attempts,
                 json.dumps(result.outputs, ensure_ascii=False), json.dumps(result.files),
                 json.dumps(provenance, ensure_ascii=False), result.seconds, run_id, time.time()))

    def records(self, stage: str | None = None) -> list[dict]:
        query = "SELECT stage, item_id, chain, status, reason, attempts, seconds, run_id FROM records"
        rows = self.db.execute(query + (" WHERE stage=?" if stage else ""), (stage,) if stage else ()).fetchall()
        keys = ("stage", "item_id", "chain", "status", "reason", "attempts", "seconds", "run_id")
        return [dict(zip(keys, row, strict=True)) for row in rows]
