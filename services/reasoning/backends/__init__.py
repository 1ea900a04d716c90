"""Reasoning backends; `interface` holds the contract."""

from emoomni.core.config import LimitsConfig, ReasoningConfig
from emoomni.services.reasoning.backends.interface import ReasoningBackend


def build_backend(cfg: ReasoningConfig, limits: LimitsConfig | None = None) -> ReasoningBackend:
    if cfg.backend == "llama_cpp":
        from emoomni.services.reasoning.backends.llama_cpp_backend import LlamaCppBackend

        return LlamaCppBackend(cfg)
    if cfg.backend == "openai_compatible":
        from emoomni.services.reasoning.backends.openai_backend import OpenAICompatibleBackend

        return OpenAICompatibleBackend(cfg)
    if cfg.backend == "omni":
        from emoomni.services.reasoning.backends.omni_backend import OmniBackend

        return OmniBackend(cfg, limits or LimitsConfig())
    raise ValueError(f"unknown reasoning backend {cfg.backend!r}")
