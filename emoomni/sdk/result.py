"""Collects a turn's event stream into one result (used by the CLI, the Python client and benchmarks).

Only protobuf at import: a client-only install (`emoomni[client]`) collects turns; numpy and soundfile are
needed only for `audio` and `write`."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf.json_format import MessageToDict

from emoomni.v1 import agent_pb2, perception_pb2

if TYPE_CHECKING:
    import numpy as np


@dataclass
class TurnResult:
    turn_id: str = ""
    perception: perception_pb2.PerceptionResult = field(default_factory=perception_pb2.PerceptionResult)
    strategy_at_ms: float = 0.0  # when the complete strategy reached the caller
    done: agent_pb2.TurnDone | None = None
    audio_parts: list[bytes] = field(default_factory=list)
    sample_rate: int = 0
    events: int = 0
    started: float = field(default_factory=time.perf_counter)
    first_audio_client_ms: float = 0.0
    stage_timings: list[agent_pb2.StageTiming] = field(default_factory=list)
    # Engines that spoke the turn (one, unless something is wrong) and what they could not do as asked.
    talkers: set[str] = field(default_factory=set)
    talker_warnings: list[str] = field(default_factory=list)

    def add(self, event: agent_pb2.TurnEvent) -> None:
        self.events += 1
        self.turn_id = self.turn_id or event.turn_id
        which = event.WhichOneof("event")
        if which == "perception":
            self.perception = event.perception
        elif which == "strategy":
            self.strategy_at_ms = (time.perf_counter() - self.started) * 1e3
        elif which == "audio":
            if not self.first_audio_client_ms:
                self.first_audio_client_ms = (time.perf_counter() - self.started) * 1e3
            self.audio_parts.append(event.audio.pcm16)
            self.talkers.add(event.audio.talker)
            self.talker_warnings += [w for w in event.audio.warnings if w not in self.talker_warnings]
            self.sample_rate = event.audio.sample_rate or self.sample_rate
        elif which == "timing":
            self.stage_timings.append(event.timing)
        elif which == "done":
            self.done = event.done
            self.sample_rate = event.done.sample_rate or self.sample_rate

    @property
    def audio(self) -> np.ndarray:
        import numpy as np

        return np.frombuffer(b"".join(self.audio_parts), dtype=np.int16)

    @property
    def audio_samples(self) -> int:
        return sum(len(part) for part in self.audio_parts) // 2

    def to_json(self) -> dict:
        assert self.done is not None, "the turn is not complete"
        p = MessageToDict(self.perception, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        perception = {"transcript": self.perception.transcript.text, "language": self.perception.transcript.language,
                      "cue_summary": self.perception.cue_summary, "cues": p.get("cues", []),
                      "words": p.get("transcript", {}).get("words", []), "face": p.get("face", {}),
                      "prosody": p.get("prosody", {}), "warnings": list(self.perception.warnings)}
        timings = self.done.timings
        return {
            "turn_id": self.turn_id,
            "perception": perception,
            "ecot": {"emotion_analysis": self.done.ecot.emotion_analysis, "intent": self.done.ecot.intent,
                     "strategy": self.done.ecot.strategy, "response": self.done.ecot.response},
            "instruction": self.done.instruction.text,
            "instruction_controls": MessageToDict(self.done.instruction.controls, preserving_proto_field_name=True),
            "timings_ms": {"perception": round(timings.perception_ms, 1), "reasoning": round(timings.reasoning_ms, 1),
                           "instruction": round(timings.instruction_ms, 1), "talker": round(timings.talker_ms, 1),
                           "first_audio": round(timings.first_audio_ms, 1), "total": round(timings.total_ms, 1),
                           "framework_overhead": round(timings.framework_overhead_ms, 1)},
            "audio": {"sample_rate": self.sample_rate,
                      "seconds": round(self.audio_samples / max(self.sample_rate, 1), 2),
                      "talker": ", ".join(sorted(self.talkers)), "warnings": self.talker_warnings},
        }

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        turn_path, wav_path = out / "turn.json", out / "reply.wav"
        turn_path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n")
        import soundfile as sf

        sf.write(wav_path, self.audio, self.sample_rate, subtype="PCM_16")
        return turn_path, wav_path

    def waterfall(self, width: int = 48) -> str:
        """A text latency waterfall: one bar per stage on the turn's own time axis."""
        if not self.done or not self.stage_timings:
            return ""
        t = self.done.timings
        origin = min(s.start_unix_ns for s in self.stage_timings)
        end = max(s.end_unix_ns for s in self.stage_timings)
        span = max(end - origin, 1)
        rows = []
        order = {"perception": 0, "reasoning": 1, "instruction": 2, "talker": 3}
        for s in sorted(self.stage_timings, key=lambda s: (order.get(s.stage, 9), s.sentence_index)):
            a = int((s.start_unix_ns - origin) / span * width)
            b = max(a + 1, int((s.end_unix_ns - origin) / span * width))
            label = s.stage if s.stage != "talker" else f"talker #{s.sentence_index}"
            rows.append(f"  {label:<14}|{' ' * a}{'#' * (b - a)}{' ' * (width - b)}| "
                        f"{(s.end_unix_ns - s.start_unix_ns) / 1e6:7.0f} ms")
        rows.append(f"  {'first audio':<14} {t.first_audio_ms:7.0f} ms   total {t.total_ms:7.0f} ms   "
                    f"framework overhead {t.framework_overhead_ms:5.1f} ms")
        return "\n".join(rows)
