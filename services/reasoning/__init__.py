"""Reasoning: writes the Emotional Chain-of-Thought (emotion analysis -> intent -> strategy -> reply)."""
