"""`emoomni web`: talk to the agent from a browser, with camera and microphone (docs/web.md).

The command serves a static page (static/: plain HTML, ES modules and CSS, nothing fetched from elsewhere) and
bridges each browser to a live session (`Agent.Session`) over a WebSocket: the page sends PCM16 microphone frames
and JPEG camera frames, the server passes on the session's events and the agent's audio. The stack is embedded in
this process by default (as `emoomni chat` and `emoomni live` do) or a running gateway (`--remote`)."""

from __future__ import annotations

import argparse

from emoomni.sdk.commands import Command, add_client_security, apply_client_security


class WebCommand(Command):
    name = "web"
    help = "serve the browser demo: talk to the agent with camera and microphone (http://127.0.0.1:8080)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other "
                            "needs security.tls and a token, as every server of the stack)")
        parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
        parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                            help="a host name the page may be reached by (repeatable); localhost, 127.0.0.1, ::1 and "
                            "--host are always allowed. Any other Host header is refused (DNS rebinding).")
        parser.add_argument("--remote", metavar="HOST:PORT", help="a running gateway (`emoomni up`) instead of the "
                            "embedded stack")
        parser.add_argument("--talkers", metavar="HOST:PORT", help="the talker service that lists the engines with "
                            "--remote (default: the config's services.talker)")
        add_client_security(parser)

    def run(self, args, cfg) -> int:
        from emoomni.apps.web.server import serve

        apply_client_security(args)
        return serve(args, cfg)
