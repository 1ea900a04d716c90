"""One bus user per service (issue 25, finding 6), on a real nats-server with the users `emoomni up` writes: the
stages' own work flows, and a stage's credentials cannot read the session memory, take another stage's work, inject
another stage's events or cancel turns."""

import asyncio

import nats
import pytest

from emoomni.core.bus import Bus, Kind, subject
from emoomni.core.config import load_config
from emoomni.core.natsauth import bus_users, service_password
from emoomni.core.natsserver import NatsServer
from emoomni.core.registry import service_names
from emoomni.v1 import bus_pb2

SECRET = "stack-secret-for-the-test"


async def as_user(url: str, name: str):
    errors: list[str] = []

    async def on_error(exc) -> None:
        errors.append(str(exc))

    nc = await nats.connect(url, user=name, password=service_password(SECRET, name), error_cb=on_error,
                            max_reconnect_attempts=0)
    return nc, errors


def test_each_service_gets_only_what_its_stage_needs():
    cfg = load_config(env={})

    async def scenario():
        users = bus_users(cfg, "emoomni", SECRET, service_names())
        with NatsServer(user="emoomni", password=SECRET, users=users) as server:
            # The gateway keeps a session's memory; the talker does the work handed to it.
            gateway = await Bus.connect(server.url, "gateway", user="gateway",
                                        password=service_password(SECRET, "gateway"))
            kv = await gateway.key_value(cfg.live.store_bucket, 60)
            await kv.put("s1", b'{"session_id": "s1", "persona": "private"}')
            talker = await Bus.connect(server.url, "talker", user="talker", password=service_password(SECRET, "talker"))
            took: list[str] = []

            async def speak(msg) -> None:
                took.append(msg.subject)
                await talker.publish(subject("t1", Kind.AUDIO), bus_pb2.SpeakJob())

            await talker.worker(Kind.SPEAK, "talker", speak)
            await talker.answer_presence("talker")
            heard: list[str] = []

            async def hear(msg) -> None:
                heard.append(msg.subject)

            await gateway.nc.subscribe(subject("t1", Kind.AUDIO), cb=hear)
            await gateway.dispatch(subject("t1", Kind.SPEAK), bus_pb2.SpeakJob(turn_id="t1"), "talker")
            for _ in range(100):
                if heard:
                    break
                await asyncio.sleep(0.05)
            assert took and heard, "the talker's own work and events flow"

            # The talker's credentials, used by hand: no session memory, no other stage's work or events.
            nc, errors = await as_user(server.url, "talker")
            js = nc.jetstream()
            with pytest.raises(Exception):  # noqa: B017 - a permissions error or a timeout, both refusals
                bucket = await js.key_value(cfg.live.store_bucket)
                await bucket.get("s1")
            with pytest.raises(Exception):  # noqa: B017
                await js.get_msg(f"KV_{cfg.live.store_bucket}", subject=f"$KV.{cfg.live.store_bucket}.s1")
            spied: list[bytes] = []

            async def spy(msg) -> None:
                spied.append(msg.data)

            await nc.subscribe(f"$KV.{cfg.live.store_bucket}.>", cb=spy)
            await nc.subscribe("emoomni.v1.turn.>", cb=spy)
            await nc.publish(subject("t1", Kind.CANCEL), b"")
            await nc.publish(subject("t1", Kind.REQUEST), b"forged")
            await nc.flush()
            await kv.put("s1", b'{"session_id": "s1", "persona": "changed"}')
            await gateway.publish(subject("t1", Kind.TIMING), bus_pb2.SpeakJob())
            await asyncio.sleep(0.5)
            assert not spied, "nothing of the turns or the memory reached the talker's spy"
            violations = " | ".join(errors).lower()
            for refused in ("stream.info.kv_emoomni_sessions", "stream.msg.get.kv_emoomni_sessions",
                            'subscription to "$kv.emoomni_sessions.>"', 'subscription to "emoomni.v1.turn.>"',
                            "emoomni.v1.turn.t1.cancel", "emoomni.v1.turn.t1.request"):
                assert "permissions violation" in violations and refused in violations, (refused, violations)
            await nc.close()
            for bus in (talker, gateway):
                await bus.close()

    asyncio.run(scenario())
