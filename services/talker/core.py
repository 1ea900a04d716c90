"""Talker core: validates text, picks the engine (per request, per turn, per reply language (`talker.by_language`),
or the active one), falls back to an engine that speaks the language, and turns the engine's audio into
AudioChunks.

Hot swap: `activate` loads and warms the new engine first, then flips `active`. A turn keeps the engine its
first sentence used (`_pins`), so turns already speaking finish on the old engine."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np

from emoomni.core.config import StackConfig
from emoomni.core.text import speech_chunks
from emoomni.sdk.talker import CancelToken, TalkerPlugin
from emoomni.services.talker.interface import Activation
from emoomni.services.talker.registry import TalkerRegistry
from emoomni.v1 import instruction_pb2, media_pb2, talker_pb2

# Audio leaves as the engine makes it (Piper: one piece per sentence). Splitting a piece that already exists
# would not start playback sooner, only multiply messages; only very long pieces are split (~6 s at 22 kHz).
MAX_CHUNK_SAMPLES = 131072
_PINNED_TURNS = 4096

log = logging.getLogger(__name__)


def base_language(language: str) -> str:
    """'en-US' -> 'en', 'zh_Hans' -> 'zh'; empty -> 'en'."""
    return (language or "en").replace("_", "-").split("-")[0].lower()


class TalkerCore:
    """Engines in this process (a `SpeechEngine`)."""

    def __init__(self, cfg: StackConfig):
        self.cfg = cfg
        self.registry = TalkerRegistry(cfg.talker.plugins)
        self.active = cfg.talker.active
        self._pins: OrderedDict[str, str] = OrderedDict()
        self._pin_lock = threading.Lock()
        self._swap_lock = threading.Lock()

    def warmup(self) -> None:
        """The active engine and those of `talker.by_language`, loaded now: a first Mandarin reply must not wait
        for its engine to load (Kokoro: ~6 s here)."""
        self.registry.get(self.active)
        for name in dict.fromkeys(self.cfg.talker.by_language.values()):
            if name in self.registry.available and name != self.active:
                try:
                    self.registry.get(name)
                except Exception as exc:  # the language falls back to another engine, with a warning
                    log.warning("talker %r for %s could not load: %s", name, "/".join(
                        lang for lang, n in self.cfg.talker.by_language.items() if n == name), exc)

    def activate(self, name: str) -> Activation:
        """Load and warm `name` (while the current engine keeps speaking), then make it the active engine."""
        with self._swap_lock:
            started = time.perf_counter()
            already = self.registry.is_loaded(name)
            self.registry.get(name)
            load_ms = 0.0 if already else (time.perf_counter() - started) * 1e3
            previous, self.active = self.active, name
            return Activation(previous=previous, active=name, load_ms=load_ms)

    def _engine_name(self, talker: str, turn_id: str) -> str:
        if talker:
            self.registry.plugin_class(talker)  # unknown names fail here, before anything is pinned
        with self._pin_lock:
            if not turn_id:
                return talker or self.active
            name = self._pins.get(turn_id) or talker or self.active
            self._pins[turn_id] = name
            self._pins.move_to_end(turn_id)
            while len(self._pins) > _PINNED_TURNS:
                self._pins.popitem(last=False)
            return name

    def _speaker_for(self, name: str, language: str) -> tuple[str, TalkerPlugin, list[str]]:
        """The engine `name`, or, when it cannot speak `language`, the first configured fallback that can."""
        engine = self.registry.get(name)
        lang = base_language(language)
        if lang in engine.capabilities.languages:
            return name, engine, []
        for other in dict.fromkeys([*self.cfg.talker.language_fallbacks, *sorted(self.registry.available)]):
            cls = self.registry.available.get(other)
            if cls is None or lang not in cls.capabilities.languages:
                continue
            try:
                fallback = self.registry.get(other)
            except Exception as exc:
                log.warning("fallback talker %r could not load: %s", other, exc)
                continue
            return other, fallback, [f"talker {name!r} does not speak {lang!r}; {other!r} spoke it instead"]
        raise ValueError(f"no installed talker speaks {lang!r} (talker {name!r} speaks "
                         f"{', '.join(engine.capabilities.languages)})")

    def speak(self, text: str, instruction: instruction_pb2.AcousticInstruction, language: str = "en",
              talker: str = "", sentence_index: int = 0, turn_id: str = "",
              cancel: CancelToken | None = None) -> Iterator[media_pb2.AudioChunk]:
        """Audio chunks for `text`, each handed on as the engine makes it; seq counts within this call, `last`
        marks the final chunk. A cancelled token stops the synthesis at the engine's next piece."""
        text = text.strip()
        if not text:
            raise ValueError("the text to speak is empty")
        limit = self.cfg.limits.max_text_chars
        if len(text) > limit:
            raise ValueError(f"the text is {len(text)} characters, over the {limit} limit")
        for_language = self.cfg.talker.by_language.get(base_language(language), "")
        chosen = talker or (for_language if for_language in self.registry.available else "")
        name, engine, warnings = self._speaker_for(self._engine_name(chosen, turn_id), language)
        warnings += [f"{name} ignored {control}" for control in engine.ignored(instruction.controls)]
        seq = 0
        pending: media_pb2.AudioChunk | None = None
        for piece in speech_chunks(text):
            with self.registry.lock(name):
                for audio in engine.stream(piece, instruction, base_language(language), cancel):
                    pcm = np.asarray(audio.pcm16, dtype=np.int16)
                    for start in range(0, len(pcm), MAX_CHUNK_SAMPLES):
                        if pending is not None:
                            yield pending
                        pending = media_pb2.AudioChunk(pcm16=pcm[start:start + MAX_CHUNK_SAMPLES].tobytes(),
                                                       sample_rate=audio.sample_rate, seq=seq,
                                                       sentence_index=sentence_index, talker=name,
                                                       warnings=warnings if seq == 0 else [])
                        seq += 1
            if cancel is not None and cancel.cancelled:
                return
        if pending is None:
            raise RuntimeError(f"talker {name!r} produced no audio for {text[:40]!r}")
        pending.last = True
        yield pending


def list_talkers(core: TalkerCore) -> talker_pb2.ListTalkersResponse:
    out = talker_pb2.ListTalkersResponse()
    for name, plugin in sorted(core.registry.available.items()):
        caps = plugin.capabilities
        out.talkers.append(talker_pb2.TalkerInfo(
            name=name, languages=caps.languages, streaming=caps.streaming, controls=caps.controls,
            active=name == core.active, license=caps.license, reads_instruction_text=caps.reads_instruction_text,
            loaded=core.registry.is_loaded(name)))
    return out
