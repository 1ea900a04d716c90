"""Perception: what was said (ASR), what the face shows (expression), how the voice sounds (prosody)."""
