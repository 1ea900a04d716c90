"""Services and commands are found by entry point; the turn's stages are named once."""

from __future__ import annotations

import pytest

from emoomni.core.registry import STAGES, service_class, service_names
from emoomni.core.service import StageService
from emoomni.sdk.commands import Command, discover_commands


def test_every_service_is_registered_stages_first():
    names = service_names()
    assert names[:4] == STAGES and set(names) >= {*STAGES, "gateway"}
    for name in names:
        cls = service_class(name)
        assert issubclass(cls, StageService) and cls.name == name


def test_an_unknown_service_is_a_clear_error():
    with pytest.raises(ValueError, match=r"no service named 'nope'.*perception"):
        service_class("nope")


def test_every_subcommand_is_registered():
    commands = discover_commands()
    assert set(commands) >= {"chat", "speak", "talkers", "up", "serve", "eval", "config"}
    assert all(isinstance(c, Command) and c.name == name for name, c in commands.items())
