"""What every subcommand shares: the parser class, logging, credentials, targets, the runner.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``handler``: an ``async def handler(args, stop) -> int``. :func:`run` calls it under
:func:`trio.run` with a cancel scope ``stop`` that the first Ctrl-C (or SIGTERM) cancels, so a
handler decides what "stop cleanly" means by what it puts inside that scope (a summary, say,
goes after it). Expected failures (bad arguments, an unreachable server, a refused key) become a
:class:`CliError`, printed as one line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal, InvalidOperation
from typing import NoReturn, TypeAlias

import attrs
import trio

from flexconn.auth import Credentials
from flexconn.config import ReconnectPolicy
from flexconn.connection import Connection, open_connection
from flexconn.errors import ExchangeError, FlexconnError, OrderOutcomeUnknown, TransportError
from flexconn.rest import RestClient
from flexconn.sim import Simulator, serve
from flexconn.transport import check_url

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_REST_PORT",
    "DEFAULT_REST_URL",
    "DEFAULT_WS_PORT",
    "DEFAULT_WS_URL",
    "ENV_API_KEY",
    "ENV_API_SECRET",
    "ENV_REST_URL",
    "ENV_URL",
    "EXIT_UNKNOWN",
    "CliError",
    "Handler",
    "Parser",
    "Subparsers",
    "Target",
    "add_connection_options",
    "add_logging_options",
    "check_markets",
    "configure_logging",
    "connect_to",
    "credentials_from",
    "emit",
    "fail",
    "market_codes",
    "nonnegative_float",
    "open_target",
    "positive_decimal",
    "positive_float",
    "positive_int",
    "run",
    "unknown_market",
]

#: The exit status of an order command whose outcome could not be learned (1: it failed).
EXIT_UNKNOWN = 3

ENV_URL = "FLEXCONN_URL"
ENV_REST_URL = "FLEXCONN_REST_URL"
ENV_API_KEY = "FLEXCONN_API_KEY"
ENV_API_SECRET = "FLEXCONN_API_SECRET"

#: ``handler(args, stop)``: the subcommand's body; ``stop`` is cancelled by Ctrl-C.
Handler = Callable[[argparse.Namespace, trio.CancelScope], Awaitable[int]]

log = logging.getLogger("flexconn.cli")

_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class CliError(Exception):
    """An expected failure, reported as one line on stderr with exit ``status``."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block) and exit with 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


#: What each subcommand module's ``register(subparsers)`` receives.
Subparsers: TypeAlias = "argparse._SubParsersAction[Parser]"


def fail(command: str | None, message: str, status: int) -> int:
    """Print ``message`` as the one-line error of ``command``; returns ``status``."""
    prog = f"flexconn {command}" if command else "flexconn"
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    sys.stderr.write(f"{prog}: error: {first_line}\n")
    return status


# --- output ------------------------------------------------------------------------------------


class _StdoutClosed(Exception):
    """The reader of our stdout went away (``flexconn stream | head``)."""


def emit(line: str) -> None:
    """Write one line to stdout and flush it, so piped consumers see it at once."""
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush does not complain too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise _StdoutClosed from None


# --- options -----------------------------------------------------------------------------------


def add_logging_options(parser: argparse.ArgumentParser) -> None:
    """``-v``/``-q``: log more or less than the subcommand's default level (to stderr)."""
    group = parser.add_argument_group("logging")
    group.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (repeat for debug)"
    )
    group.add_argument("-q", "--quiet", action="count", default=0, help="log less")


def add_connection_options(parser: argparse.ArgumentParser, *, embedded_sim: bool) -> None:
    """``--url``, ``--rest-url``, credentials and connection tuning.

    With ``embedded_sim`` a missing ``--url`` (and ``$FLEXCONN_URL``) starts a simulator in the
    process; without it the defaults point at ``flexconn sim``'s default ports.
    """
    group = parser.add_argument_group("connection")
    if embedded_sim:
        url_help = f"WebSocket URL (default: ${ENV_URL}, else a simulator started in this process)"
    else:
        url_help = f"WebSocket URL (default: ${ENV_URL}, else {DEFAULT_WS_URL})"
    group.add_argument("--url", help=url_help)
    group.add_argument(
        "--rest-url",
        help=f"REST origin (default: ${ENV_REST_URL}, else the simulator's; {DEFAULT_REST_URL})",
    )
    if embedded_sim:
        key_help = (
            f"API key (default: ${ENV_API_KEY}; with neither it nor --url, the embedded "
            "simulator's demo account; with --url but no key, no login: public channels only)"
        )
    else:
        key_help = (
            f"API key (default: ${ENV_API_KEY}; required: without a key pair the command "
            "stops with an error; flexconn sim prints its demo pair)"
        )
    group.add_argument("--api-key", help=key_help)
    group.add_argument(
        "--api-secret",
        help=f"API secret (default: ${ENV_API_SECRET}; prefer it: flags show up in process lists)",
    )
    group.add_argument(
        "--allow-insecure",
        action="store_true",
        help="allow plain ws:// to a host other than this machine",
    )
    group.add_argument(
        "--connect-timeout",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="give up on one connection attempt after this long (default: 10)",
    )
    if embedded_sim:
        group.add_argument(
            "--sim-rate",
            type=nonnegative_float,
            default=50.0,
            metavar="PER_SECOND",
            help="participant actions per second of the embedded simulator (default: 50)",
        )


#: Where ``flexconn sim`` listens by default.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_WS_PORT = 8765
DEFAULT_REST_PORT = 8766
DEFAULT_WS_URL = f"ws://{DEFAULT_HOST}:{DEFAULT_WS_PORT}/v2/websocket"
DEFAULT_REST_URL = f"http://{DEFAULT_HOST}:{DEFAULT_REST_PORT}"


def positive_float(text: str) -> float:
    """An argparse type: a number greater than zero."""
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    """An argparse type: a number, zero or more."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def positive_decimal(text: str) -> Decimal:
    """An argparse type: a decimal number greater than zero (prices, quantities)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number greater than zero."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


# --- credentials and targets -------------------------------------------------------------------


def credentials_from(args: argparse.Namespace) -> Credentials | None:
    """The key pair from ``--api-key``/``--api-secret``, else the environment, else ``None``.

    Raises:
        CliError: only one half of the pair was given.
    """
    key = getattr(args, "api_key", None) or os.environ.get(ENV_API_KEY)
    secret = getattr(args, "api_secret", None) or os.environ.get(ENV_API_SECRET)
    if not key and not secret:
        return None
    if not key or not secret:
        missing = "key" if not key else "secret"
        raise CliError(
            f"API {missing} missing: give both --api-key and --api-secret "
            f"(or ${ENV_API_KEY} and ${ENV_API_SECRET})",
            status=2,
        )
    return Credentials(key, secret)


@attrs.frozen(kw_only=True)
class Target:
    """Where a subcommand connects: URLs, credentials and the embedded simulator if any."""

    ws_url: str
    rest_url: str | None
    credentials: Credentials | None
    sim: Simulator | None = None


@asynccontextmanager
async def open_target(args: argparse.Namespace) -> AsyncIterator[Target]:
    """Yield the target ``args`` name, starting an embedded simulator when they name none.

    The embedded simulator's demo key is used unless credentials were given.
    """
    url = args.url or os.environ.get(ENV_URL)
    rest_url = args.rest_url or os.environ.get(ENV_REST_URL)
    credentials = credentials_from(args)
    if url or not hasattr(args, "sim_rate"):
        yield Target(
            ws_url=url or DEFAULT_WS_URL,
            rest_url=rest_url or (DEFAULT_REST_URL if not url else None),
            credentials=credentials,
        )
        return
    async with serve(participants_rate=args.sim_rate or None) as sim:
        demo = Credentials(sim.demo_key.api_key, sim.demo_key.api_secret)
        yield Target(
            ws_url=sim.ws_url,
            rest_url=sim.rest_url,
            credentials=credentials or demo,
            sim=sim,
        )


@asynccontextmanager
async def connect_to(
    target: Target,
    args: argparse.Namespace,
    *,
    login: bool = True,
    rest: RestClient | None = None,
) -> AsyncIterator[Connection]:
    """:func:`~flexconn.open_connection` to ``target``, failing in one line if it cannot.

    Logs in when ``login`` and the target has credentials; ``rest`` goes to the order outbox.
    A first connection that cannot be made (refused, timed out, not a WebSocket server) is a
    :class:`CliError` naming the URL; failures after that are the connection's own.
    """
    try:
        check_url(target.ws_url, allow_insecure=args.allow_insecure)
    except ValueError as exc:
        raise CliError(f"{exc.args[0].split(';')[0]} (use wss:// or --allow-insecure)", 2) from None
    connected = False
    try:
        async with open_connection(
            target.ws_url,
            credentials=target.credentials if login else None,
            reconnect=ReconnectPolicy(connect_timeout=args.connect_timeout),
            allow_insecure=args.allow_insecure,
            rest=rest,
        ) as conn:
            connected = True
            yield conn
    except TransportError as exc:
        if connected:
            raise
        raise CliError(f"cannot connect to {target.ws_url}: {exc}") from None


# --- markets -----------------------------------------------------------------------------------


async def market_codes(rest_url: str | None) -> list[str] | None:
    """The market codes ``GET /v2/all/markets`` of ``rest_url`` lists.

    ``None`` when there is no REST origin or it cannot be read (the caller then lets the
    exchange judge the market code).
    """
    if rest_url is None:
        return None
    try:
        async with RestClient(rest_url) as rest:
            reply = await rest.markets()
    except (FlexconnError, OSError) as exc:
        log.info("cannot list the markets of %s: %s", rest_url, exc)
        return None
    return [market.market_code for market in reply.data]


def unknown_market(code: str, known: Sequence[str] | None) -> CliError:
    """The error for a market code the exchange does not list (``known``: the codes it does)."""
    if known:
        listing = f"the exchange lists {', '.join(known)}"
    else:
        listing = "flexconn markets lists the valid codes"
    return CliError(f"unknown market {code!r}: {listing}", status=2)


async def check_markets(rest_url: str | None, codes: Iterable[str | None]) -> None:
    """Fail in one line on the first of ``codes`` the REST origin does not list.

    Does nothing when the origin cannot be read: the exchange then refuses an unknown market
    itself (code 20015), which :func:`run` reports the same way.

    Raises:
        CliError: a market code that is not listed (status 2).
    """
    wanted = [code for code in codes if code is not None]
    if not wanted:
        return
    known = await market_codes(rest_url)
    if known is None:
        return
    for code in wanted:
        if code not in known:
            raise unknown_market(code, known)


# --- running -----------------------------------------------------------------------------------


def configure_logging(args: argparse.Namespace) -> None:
    """Log to stderr at the subcommand's default level, moved by ``-v``/``-q``."""
    levels = [logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG]
    default = levels.index(getattr(args, "log_level", logging.WARNING))
    index = min(len(levels) - 1, max(0, default + args.verbose - args.quiet))
    logging.basicConfig(level=levels[index], format=_LOG_FORMAT, stream=sys.stderr, force=True)


def run(args: argparse.Namespace) -> int:
    """Run ``args.handler`` under trio; returns the exit status.

    Raises:
        CliError: an expected failure, described in one line.
    """
    configure_logging(args)
    try:
        return trio.run(_main, args.handler, args)
    except BaseException as exc:
        sole = _sole(exc)
        if isinstance(sole, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        expected = _expected(sole)
        if expected is None:
            raise  # a bug: keep the traceback
        raise expected from None


async def _main(handler: Handler, args: argparse.Namespace) -> int:
    stop = trio.CancelScope()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, stop)
        try:
            return await handler(args, stop)
        except _StdoutClosed:
            return 0
        finally:
            nursery.cancel_scope.cancel()


async def _watch_signals(stop: trio.CancelScope) -> None:
    """First Ctrl-C (or SIGTERM): stop cleanly; a second one: leave at once."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if stop.cancel_called:
                raise KeyboardInterrupt
            stop.cancel()


def _sole(exc: BaseException) -> BaseException:
    """The one exception inside nested single-member groups (the group itself otherwise)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _expected(exc: BaseException) -> CliError | None:
    """An expected failure as a :class:`CliError`; ``None`` for anything else (a bug)."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, ExchangeError):
        hint = "; flexconn markets lists the valid market codes" if exc.code == "20015" else ""
        return CliError(f"the exchange refused: {exc} ({type(exc).__name__}){hint}")
    if isinstance(exc, OrderOutcomeUnknown):
        return CliError(
            f"outcome unknown: {exc} (see what the exchange holds with: flexconn orders)",
            status=EXIT_UNKNOWN,
        )
    if isinstance(exc, FlexconnError):
        return CliError(f"{exc} ({type(exc).__name__})")
    if isinstance(exc, OSError):
        return CliError(str(exc) or type(exc).__name__)
    if isinstance(exc, ValueError):
        return CliError(str(exc), status=2)
    return None
