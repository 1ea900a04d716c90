"""What a client may send to a live session, checked before anything acts on it: the opening config and camera
frames (kept, bounded, for the turns that will use them)."""

from __future__ import annotations

from collections import deque

from emoomni.core.bus import valid_turn_id
from emoomni.core.config import StackConfig
from emoomni.core.media import MediaError, check_image
from emoomni.services.gateway.listening import SUPPORTED_RATES
from emoomni.v1 import agent_pb2


class SessionError(Exception):
    """Ends the session with a gRPC status (`code` is its name)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class InputRefused(Exception):
    """One bad message: the client is told why, the message is dropped, the session goes on."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def check_config(first: agent_pb2.SessionInput | None, cfg: StackConfig) -> agent_pb2.SessionConfig:
    """The session's opening message, whole, or a SessionError that says what is wrong."""
    if first is None or first.WhichOneof("msg") != "config":
        raise SessionError("INVALID_ARGUMENT", "a session must begin with a `config` message")
    options = first.config
    if options.sample_rate not in SUPPORTED_RATES:
        rates = ", ".join(map(str, SUPPORTED_RATES))
        raise SessionError("INVALID_ARGUMENT", f"config.sample_rate must be one of {rates} (PCM16 mono); got "
                           f"{options.sample_rate or 'none'}")
    if options.session_id and options.resume_id:
        raise SessionError("INVALID_ARGUMENT", "give either session_id (a new session) or resume_id, not both")
    for name in ("session_id", "resume_id"):
        value = getattr(options, name)
        if value and not valid_turn_id(value):
            raise SessionError("INVALID_ARGUMENT", f"{name} may only hold letters, digits, '-' and '_' (at most 64)")
    if len(options.persona) > cfg.limits.max_context_chars // 2:
        raise SessionError("INVALID_ARGUMENT", f"the persona is {len(options.persona)} characters, over the "
                           f"{cfg.limits.max_context_chars // 2} limit")
    if options.language and options.language not in ("en", "zh"):
        raise SessionError("INVALID_ARGUMENT", "config.language must be 'en', 'zh' or empty (detect)")
    return options


def quiet_limit_s(cfg: StackConfig) -> float:
    """Wall-clock silence after which a session ends as idle (the audio clock stops when no audio comes)."""
    return cfg.listening.idle_s + cfg.live.idle_wall_grace_s


class FrameBuffer:
    """The camera frames that a turn might still use: checked (size, header, rate), bounded whatever their
    timestamps say, the oldest dropped once they are older than any turn can reach."""

    def __init__(self, cfg: StackConfig, video: bool):
        self.cfg, self.live, self.video = cfg, cfg.live, video
        self.frames: deque[tuple[float, bytes]] = deque(
            maxlen=int(self.live.max_video_fps * (cfg.listening.max_turn_s + 10)))
        self._arrivals: deque[float] = deque()  # wall times of the last second's frames
        self._overflow_told = False

    def add(self, frame: agent_pb2.VideoFrame, now: float) -> None:
        """Keep a frame, or raise InputRefused (a frame over the rate limit is dropped silently after the first)."""
        self._check(frame)
        while self._arrivals and now - self._arrivals[0] > 1.0:
            self._arrivals.popleft()
        if len(self._arrivals) >= self.live.max_video_fps:
            if len(self._arrivals) == int(self.live.max_video_fps):  # say it once per burst
                self._arrivals.append(now)
                raise InputRefused("RESOURCE_EXHAUSTED", f"over {self.live.max_video_fps:.0f} video frames per "
                                   "second; extra frames are dropped")
            return
        self._arrivals.append(now)
        told = len(self.frames) == self.frames.maxlen and not self._overflow_told
        self.frames.append((frame.time_s, frame.image))
        horizon = frame.time_s - self.cfg.listening.max_turn_s - 10
        while self.frames and self.frames[0][0] < horizon:
            self.frames.popleft()
        if told:  # timestamps that do not advance: the oldest frames go, said once
            self._overflow_told = True
            raise InputRefused("RESOURCE_EXHAUSTED", f"over {self.frames.maxlen} video frames held; the oldest are "
                               "dropped (do the frames' time_s advance?)")

    def _check(self, frame: agent_pb2.VideoFrame) -> None:
        if not self.video:
            raise InputRefused("FAILED_PRECONDITION", "a video frame came, but config.video said none would")
        if not frame.image:
            raise InputRefused("INVALID_ARGUMENT", "an empty video frame")
        if len(frame.image) > self.live.max_video_frame_bytes:
            raise InputRefused("INVALID_ARGUMENT", f"a video frame of {len(frame.image) / 1e6:.1f} MB is over the "
                               f"{self.live.max_video_frame_bytes / 1e6:.0f} MB limit")
        try:  # the header only: frames are decoded off the event loop, for a turn's clip (turn_clip)
            check_image(frame.image, self.cfg.limits.max_video_pixels)
        except MediaError as exc:
            raise InputRefused("INVALID_ARGUMENT", str(exc)) from exc

    def between(self, start_s: float, end_s: float, origin_s: float) -> list[tuple[float, bytes]]:
        """The frames from `start_s` to `end_s`, timed from `origin_s`."""
        return [(t - origin_s, image) for t, image in self.frames if start_s <= t <= end_s]
