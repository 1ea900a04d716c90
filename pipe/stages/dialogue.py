"""Dialogue stages: split each chunk's utterances into dialogues, keep the coherent interactions (appendix G.1's
semantic filter), then build each kept reply's E-CoT from the captions, check its strategy against the context
(appendix G.2's hallucination filter) and map the strategy to an acoustic instruction.

The prompts are written for this project (the appendix's criteria in our own words)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from emoomni.core.config import InstructionConfig, StackConfig
from emoomni.pipe.llm import PipeLLM, describe
from emoomni.pipe.stage import Drop, Resources, Result, Stage, config_hash
from emoomni.v1 import perception_pb2 as pb

SEMANTIC_PROMPT = (
    "You review short dialogue excerpts cut from films and TV series, to choose training data for a dialogue model. "
    "Keep an excerpt only if all three hold: (1) coherent: each line follows sensibly from what came before, with "
    "no unrelated jumps; (2) an interaction: at least one exchange where one speaker responds to another (a question "
    "and its answer, a request and its reaction, a remark and a comment), not one person talking alone; (3) "
    "complete enough: the excerpt carries an understandable point, not only fillers such as 'um' or 'okay'. An "
    "excerpt may begin mid-conversation or end on an open question. Answer only with the JSON object asked for.")

HALLUCINATION_PROMPT = (
    "You check an annotation of a dialogue reply. You get the dialogue so far, the reply that was actually said, "
    "and an explanation of the reply's strategy. The explanation must rest on what the dialogue and the observed "
    "cues show. Reject it if it invents facts that appear nowhere in the dialogue, such as the replier being tired, "
    "ill, busy or unlucky (answer_reason), or made-up states or events of the other person (context_reason). "
    "Reasonable readings of either person's feelings are fine. Also say whether the exchange suits training a "
    "caring assistant (no abusive or harmful reply). Answer only with the JSON object asked for.")


class SemanticVerdict(BaseModel):
    coherent: bool
    interaction: bool
    complete: bool
    reason: str = Field(max_length=300)


class HallucinationVerdict(BaseModel):
    verdict: Literal["pass", "reject"]
    reject_condition: Literal["none", "answer_reason", "context_reason"]
    suitable: bool


# The same criteria as single questions for the packaged local model (PipeLLM.yes); "yes" always means "keep".
SEMANTIC_QUESTIONS = {
    "coherent": "Does each line follow sensibly from the line before it?",
    "interaction": "Does one speaker respond to what another speaker said?",
    "complete": "Does the excerpt carry an understandable point, beyond fillers like 'um' or 'okay'?",
}
HALLUCINATION_QUESTIONS = {
    "answer_reason": "Does the strategy explanation avoid inventing states or events of the replier (tired, ill, "
                     "busy) that the dialogue never mentions?",
    "context_reason": "Does the strategy explanation avoid inventing states or events of the other person that the "
                      "dialogue never mentions?",
    "suitable": "Is this exchange suitable for training a caring assistant (no abusive or harmful reply)?",
}


def semantic_verdict(llm: PipeLLM, dialogue: str) -> SemanticVerdict:
    user = f"Dialogue excerpt:\n{dialogue}"
    if not llm.local:
        return llm.verdict(SEMANTIC_PROMPT, user, SemanticVerdict)
    answers = {name: llm.yes(SEMANTIC_PROMPT, user, q) for name, q in SEMANTIC_QUESTIONS.items()}
    return SemanticVerdict(**answers, reason="yes/no answers of the local model")


def hallucination_verdict(llm: PipeLLM, user: str) -> HallucinationVerdict:
    if not llm.local:
        return llm.verdict(HALLUCINATION_PROMPT, user, HallucinationVerdict)
    answers = {name: llm.yes(HALLUCINATION_PROMPT, user, q) for name, q in HALLUCINATION_QUESTIONS.items()}
    failed = next((name for name in ("answer_reason", "context_reason") if not answers[name]), "none")
    return HallucinationVerdict(verdict="pass" if failed == "none" else "reject", reject_condition=failed,
                                suitable=answers["suitable"])


def turn_line(turn: dict) -> str:
    english = f' (in English: "{turn["english_translation"]}")' if turn.get("english_translation") else ""
    return f'{turn["speaker"]}: "{turn["text"]}"{english}'


class DialogueStage(Stage):
    """One chunk's utterances (in time order) -> dialogues, cut at long silences and at `max_turns`."""

    name = "dialogue"
    group_by = "chunk_id"
    resources = Resources(cpus=0.5)

    def process(self, item: dict) -> Result:
        turns = sorted(item["members"], key=lambda t: t["start_s"])
        dialogues: list[list[dict]] = []
        for turn in turns:
            if (not dialogues or turn["start_s"] - dialogues[-1][-1]["end_s"] > self.settings.max_gap_s
                    or len(dialogues[-1]) >= self.settings.max_turns):
                dialogues.append([turn])
            else:
                dialogues[-1].append(turn)
        outputs = []
        for number, dialogue in enumerate(dialogues):
            ids = [t["id"] for t in dialogue]
            outputs.append({"id": f"{item['id']}-d{number:02d}-{config_hash(ids)[:6]}", "kind": "dialogue",
                            "chunk_id": item["id"], "source": dialogue[0]["source"],
                            "source_sha256": dialogue[0]["source_sha256"],
                            "start_s": dialogue[0]["start_s"], "end_s": dialogue[-1]["end_s"], "turns": dialogue})
        return Result("ok", outputs=outputs)


class FilterStage(Stage):
    """Drop monologues and, with the LLM, incoherent or fragmentary dialogues; emit one item per reply."""

    name = "filter"
    resources = Resources(cpus=1)

    def __init__(self, settings, out_dir, llm: str = "", threads: int = 1):
        super().__init__(settings, out_dir)
        self.llm_spec, self.threads = llm, threads

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "llm_spec": self.llm_spec, "threads": self.threads}

    def config(self) -> dict:
        return {**super().config(), "llm": describe(self.llm_spec),
                "prompt": config_hash([SEMANTIC_PROMPT, SEMANTIC_QUESTIONS])}

    def setup(self) -> None:
        self.llm = PipeLLM.shared(self.llm_spec, self.threads) if self.settings.semantic_filter else None

    def process(self, item: dict) -> Result:
        turns = item["turns"]
        if len(turns) < 2:
            raise Drop("monologue: a single utterance")
        if len({t["speaker"] for t in turns}) < 2:
            raise Drop("monologue: one speaker only")
        verdict = None
        if self.llm is not None:
            text = "\n".join(turn_line(t) for t in turns)
            verdict = semantic_verdict(self.llm, text)
            failed = [name for name in ("coherent", "interaction", "complete") if not getattr(verdict, name)]
            if failed:
                raise Drop(f"semantic filter: not {' / '.join(failed)} ({verdict.reason.strip()[:120]})")
        replies = []
        for i in range(1, len(turns)):
            if turns[i]["speaker"] == turns[i - 1]["speaker"]:
                continue
            replies.append({"id": f"{item['id']}-r{i:02d}", "kind": "reply", "dialogue_id": item["id"],
                            "source": item["source"], "source_sha256": item["source_sha256"],
                            "start_s": turns[i - 1]["start_s"], "end_s": turns[i]["end_s"],
                            "context": turns[:i - 1], "user": turns[i - 1], "reply": turns[i],
                            "semantic_verdict": verdict.model_dump() if verdict else None})
        return Result("ok", outputs=replies)


def perception_of(turn: dict) -> pb.PerceptionResult:
    """The caption stage's cues as the perception result the reasoning backends read."""
    cues = [pb.Cue(**cue) for cue in turn["cues"]]
    return pb.PerceptionResult(
        transcript=pb.Transcript(text=turn["text"], language=turn["language"],
                                 english_translation=turn.get("english_translation", "")),
        cues=cues, cue_summary=" ".join(c.text.rstrip(".") + "." for c in cues))


class EcotStage(Stage):
    """The four E-CoT parts for one reply: emotion analysis, intent and strategy from the LLM, grounded in the user
    turn's captions and the dialogue so far; the reply is the one actually said. Then the strategy's acoustic
    instruction from the instruction service's mapper."""

    name = "ecot"
    resources = Resources(cpus=1)

    def __init__(self, settings, out_dir, llm: str = "", instruction: InstructionConfig | None = None,
                 threads: int = 1):
        super().__init__(settings, out_dir)
        self.llm_spec, self.threads = llm, threads
        self.instruction = instruction or InstructionConfig()

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "llm_spec": self.llm_spec, "instruction": self.instruction,
                "threads": self.threads}

    def config(self) -> dict:
        from emoomni.services.reasoning import prompt

        return {**super().config(), "llm": describe(self.llm_spec), "instruction": self.instruction.model_dump(),
                "prompt": config_hash([prompt.SYSTEM, prompt.chat_messages(pb.PerceptionResult(), "")]),
                "filter_prompt": config_hash([HALLUCINATION_PROMPT, HALLUCINATION_QUESTIONS])}

    def setup(self) -> None:
        from emoomni.services.instruction.core import InstructionCore

        self.llm = PipeLLM.shared(self.llm_spec, self.threads)
        self.mapper = InstructionCore(StackConfig(instruction=self.instruction))

    def process(self, item: dict) -> Result:
        user, reply = item["user"], item["reply"]
        context = " ".join(turn_line(t) for t in item["context"])
        parts = self.llm.ecot(perception_of(user), context)
        if not all(parts.values()):
            raise RuntimeError(f"the LLM left an E-CoT part empty: {[k for k, v in parts.items() if not v]}")
        verdict = None
        if self.settings.hallucination_filter:
            dialogue = "\n".join(turn_line(t) for t in [*item["context"], user])
            question = (f"Dialogue so far:\n{dialogue}\n\nReply actually said:\n{turn_line(reply)}\n\n"
                        f"Strategy explanation:\n{parts['strategy']}")
            verdict = hallucination_verdict(self.llm, question)
            if verdict.verdict == "reject":
                raise Drop(f"hallucination filter: {verdict.reject_condition}")
            if not verdict.suitable:
                raise Drop("hallucination filter: not suitable for training an assistant")
        instruction = self.mapper.map(parts["strategy"], reply["language"])
        ecot = {**parts, "response": reply["text"]}
        row = {"id": item["id"], "kind": "row", "dialogue_id": item["dialogue_id"], "source": item["source"],
               "source_sha256": item["source_sha256"], "start_s": item["start_s"], "end_s": item["end_s"],
               "context": [{k: t[k] for k in ("id", "speaker", "text", "language", "start_s", "end_s")}
                           for t in item["context"]],
               "user": {k: user[k] for k in ("id", "speaker", "text", "language", "english_translation", "start_s",
                                             "end_s", "clip_video", "clip_audio", "captions")},
               "reply": {k: reply[k] for k in ("id", "speaker", "text", "language", "english_translation",
                                               "start_s", "end_s", "clip_video", "clip_audio", "captions")},
               "ecot": ecot, "instruction": instruction.text,
               "semantic_verdict": item.get("semantic_verdict"),
               "hallucination_verdict": verdict.model_dump() if verdict else None}
        return Result("ok", outputs=[row])
