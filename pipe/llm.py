"""The pipeline's language model: E-CoT through the reasoning service's backend interface, and the appendix-G
filters as verdicts validated by pydantic.

Default: the packaged local model in llama.cpp (the reasoning service's default backend). A model that small cannot
write a reasoned JSON verdict (and a JSON grammar over its whole vocabulary costs seconds a token here), so it
answers each criterion as its own yes/no question, one constrained token each; the answers fill the same verdict.
`--llm URL[#MODEL]`: any OpenAI-compatible endpoint for both; its key comes from
$EMOOMNI_PIPE_LLM_KEY (else $OPENAI_API_KEY), never from a file or the command line.
"""

from __future__ import annotations

import json
import os

from pydantic import BaseModel, ValidationError

from emoomni.core.config import LlamaCppConfig, LlamaCppReasoning, OpenAICompatibleConfig, OpenAICompatibleReasoning
from emoomni.services.reasoning.backends import build_backend
from emoomni.services.reasoning.backends.interface import EMOTION, INTENT, STRATEGY
from emoomni.v1 import perception_pb2

KEY_ENV = "EMOOMNI_PIPE_LLM_KEY"


class BadVerdict(RuntimeError):
    """The model's answer is not the JSON asked for (transient: the item is tried again on the next run)."""


def reasoning_config(spec: str, threads: int = 1, key_envs: tuple[str, ...] = (KEY_ENV,)):
    """The reasoning backend config for an `--llm` spec ("" = the packaged local model on `threads` threads). The key
    is read from the first of `key_envs` that is set, else $OPENAI_API_KEY."""
    if not spec:
        # The prompt-only brain: the pipe writes E-CoT data and judges with its own prompts, not the tuned layout.
        return LlamaCppReasoning(llama_cpp=LlamaCppConfig(n_threads=threads, tuned=False))
    url, _, model = spec.partition("#")
    key_env = next((name for name in key_envs if os.environ.get(name)), "OPENAI_API_KEY")
    return OpenAICompatibleReasoning(openai_compatible=OpenAICompatibleConfig(
        base_url=url, model=model or "default", api_key_env=key_env, temperature=0.2,
        response_format="json_object" if os.environ.get("EMOOMNI_PIPE_LLM_FORMAT") == "json_object" else "json_schema"))


def describe(spec: str) -> str:
    """The model's name for provenance (no key, no query string)."""
    if not spec:
        from emoomni.services.reasoning.backends.llama_cpp_backend import packaged_smollm2

        return f"llama.cpp:{packaged_smollm2().name}"
    url, _, model = spec.partition("#")
    return f"openai-compatible:{url.split('?')[0]}#{model or 'default'}"


_loaded: dict[str, PipeLLM] = {}


class PipeLLM:
    @classmethod
    def shared(cls, spec: str, threads: int = 1, key_envs: tuple[str, ...] = (KEY_ENV,)) -> PipeLLM:
        """One model per process for every stage that asks (the filter and E-CoT stages share it)."""
        key = f"{spec}|{threads}|{key_envs}"
        if key not in _loaded:
            _loaded[key] = cls(spec, threads, key_envs)
        return _loaded[key]

    def __init__(self, spec: str, threads: int = 1, key_envs: tuple[str, ...] = (KEY_ENV,)):
        self.spec = spec
        self.config = reasoning_config(spec, threads, key_envs)
        self.backend = build_backend(self.config)
        self._yes_no = None

    def ecot(self, perception: perception_pb2.PerceptionResult, context: str) -> dict[str, str]:
        """Emotion analysis, intent and strategy for one turn (the reply itself is the real one from the video)."""
        parts = {EMOTION: "", INTENT: "", STRATEGY: ""}
        for piece in self.backend.stream(perception, context):
            if piece.part not in parts:
                break  # the reply part: not needed, the real reply is the target
            parts[piece.part] += piece.text
        return {"emotion_analysis": parts[EMOTION].strip(), "intent": parts[INTENT].strip(),
                "strategy": parts[STRATEGY].strip()}

    @property
    def local(self) -> bool:
        return not self.spec

    def verdict(self, system: str, user: str | list[dict], schema: type[BaseModel], max_tokens: int = 200) -> BaseModel:
        """A JSON verdict from the endpoint, constrained to `schema` and validated by it. `user` is text, or OpenAI
        content parts (text, `video_url`, `input_audio`) for an endpoint that takes media."""
        oc = self.config.openai_compatible
        if oc.response_format == "json_object":  # llama-cpp-python's server
            response_format = {"type": "json_object", "schema": schema.model_json_schema()}
        else:
            response_format = {"type": "json_schema", "json_schema": {
                "name": schema.__name__, "schema": schema.model_json_schema(), "strict": True}}
        reply = self.backend.client.chat.completions.create(
            model=oc.model, temperature=0.0, max_tokens=max_tokens, response_format=response_format,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}])
        text = reply.choices[0].message.content or ""
        try:  # raw newlines inside strings (grammar-constrained servers let them through) are read as they are
            return schema.model_validate(json.loads(text, strict=False))
        except (ValueError, ValidationError) as exc:
            raise BadVerdict(f"the LLM's verdict is not the JSON asked for: {text[:160]!r}") from exc

    def yes(self, system: str, user: str, question: str) -> bool:
        """The local model's answer to one yes/no question, decoded as exactly one of the two words."""
        from llama_cpp import LlamaGrammar

        if self._yes_no is None:
            self._yes_no = LlamaGrammar.from_string('root ::= "yes" | "no"', verbose=False)
        reply = self.backend.llm.create_chat_completion(
            messages=[{"role": "system", "content": system},
                      {"role": "user", "content": f"{user}\n\nQuestion: {question} Answer yes or no."}],
            temperature=0.0, max_tokens=2, seed=self.config.llama_cpp.seed, grammar=self._yes_no)
        return (reply["choices"][0]["message"]["content"] or "").strip().lower().startswith("yes")
