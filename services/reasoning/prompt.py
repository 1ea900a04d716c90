"""The E-CoT prompt, shared by every text backend. Written for this project; short on purpose, because the
default model is small and every prompt token costs time on a 2-core CPU. The system prompt and the worked
examples never change, so llama.cpp keeps them cached between turns.

Against template collapse (every turn read as "excited", every reply opening "Congratulations"): the worked
examples cover four different feelings in both languages, each with its own kind of strategy and its own way
of opening the reply; the reading is written by code from the measured cues (reading.py); and the strategy
opens with a manner that follows that reading (STRATEGY_MANNER), which the model then completes. Known
weakness (benchmarks/RESULTS.md): a 0.5B model still copies the last example's reply opener or the user's words.
"""

from __future__ import annotations

import re

from emoomni.v1 import perception_pb2

# What perception appends to the words of non-English speech for English-only models.
_ENGLISH_RENDERING = re.compile(r'" \(in English: ".*"\)$')

SYSTEM = (
    "You are EmoOmni, a caring companion answering a person who talks to you on camera. You get what they "
    "said, measurements of their face and voice, and the reading of their feeling. Answer in four parts: "
    "Emotion (what the measurements show), Intent (what the person wants from you), Strategy (your tone, pace "
    "and approach, fitting their feeling: comfort sadness, calm worry, take anger seriously, share joy), Reply "
    "(one or two short sentences you say aloud to the person, speaking to them as \"you\": answer what they "
    "said in your own fresh words, never retell their news as if it were yours, in the language asked for)."
)

# The tuned brain's system prompt: the shipped E-CoT LoRA (training/data/ecot) was trained on it, with no worked
# examples, so every turn's prompt is this short line and the turn itself.
TUNED_SYSTEM = ("You are EmoOmni, a kind companion talking with a person on camera. From their words, face and "
                "voice, write Emotion, Intent, Strategy and Reply; the reply speaks to them as you, in their language.")

# Worked examples in the format the backends continue. The situations are invented for this project.
EXAMPLES = (
    ('Cues: said "The vet called, the tests on my dog came back bad."; face mostly sad; voice quiet; slow speech\n'
     "Reply in English.",
     "Emotion: Overall, the user seems sad and worried.\n"
     "Intent: The user wants comfort and someone to share the weight of the news.\n"
     "Strategy: I will respond gently and softly, with warmth, give them room to feel it and offer to listen.\n"
     "Reply: Oh, I'm so sorry, that is hard news about someone you love. Do you want to tell me what the vet said?"),
    ('Cues: said "我面试通过了，下周一就去上班！"; face mostly happy; voice loud; fast speech\n'
     "Reply in Mandarin Chinese.",
     "Emotion: Overall, the user seems happy.\n"
     "Intent: The user wants to share the good news and have someone celebrate with them.\n"
     "Strategy: I will respond warmly and cheerfully, celebrate with them and ask what they look forward to.\n"
     "Reply: 太棒了，恭喜你！新工作里你最期待的是什么？"),
    ('Cues: said "The bank froze my card while I was abroad and nobody picks up!"; face mostly angry; voice loud\n'
     "Reply in English.",
     "Emotion: Overall, the user seems angry.\n"
     "Intent: The user wants to be taken seriously and to get their card working again.\n"
     "Strategy: I will respond calmly and seriously, admit it is unfair and give one practical next step.\n"
     "Reply: That is maddening when you are far from home. Try the card's emergency number on the back, it is "
     "staffed all night."),
    ('Cues: said "明天要体检，我有点怕查出什么问题。"; face mostly fear; fast speech\n'
     "Reply in Mandarin Chinese.",
     "Emotion: Overall, the user seems worried.\n"
     "Intent: The user wants to feel less afraid before the check-up.\n"
     "Strategy: I will respond calmly and slowly, to reassure them, and help them think of one calming step.\n"
     "Reply: 担心是正常的，说明你在乎自己的身体。今晚早点睡，明天我陪你一起面对。"),
)

# Openers that keep a small model on track; they are part of the part's text.
EMOTION_OPENER = "Overall, the user seems "
INTENT_OPENER = "The user wants"
STRATEGY_OPENER = "I will respond"

# How the strategy opens for each reading (the model continues it). Worded so that the instruction mapper
# reads the delivery that fits: calm and slow for worry, soft for sadness, steady for anger, bright for joy.
STRATEGY_MANNER = {
    "happy": "warmly and cheerfully,", "excited": "with bright, lively energy,", "joyful": "warmly and cheerfully,",
    "proud": "with bright, warm energy,", "relieved": "warmly and gently,", "hopeful": "warmly and encouragingly,",
    "amused": "playfully, with a smile,", "playful": "playfully, with a smile,", "calm": "calmly and kindly,",
    "neutral": "clearly and plainly,", "curious": "clearly and with interest,",
    "surprised": "with lively curiosity,", "confused": "clearly and patiently,",
    "anxious": "calmly and slowly, to reassure them,", "worried": "calmly and slowly, to reassure them,",
    "nervous": "calmly and slowly, to reassure them,", "fearful": "calmly and slowly, to reassure them,",
    "sad": "gently, softly and slowly, with warmth,", "disappointed": "gently, softly and slowly, with warmth,",
    "lonely": "gently, softly and slowly, with warmth,", "tired": "gently and slowly,",
    "frustrated": "calmly and seriously,", "angry": "calmly and seriously,", "annoyed": "calmly and seriously,",
    "embarrassed": "gently and kindly,", "guilty": "gently and kindly,", "defensive": "calmly and kindly,",
    "disgusted": "calmly and seriously,", "grateful": "warmly and gently,",
    "grieving": "gently, softly and slowly, with warmth,",
    "sarcastic": "calmly and kindly, with a light touch,",
}

LANGUAGE_NAMES = {"zh": "Mandarin Chinese", "en": "English"}

# Words that insult or mock a person: in a reply they are never right, even in play or aimed at the agent itself
# (the "……你是一个傻子。" to a teasing user). The reply checks look for them; the llama.cpp backend never lets
# its model say them (NEVER_SAID_*: whole tokens in English, any token holding one of these in Mandarin).
INSULTS_EN = ("stupid", "idiot", "idiotic", "dumb", "moron", "fool", "foolish", "loser", "pathetic", "ugly",
              "shut up", "lame", "useless", "clown", "dummy", "nitwit", "jerk", "ridiculous you", "get lost")
INSULTS_ZH = ("傻子", "傻瓜", "笨蛋", "白痴", "蠢", "废物", "闭嘴", "滚", "神经病", "脑残", "猪头", "没用的东西",
              "丢人", "活该", "弱智", "二百五", "傻")
NEVER_SAID_EN = ("stupid", "idiot", "idiots", "idiotic", "dumb", "moron", "loser", "losers", "pathetic", "dummy",
                 "nitwit", "jerk", "fool", "foolish")
NEVER_SAID_ZH = ("傻", "蠢", "笨", "白痴", "废物", "闭嘴", "脑残", "猪头", "弱智", "活该")
# Readings after which a reply must not celebrate.
NEGATIVE_READINGS = {"anxious", "worried", "nervous", "fearful", "sad", "disappointed", "lonely", "tired",
                     "frustrated", "angry", "annoyed", "embarrassed", "guilty", "disgusted", "grieving", "sarcastic"}


def manner_label(reading: str) -> str:
    """The reading label the strategy's manner follows: the first one, unless the reading also holds a
    negative feeling (a smile over bad news): then that one, because cheering up bad news hurts more than
    being gentle with good news."""
    labels = [label.strip(" .") for label in reading.split(" and ") if label.strip(" .")]
    return next((label for label in labels if label in NEGATIVE_READINGS), labels[0] if labels else "")


def line_of(answer: str, label: str) -> str:
    """One part's line of a worked example, without its label."""
    return next(line for line in answer.splitlines() if line.startswith(f"{label}:"))[len(label) + 1:].strip()


def reply_of(answer: str) -> str:
    """The Reply line of a worked example."""
    return line_of(answer, "Reply")


def reply_language(perception: perception_pb2.PerceptionResult, languages: list[str]) -> str:
    """The language to answer in: the one heard, if the stack answers in it; else English."""
    heard = (perception.transcript.language or "en").split("-")[0].lower()
    return heard if heard in languages else "en"


def cue_block(perception: perception_pb2.PerceptionResult, context: str, language: str = "", tuned: bool = False
              ) -> str:
    """The earlier conversation, then this turn's measured cues in their brief form (the full sentences open the
    emotion analysis instead). The conversation comes first because it only grows from one turn to the next:
    llama.cpp then reuses the cached prompt up to the new turn instead of reading the whole history again."""
    briefs = [c.brief or c.text for c in perception.cues if c.modality != "reading"]
    if tuned:  # the tuned brain reads Mandarin itself and was trained on the words alone, without the rendering
        briefs = [_ENGLISH_RENDERING.sub('"', b) if b.startswith("said ") else b for b in briefs]
    text = "Cues: " + "; ".join(briefs)
    if context.strip():
        text = f"Earlier conversation: {context.strip()}\n{text}"
    if language:
        text += f"\nReply in {LANGUAGE_NAMES.get(language, language)}."
    return text


def chat_messages(perception: perception_pb2.PerceptionResult, context: str, system_suffix: str = "",
                  language: str = "", tuned: bool = False) -> list[dict]:
    """System prompt, the worked examples, then this turn; `tuned`: the tuned brain's short system prompt and
    no examples (what its adapter was trained on)."""
    system = TUNED_SYSTEM if tuned else f"{SYSTEM} {system_suffix}".strip()
    messages = [{"role": "system", "content": system}]
    for cues, answer in () if tuned else EXAMPLES:
        messages += [{"role": "user", "content": cues}, {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": cue_block(perception, context, language, tuned)})
    return messages
