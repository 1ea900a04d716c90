"""LLM-as-a-judge for the paper's 0/1/2 metrics (VS-RC, VS-RES, VT-EA, VT-RES, VT-RC, IF).

A judge is given by a spec string (docs/eval.md):
    openai:http://127.0.0.1:8000/v1?model=NAME&media=video+audio&format=json_schema
    transformers:/path/to/model-folder?gguf=model.gguf
    spec.json / spec.yaml (the same fields as JudgeSpec)
`media` declares what the endpoint can take (none, video, audio, video+audio). What it cannot take is sent
as text (perception transcript and cues for the clip; Whisper transcript and measured delivery for the
spoken reply) and the judgment records that. Output is validated JSON; malformed output is retried, then
recorded as a failure with no score. A score is never filled in for a judge that did not give one."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

JUDGE_METRICS = ("VS-RC", "VS-RES", "VT-EA", "VT-RES", "VT-RC", "IF")
RUBRIC_DIR = Path(__file__).parent / "rubrics"
MAX_MEDIA_BYTES = 32 * 1024 * 1024
MAX_TEXT_CHARS = 1500  # per input block: small local judges have short contexts


class JudgeSpecError(ValueError):
    pass


class JudgeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["openai", "transformers"]
    base_url: str = ""  # openai: the /v1 base URL
    model: str = ""  # openai: model name sent in requests
    path: str = ""  # transformers: model folder (or a .gguf file)
    gguf: str = ""  # transformers: GGUF file name inside `path`
    media: list[Literal["video", "audio"]] = Field(default_factory=list)
    # json_object: llama.cpp server style {"type":"json_object","schema":...}; json_schema: OpenAI/vLLM strict
    # schema; none: ask for JSON in the prompt only.
    format: Literal["json_object", "json_schema", "none"] = "json_object"
    max_tokens: int = 400
    retries: int = 2
    temperature: float = 0.0
    timeout_s: float = 180.0
    api_key_env: str = "OPENAI_API_KEY"
    rubric: str = "v1"

    @model_validator(mode="after")
    def _usable(self) -> JudgeSpec:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("an openai judge needs a base URL")
        if self.kind == "transformers" and not self.path:
            raise ValueError("a transformers judge needs a model folder or .gguf file")
        if self.kind == "transformers" and self.media:
            raise ValueError("the transformers judge is text-only: use media=none or an openai endpoint")
        return self

    @property
    def text_only(self) -> bool:
        return not self.media

    def label(self) -> str:
        where = self.base_url if self.kind == "openai" else self.path
        return f"{self.kind}:{where}#{self.model or self.gguf}"

    def fingerprint(self) -> str:
        """Changes when anything that can change a verdict changes, so cached verdicts are not reused wrongly."""
        data = self.model_dump(exclude={"timeout_s", "api_key_env", "retries"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def parse_judge_spec(spec: str) -> JudgeSpec:
    """A spec string or a JSON/YAML spec file; unknown kinds or options are errors that say what is allowed."""
    try:
        if spec.endswith((".json", ".yaml", ".yml")) and Path(spec).is_file():
            return JudgeSpec.model_validate(yaml.safe_load(Path(spec).read_text()))
        kind, sep, rest = spec.partition(":")
        if not sep or kind not in ("openai", "transformers"):
            raise JudgeSpecError(f"unknown judge spec {spec!r}: expected openai:URL?model=NAME[&media=...], "
                                 "transformers:FOLDER[?gguf=FILE], or a .json/.yaml spec file")
        parts = urlsplit(rest) if kind == "openai" else urlsplit("file://" + rest)
        options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        fields: dict = {"kind": kind}
        if kind == "openai":
            if not parts.scheme.startswith("http"):
                raise JudgeSpecError(f"judge spec {spec!r}: the openai base URL must start with http:// or https://")
            fields["base_url"] = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        else:
            fields["path"] = parts.path
        media = options.pop("media", "none")
        fields["media"] = [] if media in ("", "none") else media.replace(",", "+").split("+")
        fields.update(options)
        return JudgeSpec.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise JudgeSpecError(f"judge spec {spec!r}: {problems}") from None


# ---------------------------------------------------------------- rubric


class MetricCriteria(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str
    question: str
    two: str = Field(alias="2")
    one: str = Field(alias="1")
    zero: str = Field(alias="0")


class RubricPrompt(BaseModel):
    inputs: list[Literal["user_clip", "reply_text", "ecot", "reply_speech", "instruction"]]
    task: str
    metrics: dict[str, MetricCriteria]


class Rubric(BaseModel):
    version: str
    role: str
    answer_note: str
    prompts: dict[str, RubricPrompt]


@cache
def load_rubric(version: str = "v1") -> Rubric:
    path = RUBRIC_DIR / f"{version}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(RUBRIC_DIR.glob("*.yaml")))
        raise JudgeSpecError(f"no rubric {version!r} (known: {known})")
    rubric = Rubric.model_validate(yaml.safe_load(path.read_text()))
    covered = sorted(m for p in rubric.prompts.values() for m in p.metrics)
    if covered != sorted(JUDGE_METRICS):
        raise ValueError(f"rubric {version} covers {covered}, expected {sorted(JUDGE_METRICS)}")
    return rubric


def verdict_schema(metrics: list[str]) -> dict:
    """JSON schema of one answer: per metric a reason (first, so the model reasons before it scores) and a
    score of 0, 1 or 2."""
    one = {"type": "object", "properties": {"reason": {"type": "string", "maxLength": 300},
                                            "score": {"type": "integer", "enum": [0, 1, 2]}},
           "required": ["reason", "score"], "additionalProperties": False}
    return {"type": "object", "properties": dict.fromkeys(metrics, one), "required": list(metrics),
            "additionalProperties": False}


# ---------------------------------------------------------------- verdicts


class MetricVerdict(BaseModel):
    model_config = ConfigDict(extra="ignore")

    reason: str = ""
    score: Literal[0, 1, 2]


class VerdictError(ValueError):
    pass


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)


def parse_verdict(text: str, metrics: list[str]) -> dict[str, MetricVerdict]:
    """The judge's answer as validated verdicts, or VerdictError naming what is wrong. Only a missing code
    fence is tolerated; anything else malformed is an error (no partial or guessed scores)."""
    body = _FENCE.sub("", text.strip()).strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise VerdictError(f"not valid JSON ({exc.msg} at char {exc.pos}): {text[:160]!r}") from None
    if not isinstance(data, dict):
        raise VerdictError(f"expected a JSON object, got {type(data).__name__}")
    out = {}
    for metric in metrics:
        if metric not in data:
            raise VerdictError(f"no {metric!r} in the answer (keys: {sorted(data)})")
        try:
            out[metric] = MetricVerdict.model_validate(data[metric])
        except ValidationError as exc:
            raise VerdictError(f"{metric}: {exc.errors()[0]['msg']}") from None
    return out


class Judgment(BaseModel):
    """One rubric prompt's outcome for one item."""

    prompt: str
    status: Literal["ok", "failed"]
    scores: dict[str, int | None]
    reasons: dict[str, str] = Field(default_factory=dict)
    attempts: int
    errors: list[str] = Field(default_factory=list)
    inputs_as_text: list[str] = Field(default_factory=list)  # inputs the judge got as text instead of media


# ---------------------------------------------------------------- judges


class OpenAIJudge:
    """Any OpenAI-compatible chat endpoint: vLLM serving an omni model, llama.cpp server, a hosted API."""

    def __init__(self, spec: JudgeSpec):
        from openai import OpenAI

        self.spec = spec
        self.client = OpenAI(base_url=spec.base_url, api_key=os.environ.get(spec.api_key_env) or "not-needed",
                             timeout=spec.timeout_s, max_retries=1)

    def complete(self, system: str, parts: list[dict], schema: dict) -> str:
        extra = {}
        if self.spec.format == "json_object":
            extra["response_format"] = {"type": "json_object", "schema": schema}
        elif self.spec.format == "json_schema":
            extra["response_format"] = {"type": "json_schema",
                                        "json_schema": {"name": "verdict", "schema": schema, "strict": True}}
        content = "\n\n".join(p["text"] for p in parts) if all(p["type"] == "text" for p in parts) else parts
        reply = self.client.chat.completions.create(
            model=self.spec.model or "judge", temperature=self.spec.temperature, max_tokens=self.spec.max_tokens,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": content}], **extra)
        return reply.choices[0].message.content or ""


class TransformersJudge:
    """A local causal LM read by transformers (a model folder, or a GGUF file via `gguf`). Text only: a media
    spec is refused. The answer's JSON skeleton is forced and only the reasons are generated, and each score
    is the most likely of the tokens 0, 1, 2, so a small model always yields well-formed JSON."""

    def __init__(self, spec: JudgeSpec):
        if spec.media:
            raise JudgeSpecError("the transformers judge is text-only; use media=none or an openai endpoint")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(spec.path)
        folder, gguf = (path.parent, path.name) if path.suffix == ".gguf" else (path, spec.gguf)
        kwargs = {"gguf_file": gguf} if gguf else {}
        self.spec = spec
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), **kwargs)
        self.model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, **kwargs).eval()
        self.digits = [self.tokenizer.encode(d, add_special_tokens=False)[-1] for d in "012"]

    def complete(self, system: str, parts: list[dict], schema: dict) -> str:
        metrics = list(schema["properties"])
        messages = [{"role": "system", "content": system},
                    {"role": "user", "content": "\n\n".join(p["text"] for p in parts)}]
        prompt = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        answer: dict[str, dict] = {}
        text = prompt
        budget = max(8, self.spec.max_tokens // max(1, len(metrics)))
        for i, metric in enumerate(metrics):
            text += ("{" if i == 0 else ", ") + f'"{metric}": {{"reason": "'
            reason = self._generate_until_quote(text, budget)
            text += reason.replace('"', "'") + '", "score": '
            score = self._pick_digit(text)
            text += f"{score}}}"
            answer[metric] = {"reason": reason, "score": score}
        return json.dumps(answer)

    def _generate_until_quote(self, text: str, max_new: int) -> str:
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with self.torch.inference_mode():
            out = self.model.generate(**ids, max_new_tokens=max_new, do_sample=False, stop_strings=['"'],
                                      tokenizer=self.tokenizer, pad_token_id=self.tokenizer.eos_token_id)
        new = self.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        return new.split('"', 1)[0].replace("\n", " ").strip()

    def _pick_digit(self, text: str) -> int:
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with self.torch.inference_mode():
            logits = self.model(**ids).logits[0, -1]
        return int(logits[self.digits].argmax())


def build_judge(spec: JudgeSpec):
    return OpenAIJudge(spec) if spec.kind == "openai" else TransformersJudge(spec)


# ---------------------------------------------------------------- prompts


def _clip_text(turn: dict, item: dict) -> str:
    p = turn["perception"]
    cues = "\n".join(f"- {c.get('text', '')}" for c in p.get("cues", []))
    text = (f"The user's clip (you cannot see or hear it; this is what the assistant's perception measured):\n"
            f"What the user said ({p.get('language') or 'unknown language'}): \"{p.get('transcript', '')}\"\n"
            f"Measured cues:\n{cues or '- none'}")
    return text[:MAX_TEXT_CHARS]


def _speech_text(turn: dict, objective: dict | None) -> str:
    if not objective:
        return f'The spoken reply (you cannot hear it; its text): "{turn["ecot"]["response"]}"'
    mine, neutral = objective.get("reply_features", {}), objective.get("neutral_features", {})
    delivery = []
    if "pitch" in mine and "pitch" in neutral:
        delivery.append(f"pitch {100 * (mine['pitch'] / neutral['pitch'] - 1):+.0f}%")
    if "loudness" in mine and "loudness" in neutral:
        delivery.append(f"loudness {mine['loudness'] - neutral['loudness']:+.1f} dB")
    if "rate" in mine and "rate" in neutral:
        delivery.append(f"speaking rate {100 * (neutral['rate'] / mine['rate'] - 1):+.0f}%")
    measured = ", ".join(delivery) or "not measured"
    return (f"The spoken reply (you cannot hear it). Speech recognition heard: \"{objective['asr_transcript']}\"\n"
            f"Its delivery compared with a neutral reading of the same words by the same voice: {measured}.")


def _part(kind: str, turn: dict, item: dict, objective: dict | None, spec: JudgeSpec,
          video: Path, wav: Path) -> tuple[list[dict], str | None]:
    """Message parts for one rubric input, and the input's name if it had to be given as text."""
    if kind == "user_clip":
        context = f"\nEarlier conversation: {item['context']}" if item.get("context") else ""
        if "video" in spec.media:
            return [{"type": "text", "text": f"The user's clip is attached.{context}"},
                    {"type": "video_url", "video_url": {"url": _data_uri(video, "video/mp4")}}], None
        return [{"type": "text", "text": _clip_text(turn, item) + context}], kind
    if kind == "reply_speech":
        if "audio" in spec.media:
            return [{"type": "text", "text": "The assistant's spoken reply is attached."},
                    {"type": "input_audio", "input_audio": {"data": _b64(wav), "format": "wav"}}], None
        return [{"type": "text", "text": _speech_text(turn, objective)}], kind
    e = turn["ecot"]
    if kind == "reply_text":
        return [{"type": "text", "text": f"The assistant's reply: \"{e['response']}\""}], None
    if kind == "ecot":
        return [{"type": "text", "text": (f"The assistant's reasoning:\nEmotion analysis: {e['emotion_analysis']}\n"
                                          f"Inferred intent: {e['intent']}\nStrategy: {e['strategy']}\n"
                                          f"Reply: \"{e['response']}\"")[:2 * MAX_TEXT_CHARS]}], None
    if kind == "instruction":
        return [{"type": "text", "text": f"The style instruction the voice was given: \"{turn['instruction']}\""}], None
    raise ValueError(kind)


def _b64(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_MEDIA_BYTES:
        raise ValueError(f"{path} is {size} bytes, over the {MAX_MEDIA_BYTES}-byte limit for inline media")
    return base64.b64encode(path.read_bytes()).decode()


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{_b64(path)}"


def rubric_text(rubric: Rubric, name: str) -> str:
    prompt = rubric.prompts[name]
    lines = [prompt.task]
    for metric, c in prompt.metrics.items():
        lines += [f"{metric} ({c.name}): {c.question}", f"  2: {c.two}", f"  1: {c.one}", f"  0: {c.zero}"]
    keys = ", ".join(f'"{m}": {{"reason": "...", "score": 0|1|2}}' for m in prompt.metrics)
    lines.append(f"{rubric.answer_note} Shape: {{{keys}}}")
    return "\n".join(lines)


def judge_item(judge, spec: JudgeSpec, turn: dict, item: dict, objective: dict | None, video: Path,
               wav: Path) -> list[Judgment]:
    """Every rubric prompt for one item; each is retried on malformed output, then recorded as failed."""
    rubric = load_rubric(spec.rubric)
    out = []
    for name, prompt in rubric.prompts.items():
        metrics = list(prompt.metrics)
        parts, as_text = [], []
        for kind in prompt.inputs:
            got, text_name = _part(kind, turn, item, objective, spec, video, wav)
            parts += got
            as_text += [text_name] if text_name else []
        parts.append({"type": "text", "text": rubric_text(rubric, name)})
        errors: list[str] = []
        verdicts = None
        attempts = 0
        for attempts in range(1, spec.retries + 2):
            try:
                verdicts = parse_verdict(judge.complete(rubric.role, parts, verdict_schema(metrics)), metrics)
                break
            except VerdictError as exc:
                errors.append(f"attempt {attempts}: {exc}")
            except Exception as exc:  # an unreachable endpoint or a server error: also a recorded failure
                errors.append(f"attempt {attempts}: {type(exc).__name__}: {exc}")
        if verdicts is None:
            out.append(Judgment(prompt=name, status="failed", scores=dict.fromkeys(metrics), attempts=attempts,
                                errors=errors, inputs_as_text=as_text))
        else:
            out.append(Judgment(prompt=name, status="ok", scores={m: v.score for m, v in verdicts.items()},
                                reasons={m: v.reason for m, v in verdicts.items()}, attempts=attempts,
                                errors=errors, inputs_as_text=as_text))
    return out
