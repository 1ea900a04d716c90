"""Turn assembly: audio from several talker replicas arrives out of order and leaves in order."""

from emoomni.core.bus import Kind
from emoomni.services.gateway.turn import TurnAssembler, union_ms
from emoomni.v1 import agent_pb2, bus_pb2, media_pb2


def audio(sentence, seq, last=False):
    chunk = media_pb2.AudioChunk(pcm16=bytes([sentence, seq]) * 2, sample_rate=22050, seq=seq,
                                 sentence_index=sentence, last=last)
    return agent_pb2.TurnEvent(audio=chunk).SerializeToString()


def speak(index, last):
    return bus_pb2.SpeakJob(sentence_index=index, last_sentence=last).SerializeToString()


def test_sentences_are_reordered_and_renumbered():
    turn = TurnAssembler("t")
    out = []
    out += turn.handle(Kind.SPEAK, speak(0, False))
    out += turn.handle(Kind.SPEAK, speak(1, True))
    out += turn.handle(Kind.AUDIO, audio(1, 0))  # sentence 1 was faster on another replica
    out += turn.handle(Kind.AUDIO, audio(1, 1, last=True))
    assert out == [], "nothing of sentence 1 leaves before sentence 0"
    out += turn.handle(Kind.AUDIO, audio(0, 0))
    out += turn.handle(Kind.AUDIO, audio(0, 1, last=True))
    chunks = [e.audio for e in out]
    assert [(c.sentence_index, c.seq) for c in chunks] == [(0, 0), (0, 1), (1, 2), (1, 3)]
    assert [c.last for c in chunks] == [False, False, False, True]
    assert turn.audio_complete


def test_work_done_twice_reaches_the_caller_once():
    """A replica died mid-turn and another did its work again: the repeated E-CoT deltas, perception, instruction,
    timings and the sentence spoken again from its start are forwarded once; the repeat continues where the first
    talker stopped."""
    from emoomni.v1 import instruction_pb2, perception_pb2, reasoning_pb2

    def delta(seq, text):
        piece = reasoning_pb2.EcotDelta(part=reasoning_pb2.ECOT_PART_RESPONSE, text=text, seq=seq)
        return agent_pb2.TurnEvent(ecot_delta=piece).SerializeToString()

    turn = TurnAssembler("t")
    reason_job = bus_pb2.ReasonJob(perception=perception_pb2.PerceptionResult(cue_summary="calm")).SerializeToString()
    softly = instruction_pb2.AcousticInstruction(text="Softly.")
    instruction = agent_pb2.TurnEvent(instruction=softly).SerializeToString()
    timing = agent_pb2.TurnEvent(timing=agent_pb2.StageTiming(stage="perception")).SerializeToString()
    out = []
    for kind, data in [(Kind.PERCEPTION, reason_job), (Kind.TIMING, timing), (Kind.ECOT, delta(1, "Hello ")),
                       (Kind.ECOT, delta(2, "there.")), (Kind.INSTRUCTION, instruction), (Kind.SPEAK, speak(0, True)),
                       (Kind.AUDIO, audio(0, 0)), (Kind.AUDIO, audio(0, 1)),
                       # the talker died; the reasoning job was repeated too, from its start
                       (Kind.PERCEPTION, reason_job), (Kind.TIMING, timing), (Kind.ECOT, delta(1, "Hello ")),
                       (Kind.ECOT, delta(2, "there.")), (Kind.INSTRUCTION, instruction), (Kind.SPEAK, speak(0, True)),
                       (Kind.AUDIO, audio(0, 0)), (Kind.AUDIO, audio(0, 1)), (Kind.AUDIO, audio(0, 2, last=True))]:
        out += turn.handle(kind, data)
    kinds = [e.WhichOneof("event") for e in out]
    assert kinds == ["perception", "timing", "ecot_delta", "ecot_delta", "instruction", "audio", "audio", "audio"]
    assert turn.ecot.response == "Hello there."
    chunks = [e.audio for e in out if e.WhichOneof("event") == "audio"]
    assert [c.pcm16 for c in chunks] == [bytes([0, n]) * 2 for n in range(3)] and chunks[-1].last
    assert turn.audio_complete


def test_last_flag_is_sent_even_when_the_sentence_count_arrives_late():
    turn = TurnAssembler("t")
    out = turn.handle(Kind.AUDIO, audio(0, 0, last=True))
    out += turn.handle(Kind.SPEAK, speak(0, True))
    assert [e.audio.last for e in out] == [False, True] and out[-1].audio.pcm16 == b""


def test_union_of_overlapping_intervals():
    assert union_ms([(0, 10_000_000), (5_000_000, 20_000_000), (30_000_000, 40_000_000)], 0, 100_000_000) == 30.0
    assert union_ms([(0, 10_000_000)], 5_000_000, 8_000_000) == 3.0


def test_a_missing_stage_is_reported_at_once():
    """With no perception replica on the bus the turn fails with UNAVAILABLE, without waiting for the deadline."""
    import asyncio
    import time

    import pytest

    from emoomni.core.bus import Bus
    from emoomni.core.config import load_config
    from emoomni.core.natsserver import NatsServer
    from emoomni.services.gateway.core import GatewayCore, TurnFailed
    from emoomni.v1 import media_pb2

    async def scenario():
        with NatsServer() as nats:
            bus = await Bus.connect(nats.url, "test")
            core = GatewayCore(load_config(env={}), bus)
            events = []
            request = agent_pb2.ConverseRequest(media=media_pb2.MediaInput(data=b"a clip"))
            try:
                with pytest.raises(TurnFailed) as err:
                    async for event in core.run_turn(request):
                        events.append(event)
            finally:
                await bus.close()
            return err.value, events

    start = time.monotonic()
    error, events = asyncio.run(scenario())
    assert error.code == "UNAVAILABLE" and "no perception service" in str(error)
    assert events[-1].error.code == "UNAVAILABLE"
    assert time.monotonic() - start < 5


def test_reasoning_timing_closes_a_reply_whose_last_sentence_was_not_flagged():
    """A reply ending in whitespace finishes without a flagged last sentence; reasoning's count closes it."""
    turn = TurnAssembler("t")
    out = turn.handle(Kind.SPEAK, speak(0, False))
    out += turn.handle(Kind.AUDIO, audio(0, 0, last=True))
    assert not turn.audio_complete
    timing = agent_pb2.StageTiming(stage="reasoning", sentences=1)
    out += turn.handle(Kind.TIMING, agent_pb2.TurnEvent(timing=timing).SerializeToString())
    assert turn.audio_complete
    audio_events = [e.audio for e in out if e.WhichOneof("event") == "audio"]
    assert audio_events[-1].last and [a.seq for a in audio_events] == [0, 1]
