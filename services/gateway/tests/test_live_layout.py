"""The live package stays a place a newcomer can read: a thin shell, short functions, no timer polls."""

from __future__ import annotations

import ast
from pathlib import Path

LIVE = Path(__file__).resolve().parent.parent / "live"


def functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def test_the_session_shell_is_thin_and_no_function_is_long():
    assert len((LIVE / "session.py").read_text().splitlines()) <= 250
    long = [f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in sorted(LIVE.glob("*.py")) for node in functions(path)
            if node.end_lineno - node.lineno + 1 > 50]
    assert long == []


def test_nothing_in_the_live_package_polls_on_a_timer():
    sleeps = [f"{path.name}:{node.lineno}" for path in sorted(LIVE.glob("*.py"))
              for node in ast.walk(ast.parse(path.read_text()))
              if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "sleep"]
    assert sleeps == []
