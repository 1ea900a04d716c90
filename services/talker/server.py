"""Talker service: gRPC `Talker.Speak` / `ListTalkers` and the bus worker that speaks reply sentences."""

from __future__ import annotations

import grpc

from emoomni.aio import iterate_in_thread
from emoomni.bus import Bus, Kind
from emoomni.service import StageService, StageTimeout, error_message, now_ns, stage_deadline
from emoomni.services.talker.core import TalkerCore
from emoomni.v1 import agent_pb2, bus_pb2, talker_pb2, talker_pb2_grpc


class TalkerService(StageService, talker_pb2_grpc.TalkerServicer):
    name = "talker"
    grpc_service = "emoomni.v1.Talker"

    def load(self) -> None:
        self.core = TalkerCore(self.cfg)
        self.core.warmup()

    async def attach(self, bus: Bus) -> None:
        self.bus = bus
        await bus.worker(Kind.SPEAK, "talker",
                         self.job_handler("talker", bus_pb2.SpeakJob.FromString, self._on_speak),
                         concurrent=self.cfg.talker.concurrency)

    def add_to_grpc(self, server: grpc.aio.Server) -> None:
        talker_pb2_grpc.add_TalkerServicer_to_server(self, server)

    def _stream(self, text, instruction, language, talker, sentence_index, seconds):
        """The engine's chunks as they are made; a chunk later than `seconds` ends the sentence with an error."""
        return iterate_in_thread(
            lambda: self.core.speak(text, instruction, language, talker, sentence_index), item_timeout_s=seconds,
            on_timeout=lambda: StageTimeout(f"speaking sentence {sentence_index} took longer than {seconds:.1f} s"))

    async def _on_speak(self, turn_id: str, job: bus_pb2.SpeakJob) -> None:
        start = now_ns()
        seconds = stage_deadline(job.deadline_unix_ns, self.cfg.deadlines.talker_sentence_s)
        with self.tracer.start_as_current_span("talker.compute") as span:
            span.set_attribute("emoomni.sentence_index", job.sentence_index)
            async for chunk in self._stream(job.text, job.instruction, job.language, "", job.sentence_index,
                                            seconds):
                await self.publish_event(turn_id, Kind.AUDIO, agent_pb2.TurnEvent(audio=chunk))
        await self.publish_timing(turn_id, start, now_ns(), sentence_index=job.sentence_index)

    async def Speak(self, request: talker_pb2.SpeakRequest, context: grpc.aio.ServicerContext):
        try:
            async for chunk in self._stream(request.text, request.instruction, request.language or "en",
                                            request.talker, 0, self.cfg.deadlines.talker_sentence_s * 10):
                yield chunk
        except (ValueError, KeyError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error_message(exc))

    async def ListTalkers(self, request, context):
        out = talker_pb2.ListTalkersResponse()
        for name, plugin in sorted(self.core.registry.available.items()):
            caps = plugin.capabilities
            out.talkers.append(talker_pb2.TalkerInfo(name=name, languages=caps.languages, streaming=caps.streaming,
                                                     controls=caps.controls, active=name == self.core.active,
                                                     license=caps.license))
        return out
