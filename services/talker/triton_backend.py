"""The talker with `talker.backend: triton`: the `talker` model in Triton (a decoupled Python-backend model that
runs TalkerCore and the plugins) speaks, and this process only forwards. Audio streams over gRPC: one
`ModelStreamInfer` stream per call, one response per chunk, each chunk handed on the moment it arrives.

It implements `SpeechEngine` (services/talker/interface.py), as TalkerCore does, so the talker service, its bus
worker and ListTalkers / SetActiveTalker work unchanged; they offer the engines the model's config.pbtxt
`talkers` parameter names, not every plugin installed here."""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from collections.abc import Iterator

import numpy as np
from google.protobuf import json_format

from emoomni.core.config import StackConfig
from emoomni.core.telemetry import headers_with_trace
from emoomni.core.triton import TritonUnavailable, connect, served_talkers, triton_error
from emoomni.sdk.talker import CancelToken
from emoomni.services.talker.interface import Activation
from emoomni.services.talker.registry import TalkerRegistry
from emoomni.v1 import instruction_pb2, media_pb2

_WARM_TEXT = "Hello."


class _RemoteRegistry(TalkerRegistry):
    """The engines the Triton model serves (its `talkers` parameter), with capabilities from the plugins
    installed here; "loaded" means warmed inside Triton by this process."""

    available_means = "served by Triton here"

    def __init__(self, served: list[str], options: dict[str, dict] | None = None):
        super().__init__(options)
        unknown = sorted(set(served) - set(self.available))
        if unknown:  # capabilities come from the plugin class, so it must be installed here as well
            raise RuntimeError(f"Triton serves talkers {unknown} that are not installed beside this service")
        self.available = {name: cls for name, cls in self.available.items() if name in served}
        self.warmed: set[str] = set()

    def is_loaded(self, name: str) -> bool:
        return name in self.warmed


class TritonTalkerCore:
    """Speaks through Triton. A small pool of clients: a tritonclient client holds one stream at a time, and
    the talker may speak `talker.concurrency` sentences at once."""

    def __init__(self, cfg: StackConfig):
        import tritonclient.grpc as grpcclient

        self.cfg = cfg
        self.url, self.model = cfg.triton.url, cfg.triton.talker_model
        self.timeout_s = max(cfg.triton.timeout_s, cfg.deadlines.talker_sentence_s)
        client = connect(self.url, self.model, wait_s=max(cfg.triton.timeout_s, 60.0))
        try:
            self.registry = _RemoteRegistry(served_talkers(client.get_model_config(self.model, as_json=True)),
                                            cfg.talker.plugins)
        finally:
            client.close()
        self.active = cfg.talker.active
        self.registry.plugin_class(self.active)  # talker.active must be one Triton serves
        self._clients: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(max(1, cfg.talker.concurrency)):
            self._clients.put(grpcclient.InferenceServerClient(self.url))
        self._ids = itertools.count()
        self._swap_lock = threading.Lock()

    def warmup(self) -> None:
        self._warm(self.active)

    def _warm(self, name: str) -> None:
        for _ in self.speak(_WARM_TEXT, instruction_pb2.AcousticInstruction(), "en", name):
            pass
        self.registry.warmed.add(name)

    def activate(self, name: str) -> Activation:
        """Load and warm `name` inside Triton (one short sentence), then make it the engine for new turns."""
        with self._swap_lock:
            self.registry.plugin_class(name)  # unknown here: refused before Triton is asked
            started = time.perf_counter()
            already = self.registry.is_loaded(name)
            self._warm(name)
            load_ms = 0.0 if already else (time.perf_counter() - started) * 1e3
            previous, self.active = self.active, name
            return Activation(previous=previous, active=name, load_ms=load_ms)

    def _inputs(self, text: str, instruction: instruction_pb2.AcousticInstruction, language: str, talker: str,
                sentence_index: int, turn_id: str) -> list:
        import tritonclient.grpc as grpcclient

        values = {"TEXT": text, "INSTRUCTION_JSON": json_format.MessageToJson(instruction, indent=None),
                  "LANGUAGE": language or "en", "TALKER": talker, "TURN_ID": turn_id}
        inputs = []
        for name, value in values.items():
            tensor = grpcclient.InferInput(name, [1], "BYTES")
            tensor.set_data_from_numpy(np.array([value.encode("utf-8")], dtype=np.object_))
            inputs.append(tensor)
        index = grpcclient.InferInput("SENTENCE_INDEX", [1], "INT32")
        index.set_data_from_numpy(np.array([sentence_index], dtype=np.int32))
        return [*inputs, index]

    def speak(self, text: str, instruction: instruction_pb2.AcousticInstruction, language: str = "en",
              talker: str = "", sentence_index: int = 0, turn_id: str = "",
              cancel: CancelToken | None = None) -> Iterator[media_pb2.AudioChunk]:
        """Audio chunks for `text` as Triton streams them; the same chunks TalkerCore.speak would yield. A
        cancelled token ends the stream and cancels the request inside Triton."""
        from tritonclient.utils import InferenceServerException

        if not text.strip():  # refused here too, without a round trip (the model refuses it the same way)
            raise ValueError("the text to speak is empty")
        # No engine named: the model's pins decide for a turn already speaking, else this replica's active one.
        inputs = self._inputs(text, instruction, language, talker or self.active, sentence_index, turn_id)
        responses: queue.SimpleQueue = queue.SimpleQueue()
        client = self._clients.get()
        finished = False
        try:
            try:
                client.start_stream(callback=lambda result, error: responses.put((result, error)),
                                    headers=headers_with_trace())
                client.async_stream_infer(self.model, inputs, request_id=f"talker-{next(self._ids)}")
            except InferenceServerException as exc:
                finished = True
                raise triton_error(exc, self.url, self.model) from exc
            while not finished:
                if cancel is not None and cancel.cancelled:
                    return
                try:
                    result, error = responses.get(timeout=self.timeout_s)
                except queue.Empty:
                    raise TritonUnavailable(f"Triton model {self.model!r} at {self.url} sent no audio for "
                                            f"{self.timeout_s:.0f} s") from None
                if error is not None:  # TritonInputError (a ValueError) for bad input, as TalkerCore raises
                    finished = True
                    raise triton_error(error, self.url, self.model) from error
                finished = bool(result.as_numpy("LAST").reshape(-1)[0])
                yield media_pb2.AudioChunk(
                    pcm16=result.as_numpy("AUDIO").astype(np.int16, copy=False).tobytes(),
                    sample_rate=int(result.as_numpy("SAMPLE_RATE").reshape(-1)[0]),
                    seq=int(result.as_numpy("SEQ").reshape(-1)[0]), sentence_index=sentence_index,
                    talker=result.as_numpy("SPOKEN_BY").reshape(-1)[0].decode(),
                    warnings=json.loads(result.as_numpy("WARNINGS_JSON").reshape(-1)[0]), last=finished)
        finally:
            # A caller that stops early (deadline, barge-in) cancels the rest of the request inside Triton.
            try:
                client.stop_stream(cancel_requests=not finished)
            finally:
                self._clients.put(client)
