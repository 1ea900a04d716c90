"""Which services exist: found by entry point (group ``emoomni.services``), the way talkers are found.

Adding a service is one line in a package's entry-point table (this repository's pyproject.toml for the
built-in ones); `emoomni up`, `emoomni serve NAME`, the embedded agent and compose checks all read this list,
so there is no hand-kept map. The core never imports a service: it loads the class the entry point names.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emoomni.core.service import StageService

SERVICE_GROUP = "emoomni.services"

# The turn's stages in the order a turn passes them (the gateway, a service too, joins them into one stream).
STAGES = ("perception", "reasoning", "instruction", "talker")


def _entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group=SERVICE_GROUP)}


def service_names() -> tuple[str, ...]:
    """Every registered service: the turn's stages in order, then the others by name (the gateway among them)."""
    names = _entry_points()
    return (*(s for s in STAGES if s in names), *sorted(n for n in names if n not in STAGES))


def service_class(name: str) -> type[StageService]:
    """The service class registered as `name`; an unknown name is a clear error naming the known ones."""
    found = _entry_points()
    if name not in found:
        known = ", ".join(service_names()) or "none (is emoomni installed with its server extra?)"
        raise ValueError(f"no service named {name!r} is registered (known: {known})")
    return found[name].load()
