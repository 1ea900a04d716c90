"""Assembles one turn from the bus messages of its stages into the caller's ordered event stream.

Talker replicas may speak different sentences of a turn at once; audio is re-ordered by sentence here and
renumbered with one sequence over the whole turn.

A work item whose replica died is done again by another (see `emoomni.core.workqueue`), so a message may come
twice: every kind is forwarded once (E-CoT deltas by their `seq`, audio by sentence and the talker's chunk `seq`,
timings by stage and sentence). Reasoning is seeded per turn, so its repeat says the same words.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from emoomni.core.contract import decode
from emoomni.core.registry import STAGES
from emoomni.v1 import agent_pb2, bus_pb2, instruction_pb2, media_pb2, reasoning_pb2

_ECOT_FIELDS = {reasoning_pb2.ECOT_PART_EMOTION_ANALYSIS: "emotion_analysis", reasoning_pb2.ECOT_PART_INTENT: "intent",
                reasoning_pb2.ECOT_PART_STRATEGY: "strategy", reasoning_pb2.ECOT_PART_RESPONSE: "response"}


def union_ms(intervals: list[tuple[int, int]], lo: int, hi: int) -> float:
    """Length in ms of the union of [start, end) intervals (ns), clipped to [lo, hi]."""
    total, cursor = 0, lo
    for start, end in sorted((max(s, lo), min(e, hi)) for s, e in intervals):
        if end <= cursor:
            continue
        total += end - max(start, cursor)
        cursor = end
    return total / 1e6


@dataclass
class TurnAssembler:
    turn_id: str
    started_ns: int = field(default_factory=time.time_ns)
    ecot: reasoning_pb2.Ecot = field(default_factory=reasoning_pb2.Ecot)
    instruction: instruction_pb2.AcousticInstruction | None = None
    sample_rate: int = 0
    error: agent_pb2.TurnError | None = None
    first_audio_ns: int = 0
    _pending: dict[int, list[media_pb2.AudioChunk]] = field(default_factory=dict)
    _finished_sentences: set[int] = field(default_factory=set)
    _next_sentence: int = 0
    _total_sentences: int = -1
    _seq: int = 0
    _talker: str = ""
    _last_sent: bool = False
    _timings: list[agent_pb2.StageTiming] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)  # the kinds that come once per turn, once they came
    _ecot_seq: int = 0  # the last E-CoT delta forwarded
    _next_chunk: dict[int, int] = field(default_factory=dict)  # sentence -> the talker's next chunk seq
    _timed: set[tuple[str, int]] = field(default_factory=set)  # (stage, sentence) of the timings forwarded

    def _first(self, kind: str) -> bool:
        if kind in self._seen:
            return False
        self._seen.add(kind)
        return True

    def handle(self, kind: str, data: bytes) -> list[agent_pb2.TurnEvent]:
        """Events to forward to the caller for one bus message (its kind and message: emoomni.core.contract)."""
        tid, message = self.turn_id, decode(kind, data)
        if isinstance(message, bus_pb2.ReasonJob):
            return [agent_pb2.TurnEvent(turn_id=tid, perception=message.perception)] if self._first(kind) else []
        if isinstance(message, bus_pb2.MapJob):
            return [agent_pb2.TurnEvent(turn_id=tid, strategy=message.strategy)] if self._first(kind) else []
        if isinstance(message, bus_pb2.SpeakJob):
            if message.last_sentence:
                self._total_sentences = message.sentence_index + 1
            return self._drain()
        if not isinstance(message, agent_pb2.TurnEvent):
            return []
        event = message
        which = event.WhichOneof("event")
        if which == "ecot_delta":
            if event.ecot_delta.seq:
                if event.ecot_delta.seq <= self._ecot_seq:
                    return []
                self._ecot_seq = event.ecot_delta.seq
            field_name = _ECOT_FIELDS.get(event.ecot_delta.part)
            if field_name and event.ecot_delta.text:
                setattr(self.ecot, field_name, getattr(self.ecot, field_name) + event.ecot_delta.text)
            return [event]
        if which == "instruction":
            if not self._first(which):
                return []
            self.instruction = event.instruction
            return [event]
        if which == "timing":
            key = (event.timing.stage, event.timing.sentence_index)
            if key in self._timed:
                return []
            self._timed.add(key)
            self._timings.append(event.timing)
            if event.timing.stage == "reasoning" and event.timing.sentences and self._total_sentences < 0:
                self._total_sentences = event.timing.sentences
                return [event, *self._drain()]
            return [event]
        if which == "error":
            self.error = event.error
            return [event]
        if which == "audio":
            chunk = event.audio
            expected = self._next_chunk.get(chunk.sentence_index, 0)
            if chunk.seq < expected or chunk.sentence_index in self._finished_sentences:
                return []  # a sentence spoken again after its first talker died: this part was forwarded
            self._next_chunk[chunk.sentence_index] = chunk.seq + 1
            self.sample_rate = chunk.sample_rate
            self._pending.setdefault(chunk.sentence_index, []).append(chunk)
            if chunk.last:
                self._finished_sentences.add(chunk.sentence_index)
            return self._drain()
        return []

    def _drain(self) -> list[agent_pb2.TurnEvent]:
        """Release audio of the current sentence, moving on when it is finished."""
        out = []
        while True:
            for chunk in self._pending.pop(self._next_sentence, []):
                end_of_sentence = chunk.last
                out.append(self._emit(chunk, end_of_sentence))
            if self._next_sentence in self._finished_sentences:
                self._next_sentence += 1
                continue
            break
        if not self._last_sent and self.audio_complete and self._seq > 0:
            # The sentence count arrived after the final audio: close the stream with an empty last chunk.
            out.append(self._emit(media_pb2.AudioChunk(sample_rate=self.sample_rate, talker=self._talker,
                                                       sentence_index=self._next_sentence - 1), True))
        return out

    def _emit(self, chunk: media_pb2.AudioChunk, end_of_sentence: bool) -> agent_pb2.TurnEvent:
        if not self.first_audio_ns:
            self.first_audio_ns = time.time_ns()
        last = end_of_sentence and chunk.sentence_index == self._total_sentences - 1
        self._last_sent = self._last_sent or last
        self._talker = chunk.talker or self._talker
        out = media_pb2.AudioChunk(pcm16=chunk.pcm16, sample_rate=chunk.sample_rate, seq=self._seq,
                                   sentence_index=chunk.sentence_index, last=last, talker=chunk.talker,
                                   warnings=chunk.warnings)
        self._seq += 1
        return agent_pb2.TurnEvent(turn_id=self.turn_id, audio=out)

    @property
    def audio_complete(self) -> bool:
        return self._total_sentences > 0 and self._next_sentence >= self._total_sentences

    @property
    def complete(self) -> bool:
        """All audio released and every stage's timing received."""
        if not self.audio_complete:
            return False
        seen = {t.stage for t in self._timings}
        talker_sentences = sum(1 for t in self._timings if t.stage == "talker")
        return seen >= set(STAGES) and talker_sentences >= self._total_sentences

    def timings(self, now_ns: int | None = None) -> agent_pb2.TurnTimings:
        now_ns = now_ns or time.time_ns()
        per_stage = dict.fromkeys(STAGES, 0.0)
        for t in self._timings:
            per_stage[t.stage] = per_stage.get(t.stage, 0.0) + (t.end_unix_ns - t.start_unix_ns) / 1e6
        compute = union_ms([(t.start_unix_ns, t.end_unix_ns) for t in self._timings], self.started_ns, now_ns)
        total = (now_ns - self.started_ns) / 1e6
        return agent_pb2.TurnTimings(
            perception_ms=per_stage["perception"], reasoning_ms=per_stage["reasoning"],
            instruction_ms=per_stage["instruction"], talker_ms=per_stage["talker"],
            first_audio_ms=(self.first_audio_ns - self.started_ns) / 1e6 if self.first_audio_ns else 0.0,
            total_ms=total, framework_overhead_ms=max(0.0, total - compute))

    def done_event(self) -> agent_pb2.TurnEvent:
        for name in _ECOT_FIELDS.values():
            setattr(self.ecot, name, getattr(self.ecot, name).strip())
        done = agent_pb2.TurnDone(ecot=self.ecot, instruction=self.instruction, timings=self.timings(),
                                  sample_rate=self.sample_rate)
        return agent_pb2.TurnEvent(turn_id=self.turn_id, done=done)
