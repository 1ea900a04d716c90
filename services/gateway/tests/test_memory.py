"""The session memory's window: bounded, and each turn's context begins with the previous turn's, so the
reasoning prompt keeps its cached prefix (services/reasoning/prompt.py puts the context before the cues)."""

from __future__ import annotations

from emoomni.services.gateway.memory import RememberedTurn, SessionMemory
from emoomni.services.reasoning.prompt import cue_block
from emoomni.v1 import perception_pb2


def _turn(i: int) -> RememberedTurn:
    return RememberedTurn(turn_id=f"t{i}", user=f"This is what I said in turn {i}, more or less." + " word" * (i % 4),
                          feeling="Overall, the user seems calm.", reply_heard=f"And this is my answer number {i}.")


def _prompt(memory: SessionMemory, said: str) -> tuple[str, int]:
    context, turns = memory.context(6, 1500)
    cues = perception_pb2.PerceptionResult(cues=[perception_pb2.Cue(modality="speech", brief=f'said "{said}"')])
    return cue_block(cues, context), turns


def test_the_window_stays_within_bounds_and_its_start_moves_in_jumps():
    memory = SessionMemory(session_id="s", persona="You are a robot in a museum.")
    previous, seen, jumps = "", [], 0
    for i in range(40):
        prompt, turns = _prompt(memory, f"turn {i}")
        context, _ = memory.context(6, 1500)
        assert turns <= 6 and len(context) <= 1500 + len("About you and the scene: You are a robot in a museum.\n"
                                                         "The conversation so far (oldest first):\n")
        seen.append(turns)
        if previous:
            history_before = previous.rsplit("\nCues: ", 1)[0] if "\nCues: " in previous else ""
            if not prompt.startswith(history_before):  # else the whole earlier history is a cached prefix
                jumps += 1
                assert turns <= 4, "a jump keeps about half the bounds"
        previous = prompt
        memory.add(_turn(i))
    assert max(seen) == 6 and min(seen[8:]) >= 2
    # 40 turns, window of 6 that jumps back to ~3: the prompt's start changes about every third turn, not each turn.
    assert 5 <= jumps <= 40 // 3 + 2, jumps


def test_a_resumed_memory_keeps_its_window():
    memory = SessionMemory(session_id="s")
    for i in range(12):
        memory.add(_turn(i))
        memory.context(6, 1500)
    restored = SessionMemory.model_validate_json(memory.model_dump_json())
    assert restored.context(6, 1500) == memory.context(6, 1500)


def test_one_turn_longer_than_half_the_budget_is_still_seen():
    memory = SessionMemory(session_id="s")
    memory.add(RememberedTurn(turn_id="long", user="x " * 500, reply_heard="ok"))
    context, turns = memory.context(6, 1500)
    assert turns == 1 and "x x x" in context
    assert memory.context(0, 1500) == ("", 0)


def test_a_lapsed_lock_taken_by_another_replica_is_left_to_it():
    """Replica A's lock lapses (its entry is gone, as after a bus outage longer than the TTL) and replica B claims
    the session. A's next renewal finds B's entry: A stops renewing, and when A's session ends it does not delete
    B's lock."""
    import asyncio

    from emoomni.core.bus import Bus
    from emoomni.core.natsserver import NatsServer
    from emoomni.services.gateway.memory import SessionLocks

    async def scenario():
        with NatsServer() as nats:
            bus = await Bus.connect(nats.url, "locks-test")
            try:
                kv = await bus.key_value("locks_test", 30.0)  # entries live 30 s: the lapse is made by hand
                a = SessionLocks(bus, "locks_test", ttl_s=0.3, holder="replica-a")  # renews every 0.1 s
                b = SessionLocks(bus, "locks_test", ttl_s=30.0, holder="replica-b")
                held_by_a = await a.claim("s1")
                assert held_by_a is not None
                assert await b.claim("s1") is None, "one holder at a time"
                await kv.purge("s1")  # the lapse
                held_by_b = await b.claim("s1")
                assert held_by_b is not None
                await asyncio.sleep(0.5)  # A tries to renew and finds B's entry
                held_by_a.cancel()
                await asyncio.gather(held_by_a, return_exceptions=True)
                entry = await kv.get("s1")
                assert entry.value == b"replica-b"
                held_by_b.cancel()
                await asyncio.gather(held_by_b, return_exceptions=True)
            finally:
                await bus.close()

    asyncio.run(scenario())
