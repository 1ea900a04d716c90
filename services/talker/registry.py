"""Finds talker plugins through entry points and keeps the loaded engines."""

from __future__ import annotations

import threading
from importlib.metadata import entry_points

from emoomni.services.talker.plugin import ENTRY_POINT_GROUP, TalkerPlugin


def discover() -> dict[str, type[TalkerPlugin]]:
    """Every installed talker plugin class by name (entry points are imported lazily, here)."""
    found: dict[str, type[TalkerPlugin]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.load()
    return found


class TalkerRegistry:
    def __init__(self, options: dict[str, dict] | None = None):
        self.available = discover()
        self.options = options or {}
        self._loaded: dict[str, TalkerPlugin] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> TalkerPlugin:
        """The loaded engine `name`, loading it on first use."""
        with self._lock:
            if name not in self._loaded:
                if name not in self.available:
                    known = ", ".join(sorted(self.available)) or "none"
                    raise KeyError(f"no talker plugin named {name!r} (installed: {known})")
                engine = self.available[name](self.options.get(name))
                engine.load()
                self._loaded[name] = engine
            return self._loaded[name]
