"""Admission control: a cap on what one gateway replica holds at once (clip turns; live sessions) and on what one
caller holds, so that no caller can take the whole stack. Over a cap the call is refused at once with
RESOURCE_EXHAUSTED and a retry hint, before its upload is read or its session opened."""

from __future__ import annotations

import contextlib
from collections import Counter

import grpc


class Refused(Exception):
    """Over a cap; the message says which and when to try again."""


class Admission:
    def __init__(self, max_total: int, max_per_caller: int, retry_after_s: float = 2.0, what: str = "turns"):
        self.max_total, self.max_per_caller, self.retry_after_s = max_total, max_per_caller, retry_after_s
        self.what = what
        self.by_caller: Counter[str] = Counter()

    @contextlib.contextmanager
    def hold(self, caller: str):
        """Hold one place while the block runs; Refused when a cap is reached."""
        if sum(self.by_caller.values()) >= self.max_total:
            raise Refused(f"this gateway holds {self.max_total} {self.what} at once already; try again in "
                          f"{self.retry_after_s:.0f} s")
        if self.by_caller[caller] >= self.max_per_caller:
            raise Refused(f"you hold {self.max_per_caller} {self.what} already (the per-caller limit); try again in "
                          f"{self.retry_after_s:.0f} s, when one has ended")
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
