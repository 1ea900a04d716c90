"""Delivery styles the default mapper chooses between: each has a description (what a strategy asking for it
sounds like), the instruction text given to the talker, and the normalized controls.

The descriptions are embedded once; a strategy is mapped to the styles it is closest to in meaning.
"""

from __future__ import annotations

from pydantic import BaseModel


class Style(BaseModel):
    name: str
    description: str
    instruction: str
    emotion: str
    intensity: float
    pitch: float
    rate: float
    energy: float
    voice_quality: str = "modal"


STYLES: tuple[Style, ...] = (
    Style(name="soft_whisper", description="whisper softly and quietly, hushed, discreet, as in a library, "
          "intimate and gentle", instruction="Speak in a soft, hushed whisper, gently and close",
          emotion="tender", intensity=0.5, pitch=0.98, rate=0.92, energy=0.55, voice_quality="whisper"),
    Style(name="warm_celebration", description="celebrate with the user, share their joy and good news, bright "
          "and happy, smiling", instruction="Speak brightly and warmly, with a smile and shared joy",
          emotion="happy", intensity=0.7, pitch=1.08, rate=1.05, energy=1.15),
    Style(name="excited", description="match their excitement and enthusiasm, energetic, lively, amazed",
          instruction="Speak with lively excitement, quick and bright", emotion="excited", intensity=0.85,
          pitch=1.12, rate=1.12, energy=1.25),
    Style(name="calm_reassurance", description="reassure and comfort a worried or anxious person, calm, steady, "
          "slow, grounding, soothing", instruction="Speak calmly and slowly in a steady, soothing voice",
          emotion="calm", intensity=0.4, pitch=0.95, rate=0.88, energy=0.85),
    Style(name="gentle_empathy", description="empathize with sadness, grief or disappointment, gentle, soft, "
          "warm and compassionate", instruction="Speak gently and softly with warm compassion, a little slower",
          emotion="sad", intensity=0.5, pitch=0.93, rate=0.88, energy=0.75, voice_quality="breathy"),
    Style(name="encouraging", description="encourage and motivate, supportive, confident, uplifting, you can "
          "do it", instruction="Speak in an encouraging, confident and uplifting tone",
          emotion="hopeful", intensity=0.6, pitch=1.04, rate=1.0, energy=1.1),
    Style(name="playful", description="playful teasing, light humour, joking along, amused and cheeky",
          instruction="Speak playfully with a light, amused, teasing tone", emotion="amused", intensity=0.6,
          pitch=1.08, rate=1.06, energy=1.05),
    Style(name="serious_firm", description="serious, firm and clear, set boundaries, address anger or conflict "
          "directly but respectfully", instruction="Speak in a firm, serious, measured voice",
          emotion="serious", intensity=0.6, pitch=0.92, rate=0.95, energy=1.05, voice_quality="tense"),
    Style(name="patient_guidance", description="explain clearly step by step, patient, methodical, practical "
          "advice, informative", instruction="Speak clearly and patiently at an even, unhurried pace",
          emotion="neutral", intensity=0.3, pitch=1.0, rate=0.93, energy=1.0),
    Style(name="curious_interest", description="show curiosity and interest, ask questions, engaged and warm",
          instruction="Speak with warm, engaged curiosity", emotion="curious", intensity=0.5, pitch=1.05,
          rate=1.0, energy=1.0),
    Style(name="apologetic", description="apologize sincerely, humble, regretful, soft and careful",
          instruction="Speak softly and sincerely, with a humble, apologetic tone", emotion="regretful",
          intensity=0.5, pitch=0.96, rate=0.92, energy=0.8),
    Style(name="neutral", description="plain neutral conversational answer", instruction="Speak in a natural, "
          "neutral conversational tone", emotion="neutral", intensity=0.2, pitch=1.0, rate=1.0, energy=1.0),
)
