"""Talker: speaks the reply in the manner the acoustic instruction asks for, through a plugin engine."""
