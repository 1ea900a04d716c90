"""Admission control for clip turns (Converse, ConverseUpload): a cap on the turns one gateway replica runs at once
and on those of one caller, so that no caller can take the whole stack. Over a cap the call is refused at once with
RESOURCE_EXHAUSTED and a retry hint, before its upload is read. Live sessions have their own cap
(`live.max_sessions`)."""

from __future__ import annotations

import contextlib
from collections import Counter

import grpc


class Refused(Exception):
    """Over a cap; the message says which and when to try again."""


class Admission:
    def __init__(self, max_turns: int, max_per_caller: int, retry_after_s: float = 2.0):
        self.max_turns, self.max_per_caller, self.retry_after_s = max_turns, max_per_caller, retry_after_s
        self.by_caller: Counter[str] = Counter()

    @contextlib.contextmanager
    def turn(self, caller: str):
        """Hold one turn's place while the block runs; Refused when a cap is reached."""
        if sum(self.by_caller.values()) >= self.max_turns:
            raise Refused(f"this gateway runs {self.max_turns} turns at once already; try again in "
                          f"{self.retry_after_s:.0f} s")
        if self.by_caller[caller] >= self.max_per_caller:
            raise Refused(f"you have {self.max_per_caller} turns in flight already (the per-caller limit); try "
                          f"again in {self.retry_after_s:.0f} s, when one has ended")
        self.by_caller[caller] += 1
        try:
            yield
        finally:
            self.by_caller[caller] -= 1
            if not self.by_caller[caller]:
                del self.by_caller[caller]


def caller_of(context: grpc.aio.ServicerContext) -> str:
    """The caller's network address without its port ("ipv4:10.0.0.5", "unix:"): callers behind one proxy or
    NAT share a count."""
    peer = context.peer() or "unknown"
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        host = rest.rsplit(":", 1)[0] if rest.startswith("[") else rest
        return f"ipv6:{host}"
    if kind == "ipv4":
        return f"ipv4:{rest.rsplit(':', 1)[0]}"
    return kind
