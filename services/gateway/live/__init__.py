"""Live sessions (`Agent.Session`), in layers imported one way:

- `floor` (who has the floor: a pure state machine) over `policy` (barge-in, backchannel, continuation, preemption)
  and `reply` (the user's turn, the agent's reply handle and its playout record): no asyncio, no bus, no models;
- `session` (the async shell: inbox -> listener -> floor -> replies -> outbox, and memory), with `reply_runner` (one
  reply's work on the stack, paced), `inputs` (config and frame checks), `drafts` (provisional transcripts),
  `resume` (memory and resume tokens) and `signal` (wake-ups, not polls);
- `sessions` (a replica's sessions and their caps), which the gateway's server serves.
"""

from emoomni.services.gateway.live.inputs import SessionError
from emoomni.services.gateway.live.sessions import LiveSessions

__all__ = ["LiveSessions", "SessionError"]
