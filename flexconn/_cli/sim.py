"""``flexconn sim``: run the exchange simulator standalone until Ctrl-C.

Prints where to connect and the demo account's key pair (the simulator's own, labelled as such),
then logs what happens: connections dropped or refused, faults fired, and a line of server
statistics now and then. Faults come from :class:`flexconn.sim.Faults` on a schedule chosen with
the ``--*-every`` options.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path

import trio

from flexconn._cli.common import (
    DEFAULT_HOST,
    DEFAULT_REST_PORT,
    DEFAULT_WS_PORT,
    ENV_API_KEY,
    ENV_API_SECRET,
    ENV_REST_URL,
    ENV_URL,
    CliError,
    Subparsers,
    add_logging_options,
    emit,
    nonnegative_float,
    positive_float,
)
from flexconn.sim import (
    DEFAULT_MARKETS,
    Cadences,
    MarketSpec,
    RateLimits,
    Simulator,
    WsOptions,
    serve,
)
from flexconn.sim.markets import markets_from_config

__all__ = ["register"]

log = logging.getLogger("flexconn.cli.sim")

#: Frames ``--garbage-every`` sends in turn: not JSON, a message no client knows, a binary frame.
GARBAGE_FRAMES: tuple[str | bytes, ...] = (
    "{this is not json",
    '{"event":"flexconnMystery","data":{"note":"an unknown message, injected"}}',
    b"\x00\xffbinary garbage",
)


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run the exchange simulator standalone",
        description=(
            "Run the embedded CoinFLEX simulator (WebSocket and REST) until Ctrl-C. Prints the "
            "URLs and the demo account's key pair, then logs activity to stderr."
        ),
    )
    where = parser.add_argument_group("where")
    where.add_argument("--host", default=DEFAULT_HOST, help=f"interface (default: {DEFAULT_HOST})")
    where.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_WS_PORT,
        help=f"WebSocket port; 0 picks a free one (default: {DEFAULT_WS_PORT})",
    )
    where.add_argument(
        "--rest-port",
        type=_port,
        default=DEFAULT_REST_PORT,
        help=f"REST port; 0 picks a free one (default: {DEFAULT_REST_PORT})",
    )
    where.add_argument("--no-rest", action="store_true", help="serve WebSocket only")

    market = parser.add_argument_group("markets and participants")
    codes = ", ".join(spec.market_code for spec in DEFAULT_MARKETS)
    market.add_argument(
        "--market",
        action="append",
        metavar="CODE",
        help=f"serve only these markets (repeatable; from {codes})",
    )
    market.add_argument(
        "--markets-file",
        type=Path,
        metavar="JSON",
        help="markets from a JSON list of /v2/all/markets-style records instead",
    )
    market.add_argument(
        "--rate",
        type=nonnegative_float,
        default=20.0,
        metavar="PER_SECOND",
        help="synthetic participant actions per second; 0 for quiet books (default: 20)",
    )
    market.add_argument(
        "--firehose",
        action="store_true",
        help="participants and depth publishing as fast as possible (load tests)",
    )
    market.add_argument(
        "--depth",
        type=int,
        default=10,
        metavar="N",
        help="quotes per side the synthetic maker keeps in each market (default: 10)",
    )
    market.add_argument("--seed", type=int, default=0, help="seeds the order flow (default: 0)")

    limits = parser.add_argument_group(
        "WebSocket rate limits (the exchange's documented ones by default)"
    )
    limits.add_argument(
        "--no-rate-limits", action="store_true", help="switch every WebSocket limit off"
    )
    limits.add_argument(
        "--no-message-limit", action="store_true", help="no per-socket message limit"
    )
    limits.add_argument("--no-order-limit", action="store_true", help="no per-account order limit")
    limits.add_argument(
        "--no-connection-limit", action="store_true", help="no new-connections-per-minute limit"
    )
    limits.add_argument(
        "--idle-timeout",
        type=positive_float,
        default=60.0,
        metavar="SECONDS",
        help="close sockets idle this long (default: 60)",
    )

    faults = parser.add_argument_group("faults (off by default)")
    faults.add_argument(
        "--drop-every",
        type=positive_float,
        metavar="SECONDS",
        help="drop every WebSocket connection (no close frame) this often",
    )
    faults.add_argument(
        "--refuse-for",
        type=positive_float,
        metavar="SECONDS",
        help="after each scheduled drop, refuse new connections (HTTP 503) this long",
    )
    faults.add_argument(
        "--stall-every",
        type=positive_float,
        metavar="SECONDS",
        help="make every connection half-open (silent, not closed) this often",
    )
    faults.add_argument(
        "--stall-for",
        type=positive_float,
        default=30.0,
        metavar="SECONDS",
        help="how long each stall lasts (default: 30)",
    )
    faults.add_argument(
        "--garbage-every",
        type=positive_float,
        metavar="SECONDS",
        help="send every connection a malformed or unknown frame this often",
    )
    faults.add_argument(
        "--reply-delay",
        type=nonnegative_float,
        default=0.0,
        metavar="SECONDS",
        help="hold every command reply back this long (default: 0)",
    )
    parser.add_argument(
        "--stats-every",
        type=nonnegative_float,
        default=10.0,
        metavar="SECONDS",
        help="log server statistics this often; 0 never (default: 10)",
    )
    add_logging_options(parser)
    parser.set_defaults(handler=handle, log_level=logging.INFO)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return port


def _markets(args: argparse.Namespace) -> tuple[MarketSpec, ...]:
    specs: tuple[MarketSpec, ...] = DEFAULT_MARKETS
    if args.markets_file is not None:
        try:
            records = json.loads(args.markets_file.read_text())
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read {args.markets_file}: {exc}", status=2) from None
        if isinstance(records, dict):  # a saved /v2/all/markets reply
            records = records.get("data", [])
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise CliError(f"{args.markets_file}: expected a JSON list of market records", 2)
        try:
            specs = markets_from_config(records)
        except ValueError as exc:
            raise CliError(f"{args.markets_file}: {exc}", status=2) from None
    if args.market:
        known = {spec.market_code: spec for spec in specs}
        unknown = [code for code in args.market if code not in known]
        if unknown:
            raise CliError(
                f"unknown market {unknown[0]!r}; choose from {', '.join(known)}", status=2
            )
        specs = tuple(known[code] for code in dict.fromkeys(args.market))
    if not specs:
        raise CliError("no markets to serve", status=2)
    return specs


def _rate_limits(args: argparse.Namespace) -> RateLimits:
    if args.no_rate_limits:
        return RateLimits.unlimited()
    base = RateLimits()
    return RateLimits(
        authenticated=None if args.no_message_limit else base.authenticated,
        unauthenticated=None if args.no_message_limit else base.unauthenticated,
        connections_per_minute=None if args.no_connection_limit else base.connections_per_minute,
        orders_per_account=None if args.no_order_limit else base.orders_per_account,
    )


def _check(args: argparse.Namespace) -> None:
    if args.refuse_for is not None and args.drop_every is None:
        raise CliError("--refuse-for needs --drop-every (refusals follow scheduled drops)", 2)
    if args.firehose and args.rate == 0:
        raise CliError("--firehose and --rate 0 contradict each other", status=2)
    if args.depth < 1:
        raise CliError("--depth must be at least 1", status=2)


async def handle(args: argparse.Namespace, stop: trio.CancelScope) -> int:
    _check(args)
    markets = _markets(args)
    rate: float | None = math.inf if args.firehose else (args.rate or None)
    with stop:
        async with serve(
            args.port,
            host=args.host,
            rest_port=None if args.no_rest else args.rest_port,
            markets=markets,
            participants_rate=rate,
            participants_depth=args.depth,
            seed=args.seed,
            rate_limits=_rate_limits(args),
            cadences=Cadences.firehose() if args.firehose else Cadences(),
            ws_options=WsOptions(idle_timeout=args.idle_timeout),
        ) as sim:
            _announce(sim, markets)
            if args.reply_delay:
                sim.faults.delay_replies(args.reply_delay)
            async with trio.open_nursery() as nursery:
                _schedule_faults(nursery, sim, args)
                if args.stats_every:
                    nursery.start_soon(_log_stats, sim, args.stats_every)
                await trio.sleep_forever()
    log.info("simulator stopped")
    return 0


def _announce(sim: Simulator, markets: tuple[MarketSpec, ...]) -> None:
    key = sim.demo_key
    lines = [
        "flexconn simulator running",
        f"  WebSocket  {sim.ws_url}",
        f"  REST       {sim.rest_url or '(not served)'}",
        f"  markets    {', '.join(spec.market_code for spec in markets)}",
        "  demo account credentials (the simulator's own, not a secret; valid until it stops):",
        f"    account     {key.account_id}",
        f"    api key     {key.api_key}",
        f"    api secret  {key.api_secret}",
        "  for the other flexconn commands:",
        f"    export {ENV_URL}={sim.ws_url}"
        + (f" {ENV_REST_URL}={sim.rest_url}" if sim.rest_url else ""),
        f"    export {ENV_API_KEY}={key.api_key} {ENV_API_SECRET}={key.api_secret}",
        "Press Ctrl-C to stop.",
    ]
    for line in lines:
        emit(line)


def _schedule_faults(nursery: trio.Nursery, sim: Simulator, args: argparse.Namespace) -> None:
    faults = sim.faults

    def drop() -> str:
        if args.refuse_for:
            faults.refuse_connections(args.refuse_for)
        dropped = faults.drop_all()
        refusing = f"; refusing new ones for {args.refuse_for:g}s" if args.refuse_for else ""
        return f"dropped {dropped} connection(s){refusing}"

    def stall() -> str:
        return f"stalled {faults.stall(args.stall_for)} connection(s) for {args.stall_for:g}s"

    frames = itertools.cycle(GARBAGE_FRAMES)

    def garbage() -> str:
        frame = next(frames)
        kind = "binary" if isinstance(frame, bytes) else "text"
        return f"sent a garbage {kind} frame to {faults.inject(frame)} connection(s)"

    for every, action in (
        (args.drop_every, drop),
        (args.stall_every, stall),
        (args.garbage_every, garbage),
    ):
        if every is not None:
            nursery.start_soon(partial(_every, every, action))


async def _every(seconds: float, action: Callable[[], str]) -> None:
    while True:
        await trio.sleep(seconds)
        log.info("fault: %s", action())


async def _log_stats(sim: Simulator, every: float) -> None:
    """Log the server's counters every ``every`` seconds, staying quiet while nothing happens."""
    sent = accepted = 0
    while True:
        await trio.sleep(every)
        stats = sim.ws_server.statistics()
        if (
            stats.connections_open
            or stats.frames_sent != sent
            or stats.connections_accepted != accepted
        ):
            log.info(
                "%d connection(s) open, %d accepted so far, %d frames sent in the last %gs",
                stats.connections_open,
                stats.connections_accepted,
                stats.frames_sent - sent,
                every,
            )
        sent, accepted = stats.frames_sent, stats.connections_accepted
