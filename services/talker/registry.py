"""Finds talker plugins through entry points and keeps the loaded (and warmed) engines."""

from __future__ import annotations

import logging
import threading
import time
from importlib.metadata import entry_points

from emoomni.sdk.talker import ENTRY_POINT_GROUP, TalkerPlugin

log = logging.getLogger(__name__)


class UnknownTalker(ValueError):
    """The request named a talker that is not installed."""


def discover() -> dict[str, type[TalkerPlugin]]:
    """Every installed talker plugin class by name. A plugin whose import fails is left out with a warning:
    one broken third-party package must not take the talker service down."""
    found: dict[str, type[TalkerPlugin]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found[ep.name] = ep.load()
        except Exception as exc:
            log.warning("talker plugin %r could not be imported: %s", ep.name, exc)
    return found


class TalkerRegistry:
    """Loaded engines by name. Each engine has a lock: plugins are called one synthesis at a time."""

    def __init__(self, options: dict[str, dict] | None = None):
        self.available = discover()
        self.options = options or {}
        self._loaded: dict[str, TalkerPlugin] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._loading = threading.Lock()

    # How `available` is described in errors: what is installed here, or what a remote server serves.
    available_means = "installed"

    def plugin_class(self, name: str) -> type[TalkerPlugin]:
        if name not in self.available:
            known = ", ".join(sorted(self.available)) or "none"
            raise UnknownTalker(f"no talker plugin named {name!r} ({self.available_means}: {known})")
        return self.available[name]

    def is_loaded(self, name: str) -> bool:
        return name in self._loaded

    def get(self, name: str) -> TalkerPlugin:
        """The engine `name`, loaded and warmed on first use (other engines keep serving meanwhile)."""
        engine = self._loaded.get(name)
        if engine is not None:
            return engine
        cls = self.plugin_class(name)
        with self._loading:
            if name not in self._loaded:
                started = time.perf_counter()
                engine = cls(self.options.get(name))
                engine.load()
                engine.warm()
                self._locks[name] = threading.Lock()
                self._loaded[name] = engine
                log.info("talker %r loaded and warmed in %.0f ms", name, (time.perf_counter() - started) * 1e3)
            return self._loaded[name]

    def lock(self, name: str) -> threading.Lock:
        return self._locks[name]
