"""`emoomni` subcommands are plugins too: a class registered under the entry-point group ``emoomni.commands``.

Adding a command (e.g. `emoomni train`) is one class with `name`, `help`, `add_arguments` and `run`, plus one
line in a package's ``[project.entry-points."emoomni.commands"]`` table; the CLI finds it there, so no hand-kept
list of subcommands exists. Commands live in their own area (apps/, eval/, training/...) and share only this.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from abc import ABC, abstractmethod
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, ClassVar

from emoomni.sdk.security import ENVIRONMENT

if TYPE_CHECKING:
    from emoomni.core.config import StackConfig

COMMAND_GROUP = "emoomni.commands"
EXIT_BAD_INPUT = 2

log = logging.getLogger(__name__)


class Command(ABC):
    """One subcommand. `run` gets the parsed arguments and the loaded stack config, and returns the exit code."""

    name: ClassVar[str]
    help: ClassVar[str]
    description: ClassVar[str | None] = None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027 - optional hook
        """Declare the subcommand's own arguments (none by default)."""

    @abstractmethod
    def run(self, args: argparse.Namespace, cfg: StackConfig) -> int:
        """Do the work; 0 on success, EXIT_BAD_INPUT (via `fail`) for input the user can fix."""


def fail(message: str) -> int:
    """Say what is wrong with the user's input, on stderr, and give the exit code for bad input."""
    print(f"emoomni: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def discover_commands() -> dict[str, Command]:
    """Every registered subcommand by name, in registration order. One that cannot be imported is left out with a
    warning (a broken optional package must not take the whole CLI down)."""
    found: dict[str, Command] = {}
    for ep in entry_points(group=COMMAND_GROUP):
        try:
            found[ep.name] = ep.load()()
        except Exception as exc:
            log.warning("emoomni command %r could not be imported: %s", ep.name, exc)
    return found


def add_client_security(parser: argparse.ArgumentParser) -> None:
    """--tls-ca / --token-file / --client-cert / --client-key for commands that call a running stack."""
    group = parser.add_argument_group("calling a secured stack (README, Running unattended)")
    group.add_argument("--tls-ca", metavar="PEM", help="CA that signed the server's certificate: use TLS "
                       "($EMOOMNI_TLS_CA)")
    group.add_argument("--token-file", metavar="FILE", help="file holding the bearer token ($EMOOMNI_TOKEN holds "
                       "it directly; never on the command line, where `ps` shows it)")
    group.add_argument("--client-cert", metavar="PEM", help="client certificate for mutual TLS ($EMOOMNI_CLIENT_CERT)")
    group.add_argument("--client-key", metavar="PEM", help="its private key ($EMOOMNI_CLIENT_KEY)")


def apply_client_security(args: argparse.Namespace) -> None:
    """Flags win over the environment; every client made in this process then uses them."""
    if getattr(args, "token_file", None):
        from emoomni.core.private_files import read_secret_file

        args.token = read_secret_file(args.token_file)
    for attr, var in ENVIRONMENT.items():  # the variables every client reads (emoomni.sdk.security)
        value = getattr(args, attr, None)
        if value is not None:
            os.environ[var] = value
