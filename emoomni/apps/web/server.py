"""The web demo's server: static page, WebSocket bridges to live sessions and clip turns, the talker list.

Wire format on /ws (one per browser tab):
- page -> server: JSON text messages {"type": "start" | "stop" | "playback" | "interrupt" | "text" | "talker"}, and
  binary messages whose first byte says what follows: 1 = PCM16 mono audio at the declared rate, 2 = a JPEG camera
  frame (stamped here on the session's audio clock).
- server -> page: JSON {"type": "event", ...SessionEvent as JSON} and {"type": "status", "code", "message"}; audio
  as binary: 4 bytes little-endian header length, the JSON header {turn_id, sample_rate, kind, talker, ...}, PCM16.
/ws/converse takes {"type": "converse", "filename", "talker"} then the clip as one binary message, and streams the
turn the same way. Everything but the static files needs the same origin, and, when exposed beyond loopback, the
stack's token (`?token=`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
import ssl
import struct
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import grpc
from aiohttp import WSMsgType, web
from google.protobuf.json_format import MessageToDict

from emoomni.core.config import StackConfig
from emoomni.core.security import InsecureListen, check_listen, is_loopback
from emoomni.sdk.agent import LocalAgent, RemoteAgent
from emoomni.sdk.commands import fail
from emoomni.sdk.live import AsyncLiveSession, session_config
from emoomni.v1 import agent_pb2, media_pb2

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
AUDIO, FRAME = 1, 2
RATES = (8000, 16000, 24000, 44100, 48000)
RETRY_S = 2.0


class StackDown(Exception):
    """The stack cannot take a session now (still loading, or not reachable)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def failure(exc: BaseException) -> tuple[str, str]:
    """(status code name, words) for whatever a session or a turn failed with."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code().name, exc.details() or exc.code().name
    return getattr(exc, "code", "") or "INTERNAL", str(exc) or type(exc).__name__


# ---- where sessions go -----------------------------------------------------------------------------------------


class EmbeddedStack:
    """Every service in this process (EmbeddedAgent) behind the Agent port; loads in the background while the page
    is already served."""

    name = "the embedded agent"

    def __init__(self, cfg: StackConfig):
        self.cfg, self.agent, self.port = cfg, None, None
        self.problem = StackDown("STARTING", "the agent is starting: loading the models takes a minute or so")
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._load())

    async def _load(self) -> None:
        from emoomni.core.runtime import EmbeddedAgent

        agent = EmbeddedAgent(self.cfg)
        try:
            await agent.__aenter__()
        except Exception as exc:
            log.exception("the embedded stack did not start")
            self.problem = StackDown("UNAVAILABLE", f"the embedded agent failed to start: {exc}")
            return
        self.agent, self.port, self.problem = agent, LocalAgent(agent), None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self.agent is not None:
            await self.agent.__aexit__(None, None, None)

    def _ready(self) -> LocalAgent:
        if self.port is None:
            raise self.problem
        return self.port

    def session(self, config: agent_pb2.SessionConfig) -> AsyncLiveSession:
        return self._ready().session(config)

    def converse(self, request: agent_pb2.ConverseRequest) -> AsyncIterator[agent_pb2.TurnEvent]:
        return self._ready().converse(request)

    async def talkers(self):
        return await self._ready().talkers()


async def talker_list(stack) -> list[dict]:
    """The talkers for the page; none while the stack is starting or its talker service is out of reach."""
    try:
        response = await stack.talkers()
    except (StackDown, grpc.RpcError) as exc:
        log.warning("cannot list the talkers of %s: %s", stack.name, exc)
        return []
    return [{"name": t.name, "languages": list(t.languages), "active": t.active, "license": t.license,
             "streaming": t.streaming} for t in response.talkers]


# ---- one browser's live session ----------------------------------------------------------------------------------


class Bridge:
    """A browser tab's live session: opens it on `start`, passes its events on, and opens it again (resuming the
    same conversation) when the stack comes back after a failure or when the page picks another talker."""

    def __init__(self, ws: web.WebSocketResponse, stack):
        self.ws, self.stack = ws, stack
        self.session: AsyncLiveSession | None = None
        self.session_id, self.resume_token = "", ""
        self.options: dict = {}
        self.rate = 16000
        self.samples = 0  # audio sent into the current session: its clock
        self.live = False
        self.reopen = False  # the current session ends for a talker switch, then opens again at once
        self.keeper: asyncio.Task | None = None

    async def run(self) -> None:
        try:
            async for message in self.ws:
                if message.type == WSMsgType.TEXT:
                    try:
                        await self.on_message(json.loads(message.data))
                    except (ValueError, TypeError, KeyError) as exc:
                        await self.status("bad_message", f"the page sent a message the server cannot read: {exc}")
                elif message.type == WSMsgType.BINARY:
                    await self.on_media(message.data)
        finally:
            await self.stop()

    async def on_message(self, message: dict) -> None:
        kind = message["type"]
        if kind == "start":
            rate = int(message.get("sample_rate", 16000))
            if rate not in RATES:
                return await self.status("bad_message", f"the microphone's rate {rate} Hz is not one of {RATES}")
            await self.stop()
            self.rate = rate
            self.session_id = str(message.get("resume_id", ""))
            self.resume_token = str(message.get("resume_token", ""))
            self.options = {"video": bool(message.get("video")), "talker": str(message.get("talker", "")),
                            "language": str(message.get("language", "")), "no_ack": bool(message.get("no_ack"))}
            self.keeper = asyncio.create_task(self.keep_session())
        elif kind == "stop":
            await self.stop()
            await self.status("stopped", "stopped; press Start to talk again (the conversation is remembered)")
        elif kind == "talker":
            self.options["talker"] = str(message.get("name", ""))
            if self.live and self.session is not None:
                self.reopen = True
                await self.status("switching", f"switching the voice to {self.options['talker'] or 'the default'} "
                                  "for the next turn")
                await self.session.end()  # the current turn finishes first; then the session reopens with it
        elif self.live and self.session is not None:
            if kind == "playback":
                await self.session.report_playback(str(message["turn_id"]), float(message["played_ms"]))
            elif kind == "interrupt":
                await self.session.interrupt()
            elif kind == "text":
                await self.session.text(str(message["text"]))

    async def on_media(self, data: bytes) -> None:
        if not (self.live and self.session is not None and data):
            return  # nothing to send it to (starting, reconnecting, switching): the audio of that moment is lost
        if data[0] == AUDIO:
            await self.session.send_audio(data[1:])
            self.samples += (len(data) - 1) // 2
        elif data[0] == FRAME and self.options.get("video"):
            await self.session.send_frame(data[1:], self.samples / self.rate)

    async def keep_session(self) -> None:
        lost, busy = False, 0
        while True:
            config = session_config(self.rate, resume_id=self.session_id,
                                    resume_token=self.resume_token if self.session_id else "", **self.options)
            session = None
            try:
                session = self.stack.session(config)
                ended = ""
                async for event in session.events():
                    which = event.WhichOneof("event")
                    if which == "started":
                        self.session, self.session_id = session, event.started.session_id
                        self.resume_token = event.started.resume_token or self.resume_token
                        self.samples, self.live, busy = 0, True, 0
                        talker = self.options["talker"] or "the default voice"
                        again = "reconnected; " if lost else ""
                        lost = False
                        await self.status("live", f"{again}listening (session {self.session_id}, {talker})",
                                          session_id=self.session_id, resume_token=self.resume_token,
                                          talker=self.options["talker"])
                    elif which == "ended":
                        ended = event.ended.reason
                    await send_event(self.ws, event)
                self.live = False
                if self.reopen:
                    self.reopen = False
                    continue
                words = {"idle": "the session ended after a long silence", "end": "the session ended"}
                await self.status("ended", f"{words.get(ended, 'the session ended')}; press Start to talk again "
                                  "(the conversation is remembered)", reason=ended)
                return
            except Exception as exc:  # grpc.aio.AioRpcError, SessionError (embedded) or StackDown
                self.live = False
                code, details = failure(exc)
                if code == "NOT_FOUND" and self.session_id:
                    self.session_id = ""
                    await self.status("memory_lost", "the stack came back without this conversation's memory; "
                                      "starting a new one")
                    continue
                if code == "STARTING":
                    await self.status("starting", details)
                elif code in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "ALREADY_EXISTS", "INTERNAL", "CANCELLED",
                              "UNKNOWN", "RESOURCE_EXHAUSTED"):
                    if code == "ALREADY_EXISTS" and busy < 20:  # its last stream is still closing on the gateway
                        busy += 1
                        await asyncio.sleep(0.3)
                        continue
                    log.warning("session to %s failed: %s: %s", self.stack.name, code, details)
                    lost = lost or bool(self.session_id)
                    what = "lost the connection to" if lost else "cannot reach"
                    await self.status("stack_down", f"{what} {self.stack.name} ({code}); trying again every "
                                      f"{RETRY_S:.0f} s", detail=details)
                else:
                    await self.status("refused", f"the stack refused the session ({code}: {details})")
                    return
                await asyncio.sleep(RETRY_S)
            finally:
                self.live = False
                if session is not None:
                    await session.close()

    async def stop(self) -> None:
        self.live, self.reopen = False, False
        if self.keeper is not None:
            self.keeper.cancel()
            with contextlib.suppress(BaseException):
                await self.keeper
            self.keeper = None

    async def status(self, code: str, message: str, **extra) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_json({"type": "status", "code": code, "message": message, **extra})


async def send_event(ws: web.WebSocketResponse, event: agent_pb2.SessionEvent) -> None:
    """A session event to the page: audio as a binary message, everything else as JSON."""
    which = event.WhichOneof("event")
    if which == "turn" and event.turn.WhichOneof("event") == "audio":
        return await send_audio(ws, event.turn.turn_id, event.turn.audio, "reply")
    if which == "ack":
        await send_audio(ws, event.ack.turn_id, event.ack.audio, "ack")
        event = agent_pb2.SessionEvent(ack=agent_pb2.QuickAck(turn_id=event.ack.turn_id, text=event.ack.text,
                                                              tone=event.ack.tone))
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_str(json.dumps({"type": "event", **MessageToDict(event, preserving_proto_field_name=True)},
                                     ensure_ascii=False))
    return None


async def send_audio(ws: web.WebSocketResponse, turn_id: str, chunk: media_pb2.AudioChunk, kind: str) -> None:
    header = json.dumps({"turn_id": turn_id, "sample_rate": chunk.sample_rate, "kind": kind, "talker": chunk.talker,
                         "sentence_index": chunk.sentence_index, "last": chunk.last,
                         "warnings": list(chunk.warnings)}).encode()
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_bytes(struct.pack("<I", len(header)) + header + chunk.pcm16)


# ---- the app ------------------------------------------------------------------------------------------------------


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def host_name(host_header: str) -> str:
    """The name in a Host header, without its port or brackets, lower-case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def make_app(stack, cfg: StackConfig, token: str = "", allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES
             ) -> web.Application:
    """The page, /api/info, /ws (live session) and /ws/converse (an uploaded clip, one turn). Every request must
    name one of `allowed_hosts` in its Host header: a page on another site whose name an attacker re-points at
    127.0.0.1 (DNS rebinding) is then same-origin with itself, so the Origin check alone would let it in."""
    allowed_names = {name.lower().strip("[]") for name in allowed_hosts}

    @web.middleware
    async def known_host(request: web.Request, handler):
        if host_name(request.host or "") not in allowed_names:
            raise web.HTTPMisdirectedRequest(text="this server does not answer to that host name (start it with "
                                             "--allow-host NAME to allow one)")
        return await handler(request)

    def allowed(request: web.Request) -> None:
        # WebSockets ignore the same-origin policy: a page from elsewhere must not reach the agent through the
        # user's browser.
        origin = request.headers.get("Origin")
        if origin and urlparse(origin).netloc != request.host:
            raise web.HTTPForbidden(text="requests from another origin are refused")
        if token and not hmac.compare_digest(request.query.get("token", "").encode(), token.encode()):
            raise web.HTTPUnauthorized(text="missing or wrong token: open the page as https://HOST:PORT/#token=TOKEN")

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def info(request: web.Request) -> web.Response:
        allowed(request)
        problem = getattr(stack, "problem", None)
        return web.json_response({"stack": stack.name, "talkers": await talker_list(stack),
                                  "status": str(problem) if problem else "", "rates": list(RATES)})

    async def live(request: web.Request) -> web.WebSocketResponse:
        allowed(request)
        ws = web.WebSocketResponse(heartbeat=10, max_msg_size=4 * 1024 * 1024)
        await ws.prepare(request)
        await Bridge(ws, stack).run()
        return ws

    async def converse(request: web.Request) -> web.WebSocketResponse:
        allowed(request)
        ws = web.WebSocketResponse(heartbeat=10, max_msg_size=cfg.limits.max_media_bytes + 1024)
        await ws.prepare(request)
        await converse_clip(ws, stack)
        return ws

    app = web.Application(client_max_size=1024 * 1024, middlewares=[known_host])
    app.router.add_get("/", index)
    app.router.add_get("/api/info", info)
    app.router.add_get("/ws", live)
    app.router.add_get("/ws/converse", converse)
    app.router.add_static("/static/", STATIC, append_version=False)
    return app


async def converse_clip(ws: web.WebSocketResponse, stack) -> None:
    """Upload mode: one clip through `Converse`, its events streamed back like a live turn's."""
    header = None
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            header = json.loads(message.data)
        elif message.type == WSMsgType.BINARY and header is not None:
            request = agent_pb2.ConverseRequest(
                talker=str(header.get("talker", "")), context=str(header.get("context", "")), face_optional=True,
                media=media_pb2.MediaInput(data=bytes(message.data), filename=str(header.get("filename", "clip"))))
            try:
                async for event in stack.converse(request):
                    await send_event(ws, agent_pb2.SessionEvent(turn=event))
                await ws.send_json({"type": "converse_done"})
            except Exception as exc:
                code, details = failure(exc)
                if code == "INTERNAL" and type(exc).__name__ == "MediaError":
                    code = "INVALID_ARGUMENT"
                await ws.send_json({"type": "status", "code": "converse_failed",
                                    "message": f"the clip's turn failed ({code}: {details})"})
            break


def serve(args, cfg: StackConfig) -> int:
    """`emoomni web`: listen (refusing an exposed address without TLS and a token), serve until Ctrl-C."""
    from emoomni.core.aio import run_async

    addr = f"{args.host}:{args.port}"
    exposed = not is_loopback(args.host)
    try:
        check_listen(addr, cfg.security)
    except InsecureListen as exc:
        return fail(str(exc))
    ssl_context = None
    if cfg.security.tls.enabled:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(cfg.security.tls.cert, cfg.security.tls.key)
    stack = RemoteAgent(args.remote, args.talkers or cfg.services.talker) if args.remote else EmbeddedStack(cfg)
    token = cfg.security.token if exposed else ""
    hosts = (*LOOPBACK_NAMES, *([args.host] if args.host not in ("0.0.0.0", "::", "") else []),
             *getattr(args, "allow_host", []))
    try:
        run_async(_serve(stack, make_app(stack, cfg, token, hosts), args.host, args.port, ssl_context, token))
    except OSError as exc:
        return fail(f"cannot listen on {addr}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        pass
    return 0


async def _serve(stack, app: web.Application, host: str, port: int, ssl_context, token: str) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
    await site.start()
    scheme = "https" if ssl_context else "http"
    shown = f"[{host}]" if ":" in host else host
    suffix = "#token=YOUR_TOKEN" if token else ""
    print(f"EmoOmni web demo on {scheme}://{shown}:{port}/{suffix} ({stack.name}; Ctrl-C stops)", flush=True)
    sys.stdout.flush()
    await stack.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # stop the embedded stack (and its nats-server) on either
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        await stack.stop()
        await runner.cleanup()
