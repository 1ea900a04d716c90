"""Perception service: gRPC `Perception.Perceive` and the bus worker for turn requests."""

from __future__ import annotations

import asyncio
import threading

import grpc
import numpy as np

from emoomni.core.bus import TRANSCRIBE, Bus, Kind, subject
from emoomni.core.media import MediaError
from emoomni.core.service import StageService, error_message, now_ns, run_with_deadline, stage_deadline
from emoomni.services.perception.core import PerceptionCore
from emoomni.v1 import bus_pb2, media_pb2, perception_pb2, perception_pb2_grpc


class PerceptionService(StageService, perception_pb2_grpc.PerceptionServicer):
    name = "perception"
    grpc_service = "emoomni.v1.Perception"

    def load(self) -> None:
        self.core = PerceptionCore(self.cfg)
        self.core.warmup()
        # One clip at a time per replica: ASR and the face model already use both cores.
        self._busy = asyncio.Lock()

    async def attach(self, bus: Bus) -> None:
        self.bus = bus
        await bus.worker(Kind.REQUEST, "perception",
                         self.job_handler("perception", bus_pb2.TurnRequest.FromString, self._on_request))
        await bus.answer(TRANSCRIBE, "perception", bus_pb2.TranscribeRequest, self._transcribe)

    def add_to_grpc(self, server: grpc.aio.Server) -> None:
        perception_pb2_grpc.add_PerceptionServicer_to_server(self, server)

    async def _perceive(self, media: media_pb2.MediaInput, seconds: float,
                        face_optional: bool = False) -> perception_pb2.PerceptionResult:
        path, data = await self.media_source(media)
        stop = threading.Event()
        async with self._busy:
            try:
                return await run_with_deadline(asyncio.to_thread(self.core.perceive, path, data, face_optional, stop),
                                               seconds, "perception")
            finally:
                stop.set()  # cancelled or timed out: the thread stops at its next step instead of running on

    async def _transcribe(self, request: bus_pb2.TranscribeRequest) -> bus_pb2.TranscribeReply:
        """A live turn's provisional transcript. Best effort: never makes a turn's perception wait behind it."""
        if self._busy.locked():
            return bus_pb2.TranscribeReply(busy=True)
        if not request.pcm16 or len(request.pcm16) % 2 or not 8000 <= request.sample_rate <= 48000:
            return bus_pb2.TranscribeReply(error="expected PCM16 mono audio at 8-48 kHz")
        audio = np.frombuffer(request.pcm16, dtype=np.int16).astype(np.float32) / 32768.0
        async with self._busy:
            with self.tracer.start_as_current_span("perception.transcribe_provisional"):
                try:
                    transcript = await asyncio.to_thread(self.core.transcribe_provisional, audio,
                                                         request.sample_rate)
                except Exception as exc:  # a model error on one draft must not reach the turn
                    return bus_pb2.TranscribeReply(error=error_message(exc))
        return bus_pb2.TranscribeReply(transcript=transcript)

    async def _on_request(self, turn_id: str, job: bus_pb2.TurnRequest) -> None:
        start = now_ns()
        with self.tracer.start_as_current_span("perception.compute"):
            result = await self._perceive(job.media, stage_deadline(job.deadline_unix_ns,
                                                                    self.cfg.deadlines.perception_s),
                                          job.face_optional)
        end = now_ns()
        # The clip goes on to reasoning (omni backends watch it); reasoning deletes an upload when done.
        reason_job = bus_pb2.ReasonJob(turn_id=turn_id, perception=result, context=job.context,
                                       deadline_unix_ns=job.deadline_unix_ns, talker=job.talker, media=job.media)
        await self.bus.dispatch(subject(turn_id, Kind.PERCEPTION), reason_job, "reasoning")
        await self.publish_timing(turn_id, start, end)

    async def Perceive(self, request: perception_pb2.PerceiveRequest, context: grpc.aio.ServicerContext):
        try:
            return await self._perceive(request.media, self.cfg.deadlines.perception_s)
        except MediaError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error_message(exc))

