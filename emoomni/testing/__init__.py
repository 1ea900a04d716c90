"""The one test harness every EmoOmni test (and a third-party plugin's tests) shares.

- `plugin` (loaded by pytest through the `pytest11` entry point): the `slow` and `gpu` markers and fixtures for a
  real nats-server, the default stack config, running stages, `emoomni up` on free ports, loaded talker engines
  shared across a session, and tiny model checkpoints.
- `stage.RunningStage`: a real service on a real bus in this process, as `emoomni serve` runs it.
- `bus.run_bus_test`: send these bus messages, expect these messages back (in the spirit of Pipecat's run_test).
- `bus.run_on_bus`: an async scenario on a fresh nats-server with one connected `Bus`.
- `stack.running_stack`: `emoomni up` on free ports.
- `talker_conformance`: the checks every talker plugin must pass, run on every plugin found by entry point.

Real parts only: every fixture starts the real binary, server or model it names.
"""
