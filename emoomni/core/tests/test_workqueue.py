"""The work queue on a real nats-server: an item whose replica dies goes to another replica, what a redelivered item
hands on again is dropped, a shutting-down replica hands its item back at once, a cancelled turn's work is purged,
a lost queue is made again, and stored work survives a nats-server restart."""

import asyncio

from emoomni.core.bus import Bus, Kind, subject
from emoomni.core.workqueue import WORK_STREAM
from emoomni.testing.bus import run_on_bus
from emoomni.v1 import bus_pb2

ACK_WAIT_S = 2.5  # the replica confirms every second


async def replica(url: str, name: str, stage: str, handler) -> Bus:
    bus = await Bus.connect(url, name, ack_wait_s=ACK_WAIT_S, max_deliver=3)
    await bus.worker(Kind.SPEAK, stage, handler)
    await bus.answer_presence(stage)
    return bus


async def pending(bus: Bus, turn_id: str) -> int:
    info = await bus.js.stream_info(WORK_STREAM, subjects_filter=subject(turn_id, ">"))
    return sum((info.state.subjects or {}).values())


def test_an_item_whose_replica_dies_goes_to_another_and_its_repeats_are_dropped():
    async def scenario(nats, gateway):
        took: list[tuple[str, int, str]] = []  # (replica, delivery, work id)
        first_taken = asyncio.Event()
        handed_on: list[str] = []

        def handler_of(name: str, hang: bool):
            async def handle(msg) -> None:
                work = msg.headers["Emoomni-Work"]
                took.append((name, msg.metadata.num_delivered, work))
                # Hand a child item on (as reasoning hands sentences to the talker): the same on every delivery.
                handed_on.append(await bus_of[name].dispatch(subject("t1", Kind.STRATEGY),
                                                              bus_pb2.MapJob(turn_id="t1"), "instruction"))
                if hang:
                    first_taken.set()
                    await asyncio.Event().wait()  # works until its process dies
            return handle

        bus_of: dict[str, Bus] = {}
        # The child's stage: present, and with the stream ready, but nobody takes its items in this test.
        instruction = await Bus.connect(nats.url, "instruction")
        await instruction.answer_presence("instruction")
        bus_of["a"] = await replica(nats.url, "a", "talker", handler_of("a", hang=True))
        await instruction.js.add_consumer(WORK_STREAM, durable_name="instruction",
                                          filter_subject="emoomni.v1.turn.*.strategy")
        work_id = await gateway.dispatch(subject("t1", Kind.SPEAK), bus_pb2.SpeakJob(turn_id="t1", text="hi"),
                                         "talker")
        await asyncio.wait_for(first_taken.wait(), 5)
        bus_of["b"] = await replica(nats.url, "b", "talker", handler_of("b", hang=False))
        await asyncio.sleep(2 * ACK_WAIT_S)
        assert [t[0] for t in took] == ["a"], "a replica that still confirms its item keeps it"

        # "a" dies without a word: its connection drops, nothing is acknowledged.
        for task in bus_of["a"]._pullers:
            task.cancel()
        await bus_of["a"].nc.close()
        for _ in range(50):
            if len(handed_on) == 2:
                break
            await asyncio.sleep(0.1)
        assert took[1][0] == "b" and took[1][1] >= 2 and took[1][2] == work_id, took
        assert handed_on[0] == handed_on[1], "a redelivered item hands on the same id"
        await asyncio.sleep(0.3)
        info = await gateway.js.stream_info(WORK_STREAM, subjects_filter="emoomni.v1.turn.t1.strategy")
        assert sum((info.state.subjects or {}).values()) == 1, "the repeat was dropped by the stream"
        assert await pending(gateway, "t1") == 1, "the speak item was acknowledged by b; the strategy waits"

        await gateway.cancel_turn("t1")
        assert await pending(gateway, "t1") == 0, "a cancelled turn's waiting work is purged"
        for bus in (instruction, bus_of["b"]):
            await bus.close()

    run_on_bus(scenario)


def test_a_replica_shutting_down_hands_its_item_back_at_once():
    async def scenario(nats, gateway):
        took: list[str] = []
        started = asyncio.Event()

        async def slow(msg) -> None:
            took.append("a")
            started.set()
            await asyncio.sleep(60)

        async def quick(msg) -> None:
            took.append("b")

        a = await replica(nats.url, "a", "talker", slow)
        await gateway.dispatch(subject("t2", Kind.SPEAK), bus_pb2.SpeakJob(turn_id="t2"), "talker")
        await asyncio.wait_for(started.wait(), 5)
        b = await replica(nats.url, "b", "talker", quick)
        await a.close()  # what `emoomni serve` does on SIGTERM
        await asyncio.sleep(0.5)
        assert took == ["a", "b"], "handed back (nak), so b has it long before the ack wait"
        await b.close()

    run_on_bus(scenario)


def test_a_stage_with_no_replica_is_reported_at_once():
    async def scenario(nats, gateway):
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await gateway.dispatch(subject("t3", Kind.SPEAK), bus_pb2.SpeakJob(turn_id="t3"), "talker")
        except Exception as exc:
            assert "no talker service is running" in str(exc)
        else:
            raise AssertionError("dispatched to a stage nobody serves")
        assert loop.time() - started < 2.0

    run_on_bus(scenario)


def test_replicas_make_the_queue_again_when_the_bus_lost_it():
    """A bus without persistent storage (an external nats-server restarted, or a stream deleted by hand) loses the
    work stream and the consumers: the replicas notice at their next fetch and make them again."""

    async def scenario(nats, gateway):
        took: list[str] = []

        async def handle(msg) -> None:
            took.append(msg.headers["Emoomni-Work"])

        a = await replica(nats.url, "a", "talker", handle)
        await gateway.js.delete_stream(WORK_STREAM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        work_id = ""
        while not work_id:
            try:
                work_id = await gateway.dispatch(subject("t4", Kind.SPEAK), bus_pb2.SpeakJob(turn_id="t4"),
                                                 "talker", timeout_s=1)
            except Exception:
                assert loop.time() < deadline, "the work queue did not come back"
                await asyncio.sleep(0.5)
        while work_id not in took:
            assert loop.time() < deadline, "the item was not worked on"
            await asyncio.sleep(0.1)
        await a.close()

    run_on_bus(scenario)


def test_waiting_work_survives_a_nats_server_restart():
    """The work queue is on disk (file storage): an item stored before nats-server was killed with SIGKILL is worked
    on after the restart, by a replica that joins then."""

    async def scenario(nats, gateway):
        took: list[str] = []

        async def handle(msg) -> None:
            took.append(msg.headers["Emoomni-Work"])

        first = await replica(nats.url, "first", "talker", handle)
        await first.close()  # the stage's consumer stays; nobody takes work now
        present = await Bus.connect(nats.url, "present")  # the stage counts as up for the dispatch
        await present.answer_presence("talker")
        work_id = await gateway.dispatch(subject("t5", Kind.SPEAK), bus_pb2.SpeakJob(turn_id="t5"), "talker")
        nats.proc.kill()
        nats.proc.wait()
        nats.start()
        later = await replica(nats.url, "later", "talker", handle)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while work_id not in took:
            assert loop.time() < deadline, "the stored item was lost with the restart"
            await asyncio.sleep(0.1)
        for bus in (later, present):
            await bus.close()

    run_on_bus(scenario)


def test_an_item_that_stopped_its_replicas_twice_is_set_aside_with_an_error_for_its_turn():
    """Poison (issue 25, finding 3): two replicas take the item and vanish without a word; the third delivery is
    not run. It goes to the dead letters with why, the turn gets an error event, and the stage takes the next item."""
    from emoomni.core.workqueue import DEAD_LETTER_STREAM
    from emoomni.v1 import agent_pb2

    async def scenario(nats, gateway):
        took: list[tuple[str, str]] = []  # (replica, turn)
        errors: list[agent_pb2.TurnEvent] = []

        async def on_error(msg) -> None:
            errors.append(agent_pb2.TurnEvent.FromString(msg.data))

        await gateway.nc.subscribe(subject("t6", Kind.ERROR), cb=on_error)

        def handler_of(name: str, dies: bool):
            async def handle(msg) -> None:
                took.append((name, msg.subject.split(".")[3]))
                if dies:
                    await asyncio.Event().wait()  # until its process is gone
            return handle

        async def vanish(bus: Bus) -> None:
            for task in bus._pullers:
                task.cancel()
            await bus.nc.close()

        loop = asyncio.get_running_loop()
        for name in ("a", "b"):  # each takes the item, then dies holding it
            bus = await replica(nats.url, name, "talker", handler_of(name, dies=True))
            if name == "a":
                await gateway.dispatch(subject("t6", Kind.SPEAK), bus_pb2.SpeakJob(turn_id="t6"), "talker")
            deadline = loop.time() + 3 * ACK_WAIT_S
            while (name, "t6") not in took:
                assert loop.time() < deadline, took
                await asyncio.sleep(0.1)
            await vanish(bus)
        c = await replica(nats.url, "c", "talker", handler_of("c", dies=False))
        deadline = loop.time() + 3 * ACK_WAIT_S
        while not errors:
            assert loop.time() < deadline, ("no error for the poisoned turn", took)
            await asyncio.sleep(0.1)
        assert ("c", "t6") not in took, "the third delivery is not run"
        assert errors[0].error.code == "INTERNAL" and "set aside" in errors[0].error.message, errors[0]
        letter = await gateway.js.get_last_msg(DEAD_LETTER_STREAM, "emoomni.v1.deadletter.talker")
        assert letter.headers["Emoomni-Subject"] == subject("t6", Kind.SPEAK), letter.headers
        assert "vanished 2 times" in letter.headers["Emoomni-Reason"]
        assert await pending(gateway, "t6") == 0, "nothing of the poison is left in the work queue"

        await gateway.dispatch(subject("t7", Kind.SPEAK), bus_pb2.SpeakJob(turn_id="t7"), "talker")
        deadline = loop.time() + 5
        while ("c", "t7") not in took:
            assert loop.time() < deadline, "the stage goes on with the next item"
            await asyncio.sleep(0.1)
        await c.close()

    run_on_bus(scenario)


def test_every_stream_bucket_and_store_on_the_server_is_bounded():
    """What a hostile or runaway caller can fill on the bus has limits the nats-server itself enforces: bytes, age,
    and what goes when full (new work is refused; old notes and dead letters are dropped)."""
    from nats.js.api import DiscardPolicy

    from emoomni.core.bus import WORK_KINDS, Kind, work_subject
    from emoomni.core.workqueue import dead_letter_stream_config, ensure_stream, notes_stream_config, work_stream_config

    async def scenario(nats, bus):
        await ensure_stream(bus.js, work_stream_config([work_subject(k) for k in WORK_KINDS]))
        await ensure_stream(bus.js, notes_stream_config([work_subject(Kind.INSTRUCTION)]))
        await ensure_stream(bus.js, dead_letter_stream_config())
        await bus.key_value("bounded_sessions", 60)
        await bus.media_store("bounded_media", 60)
        streams = {info.config.name: info.config for info in await bus.js.streams_info()}
        for name, config in streams.items():
            assert config.max_bytes and config.max_bytes > 0, name
            assert config.max_age and config.max_age > 0, name
        assert streams["EMOOMNI_WORK"].discard == DiscardPolicy.NEW and streams["EMOOMNI_WORK"].max_msgs > 0
        assert streams["EMOOMNI_TURN_NOTES"].discard == DiscardPolicy.OLD
        assert streams["EMOOMNI_DEAD_LETTER"].discard == DiscardPolicy.OLD
        assert {"KV_bounded_sessions", "OBJ_bounded_media"} <= set(streams)

    run_on_bus(scenario, name="limits-test")
