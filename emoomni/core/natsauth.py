"""Who may do what on the stack's bus: one NATS user per service, allowed only the subjects its stage needs.

`emoomni up` starts its nats-server with these users. Each service gets only its own password, derived from the
stack's bus secret (`nats.password`) with HMAC, so a compromised stage cannot log in as another. The stack's own
user (`nats.user`, with the secret) keeps every right, for tools, tests and replicas joined by hand.

What the rules hold (docs/security.md): a stage publishes only the turn events it produces and dispatches only
to the stages that follow it; only the gateway subscribes to whole turns, cancels them, or reads the session
memory and locks (key-value buckets); only the gateway, perception and reasoning touch uploaded clips (object
store). JetStream's API is open to every service for its own work queue, except the buckets above and the other stages'
work items. What stays open: a compromised service could still create a consumer of its own on the work stream.
"""

from __future__ import annotations

import hashlib
import hmac

from emoomni.core.bus import PREFIX, PRESENCE, TALKER_CONTROL, TALKER_STATUS, TRANSCRIBE
from emoomni.core.config import StackConfig
from emoomni.core.workqueue import DEAD_LETTER_PREFIX, WORK_STREAM

T = PREFIX  # emoomni.v1.turn.<turn id>.<kind>

# What each stage publishes on a turn (its events and the work it hands on), and what it listens to besides its
# work queue and the turn's cancel.
_STAGE_PUBLISHES = {
    "perception": ["perception", "timing", "error", "alive"],
    "reasoning": ["ecot", "strategy", "speak", "timing", "error", "alive"],
    "instruction": ["instruction", "timing", "error", "alive"],
    "talker": ["audio", "timing", "error", "alive"],
    "gateway": ["request", "perception", "speak", "cancel", "timing"],
}
_HANDS_TO = {"perception": ["reasoning"], "reasoning": ["instruction", "talker"], "instruction": [], "talker": [],
             "gateway": ["perception", "reasoning", "talker", "instruction"]}
_TOUCHES_UPLOADS = ("gateway", "perception", "reasoning")


def service_password(secret: str, service: str) -> str:
    """The bus password of `service`: HMAC-SHA256 of its name under the stack's secret."""
    return hmac.new(secret.encode(), f"emoomni-bus-user/{service}".encode(), hashlib.sha256).hexdigest()


def _bucket_denials(*streams: str) -> list[str]:
    """JetStream API subjects that would read or change these streams (KV_x, OBJ_x): every verb, at any depth."""
    out = []
    for stream in streams:
        out += [f"$JS.API.*.*.{stream}", f"$JS.API.*.*.{stream}.>", f"$JS.API.*.*.*.{stream}",
                f"$JS.API.*.*.*.{stream}.>", f"$JS.API.DIRECT.GET.{stream}.>"]
    return out


def permissions(service: str, cfg: StackConfig) -> dict:
    """The NATS permissions block of `service` (nats-server's authorization.users[].permissions)."""
    publish = [f"{T}.*.{kind}" for kind in _STAGE_PUBLISHES[service]]
    publish += [f"{PRESENCE}.{stage}" for stage in _HANDS_TO[service]]
    # JetStream: its API, acknowledgements of the stage's own work items, flow control of ordered reads.
    publish += ["$JS.API.>", f"$JS.ACK.{WORK_STREAM}.{service}.>", "$JS.FC.>", "_INBOX.>",
                f"{DEAD_LETTER_PREFIX}.{service}"]
    subscribe = ["_INBOX.>", f"{T}.*.cancel", f"{PRESENCE}.{service}"]
    if service in _TOUCHES_UPLOADS:
        publish.append(f"$O.{cfg.nats.media_bucket}.>")
    if service == "gateway":
        publish += [TRANSCRIBE, TALKER_CONTROL, f"$KV.{cfg.live.store_bucket}.>", f"$KV.{cfg.live.lock_bucket}.>"]
        subscribe += [f"{T}.>", TALKER_STATUS]
    if service == "perception":
        subscribe.append(TRANSCRIBE)
    if service == "reasoning":
        subscribe.append(f"{T}.*.instruction")
    if service == "talker":
        publish.append(TALKER_STATUS)
        subscribe.append(TALKER_CONTROL)
    denied = []
    if service != "gateway":
        denied += _bucket_denials(f"KV_{cfg.live.store_bucket}", f"KV_{cfg.live.lock_bucket}")
        denied += [f"$KV.{cfg.live.store_bucket}.>", f"$KV.{cfg.live.lock_bucket}.>",
                   f"$JS.API.STREAM.PURGE.{WORK_STREAM}", "$JS.API.STREAM.DELETE.>"]
    if service not in _TOUCHES_UPLOADS:
        denied += [*_bucket_denials(f"OBJ_{cfg.nats.media_bucket}"), f"$O.{cfg.nats.media_bucket}.>"]
    # No stage takes another stage's work items, or reads the work queue item by item.
    denied += [f"$JS.API.CONSUMER.MSG.NEXT.{WORK_STREAM}.{other}" for other in _STAGE_PUBLISHES if other != service]
    denied += [f"$JS.API.STREAM.MSG.GET.{WORK_STREAM}", f"$JS.API.DIRECT.GET.{WORK_STREAM}",
               f"$JS.API.DIRECT.GET.{WORK_STREAM}.>"]
    unseen = [] if service == "gateway" else [f"$KV.{cfg.live.store_bucket}.>"]
    return {"publish": {"allow": publish, "deny": denied}, "subscribe": {"allow": subscribe, "deny": unseen},
            "allow_responses": True}


def bus_users(cfg: StackConfig, admin_user: str, secret: str, services: list[str]) -> list[dict]:
    """nats-server's authorization.users: the stack's own user with every right, then one user per service."""
    users = [{"user": admin_user, "password": secret}]
    for name in services:
        users.append({"user": name, "password": service_password(secret, name), "permissions": permissions(name, cfg)})
    return users
