"""Reasoning service: gRPC `Reasoning.Reason` and the bus worker that turns perception into the E-CoT.

On the bus it is also the join point of the turn: it publishes the strategy the moment that part is done
(so instruction mapping overlaps reply generation), waits for the instruction on the turn's subject, and
hands each complete reply sentence with the instruction to the talker.
"""

from __future__ import annotations

import asyncio

import grpc

from emoomni.core.bus import Bus, Kind, subject
from emoomni.core.media import MediaError, read_source
from emoomni.core.service import StageService, StageTimeout, error_message, grpc_code_for, now_ns, stage_deadline
from emoomni.core.text import SentenceSplitter, spoken_language
from emoomni.core.workqueue import redelivered
from emoomni.services.reasoning.backends.interface import RESPONSE, STRATEGY, MediaSource
from emoomni.services.reasoning.core import ReasoningCore
from emoomni.v1 import agent_pb2, bus_pb2, media_pb2, reasoning_pb2, reasoning_pb2_grpc


class ReasoningService(StageService, reasoning_pb2_grpc.ReasoningServicer):
    name = "reasoning"
    grpc_service = "emoomni.v1.Reasoning"

    @property
    def load_alone(self) -> bool:
        # The omni backend imports much of transformers while loading, as the instruction stage does.
        return self.cfg.reasoning.backend == "omni"

    def load(self) -> None:
        self.core = ReasoningCore(self.cfg)
        self.core.warmup()

    async def attach(self, bus: Bus) -> None:
        self.bus = bus
        # Several turns may be in flight; the core serialises model access, the bus keeps flowing.
        await bus.worker(Kind.PERCEPTION, "reasoning",
                         self.job_handler("reasoning", bus_pb2.ReasonJob.FromString, self._on_perception),
                         concurrent=4)

    def add_to_grpc(self, server: grpc.aio.Server) -> None:
        reasoning_pb2_grpc.add_ReasoningServicer_to_server(self, server)

    async def _await_instruction(self, turn_id: str, future: asyncio.Future, deadline_ns: int):
        seconds = stage_deadline(deadline_ns, self.cfg.deadlines.instruction_s + self.cfg.deadlines.reasoning_s)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout=seconds)
        except TimeoutError as exc:
            raise StageTimeout(f"no acoustic instruction arrived for turn {turn_id} within {seconds:.1f} s") from exc

    async def _on_perception(self, turn_id: str, job: bus_pb2.ReasonJob) -> None:
        bus = self.bus
        loop = asyncio.get_running_loop()
        instruction: asyncio.Future = loop.create_future()

        async def on_instruction(msg) -> None:
            event = agent_pb2.TurnEvent.FromString(msg.data)
            if not instruction.done():
                instruction.set_result(event.instruction)

        # Subscribe before the strategy is published, so the instruction cannot be missed. A job delivered again
        # (its first replica died) may find the instruction made already: its strategy job is then a duplicate
        # that the work queue drops, so the instruction is read from where the bus keeps it.
        sub = await bus.subscribe(subject(turn_id, Kind.INSTRUCTION), on_instruction)
        try:
            kept = await bus.kept_note(subject(turn_id, Kind.INSTRUCTION)) if redelivered() else None
            if kept is not None and not instruction.done():
                instruction.set_result(agent_pb2.TurnEvent.FromString(kept).instruction)
            media = await self._clip(job.media) if self.core.needs_media else None
            await self._generate(turn_id, job, instruction, media)
        finally:
            await sub.unsubscribe()
            await self.forget_upload(job.media)

    async def _clip(self, media: media_pb2.MediaInput) -> MediaSource:
        """The clip for backends that read it, checked for existence and size before any decoding."""
        path, data = await self.media_source(media)
        return read_source(path, data, self.cfg.limits)

    async def _generate(self, turn_id: str, job: bus_pb2.ReasonJob, instruction: asyncio.Future,
                        media: MediaSource | None) -> None:
        language = job.perception.transcript.language or "en"
        splitter = SentenceSplitter()
        pending: list[str] = []  # complete sentences waiting for the instruction
        index = 0
        seq = 0  # numbers the E-CoT deltas (see EcotDelta.seq)
        ecot = reasoning_pb2.Ecot()
        start = now_ns()
        seconds = stage_deadline(job.deadline_unix_ns, self.cfg.deadlines.reasoning_s)

        async def speak(sentences: list[str], last: bool) -> None:
            nonlocal index
            pending.extend(sentences)
            if not pending or not (instruction.done() or last):
                return
            acoustic = await self._await_instruction(turn_id, instruction, job.deadline_unix_ns)
            while pending:
                text = pending.pop(0)
                is_last = last and not pending
                await self.bus.dispatch(subject(turn_id, Kind.SPEAK), bus_pb2.SpeakJob(
                    turn_id=turn_id, sentence_index=index, text=text, instruction=acoustic,
                    language=spoken_language(text, language), last_sentence=is_last,
                    deadline_unix_ns=job.deadline_unix_ns, talker=job.talker), "talker", key=index)
                index += 1

        with self.tracer.start_as_current_span("reasoning.compute") as span:
            try:
                async with asyncio.timeout(seconds):
                    async for delta in self.core.reason(job.perception, job.context, ecot, media):
                        seq += 1
                        delta.seq = seq
                        await self.publish_event(turn_id, Kind.ECOT, agent_pb2.TurnEvent(ecot_delta=delta))
                        if delta.part == STRATEGY and delta.part_done:
                            await self.bus.dispatch(subject(turn_id, Kind.STRATEGY), bus_pb2.MapJob(
                                turn_id=turn_id, strategy=ecot.strategy.strip(), language=language,
                                deadline_unix_ns=job.deadline_unix_ns), "instruction")
                        elif delta.part == RESPONSE and delta.text:
                            await speak(splitter.feed(delta.text), last=False)
            except TimeoutError as exc:  # asyncio.timeout's error has no message: say what ran out
                raise StageTimeout(f"reasoning took longer than {seconds:.1f} s") from exc
            end = now_ns()
            span.set_attribute("emoomni.response_chars", len(ecot.response))
        rest = splitter.flush()
        if rest and rest[-1] not in ".!?。！？…":
            rest += "."
        await speak([rest] if rest else [], last=True)
        if index == 0:
            raise RuntimeError("the reasoning produced no reply sentence")
        await self.publish_timing(turn_id, start, end, sentences=index)

    async def Reason(self, request: reasoning_pb2.ReasonRequest, context: grpc.aio.ServicerContext):
        if not request.perception.cues:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the perception result has no cues")
        if len(request.context) > self.cfg.limits.max_context_chars:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"context over {self.cfg.limits.max_context_chars} characters")
        try:
            media = None
            if self.core.needs_media:
                if not request.HasField("media"):
                    raise MediaError(f"the {self.cfg.reasoning.backend} reasoning backend reads the clip itself: "
                                     "send ReasonRequest.media")
                media = await self._clip(request.media)
            async for delta in self.core.reason(request.perception, request.context, media=media):
                yield delta
        except Exception as exc:
            await context.abort(grpc_code_for(exc), error_message(exc))

