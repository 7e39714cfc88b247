"""``flexconn stream``: print every typed message of some channels as one JSON line each.

The lines are the codec's own encoding (:func:`flexconn.protocol.codec.dumps`), the wire form of
each typed message, so they can be piped into ``jq`` or read back. After a reconnect each feed
also prints a ``{"marker": "StreamRestarted", ...}`` line: data may be missing before it. The
connection's state goes to stderr: each drop with its reason, each reconnect.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import orjson
import trio

from flexconn._cli.common import (
    CliError,
    Subparsers,
    add_connection_options,
    add_logging_options,
    check_markets,
    connect_to,
    emit,
    open_target,
    positive_float,
    positive_int,
)
from flexconn.channels import ALL, Channel
from flexconn.config import Backpressure
from flexconn.connection import Connection, ConnectionEvent, ConnectionState
from flexconn.errors import ValidationError
from flexconn.feeds import Feed, StreamRestarted
from flexconn.protocol.codec import dumps

__all__ = ["marker_line", "register", "report_connection"]


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "stream",
        help="print channel messages as JSON lines",
        description=(
            "Subscribe to channels and print each typed message as one JSON line on stdout. "
            "Channels are wire names such as depthL5:BTC-USD-SWAP-LIN, trade:ETH-USD, "
            "ticker:all or order:all (private: needs credentials)."
        ),
    )
    parser.add_argument("channels", nargs="+", metavar="CHANNEL", help="channel to subscribe to")
    parser.add_argument(
        "--count", type=positive_int, metavar="N", help="stop after N messages (all channels)"
    )
    parser.add_argument(
        "--duration", type=positive_float, metavar="SECONDS", help="stop after this long"
    )
    parser.add_argument(
        "--policy",
        choices=[policy.value for policy in Backpressure],
        help="backpressure policy (default: latest for books and tickers, block otherwise)",
    )
    add_connection_options(parser, embedded_sim=True)
    add_logging_options(parser)
    parser.set_defaults(handler=handle, log_level=logging.WARNING)


def marker_line(marker: StreamRestarted) -> str:
    """The JSON line printed for a continuity marker."""
    return orjson.dumps(
        {
            "marker": "StreamRestarted",
            "channel": marker.channel,
            "reconnects": marker.reconnects,
            "reason": marker.reason,
        }
    ).decode()


def _parse(texts: list[str]) -> list[Channel[Any]]:
    try:
        return [Channel.parse(text) for text in dict.fromkeys(texts)]
    except ValidationError as exc:
        raise CliError(str(exc), status=2) from None


async def handle(args: argparse.Namespace, stop: trio.CancelScope) -> int:
    channels = _parse(args.channels)
    policy = Backpressure(args.policy) if args.policy else None
    with stop:
        async with open_target(args) as target:
            private = [str(channel) for channel in channels if channel.private]
            if private and target.credentials is None:
                raise CliError(f"{private[0]} is private: give an API key and secret", status=2)
            # Every public channel's selector is a market code (or "all").
            await check_markets(
                target.rest_url,
                dict.fromkeys(c.selector for c in channels if not c.private and c.selector != ALL),
            )
            async with (
                connect_to(target, args) as conn,
                conn.events() as events,
                AsyncExitStack() as stack,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(report_connection, conn, events, _to_stderr)
                feeds = [
                    await stack.enter_async_context(conn.subscribe(channel, policy=policy))
                    for channel in channels
                ]
                await _pump(feeds, count=args.count, duration=args.duration)
                nursery.cancel_scope.cancel()
    return 0


def _to_stderr(line: str) -> None:
    sys.stderr.write(f"flexconn stream: {line}\n")
    sys.stderr.flush()


async def report_connection(
    conn: Connection, events: Feed[ConnectionEvent], sink: Callable[[str], None]
) -> None:
    """Say on ``sink`` (stderr) when the connection drops, why, and when it is back.

    stdout carries only messages (and continuity markers), so a consumer of the JSON lines is
    not disturbed; a person watching the terminal sees that data stopped because the
    connection did, not because the market went quiet.
    """
    down = False
    last = ""
    async for event in events:
        if isinstance(event, StreamRestarted) or event.kind != "state" or event.state is None:
            continue
        detail = f": {event.detail}" if event.detail else ""
        if event.state is ConnectionState.RECONNECTING:
            if not down:
                sink(f"disconnected{detail}; reconnecting (data may be missing until it is back)")
            elif detail != last:  # a failed attempt, told once per distinct reason
                sink(f"still reconnecting{detail}")
            down, last = True, detail
        elif event.state is ConnectionState.CONNECTED and down:
            down, last = False, ""
            sink(f"reconnected (reconnect #{conn.stats().reconnects}); resubscribing")
        elif event.state is ConnectionState.CLOSED:
            sink(f"connection closed{detail}")


async def _pump(feeds: list[Feed[Any]], *, count: int | None, duration: float | None) -> None:
    """Print from every feed until ``count`` messages, ``duration`` seconds, or the end."""
    printed = 0
    with trio.move_on_after(duration if duration is not None else float("inf")):
        async with trio.open_nursery() as nursery:

            async def pump(feed: Feed[Any]) -> None:
                nonlocal printed
                async for message in feed:
                    if count is not None and printed >= count:
                        return
                    if isinstance(message, StreamRestarted):
                        emit(marker_line(message))
                        continue
                    emit(dumps(message))
                    printed += 1
                    if count is not None and printed >= count:
                        nursery.cancel_scope.cancel()
                        return

            for feed in feeds:
                nursery.start_soon(pump, feed)
