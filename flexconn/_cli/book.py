"""``flexconn book MARKET``: a live view of one market's order book.

In a terminal it redraws a two-sided book (rich); with its output piped it prints one line per
``--interval`` instead: sequence number, best bid and ask, spread. While the connection is down,
or the book is waiting for a fresh snapshot after a drop, both say ``STALE`` and why instead of
showing the last (frozen) levels as if they were live.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

import trio
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from flexconn._cli import view
from flexconn._cli.common import (
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
from flexconn.book import OrderBook
from flexconn.connection import Connection, ConnectionEvent, ConnectionState, LiveOrderBook
from flexconn.feeds import Feed, StreamRestarted
from flexconn.models.enums import DepthLevel

__all__ = ["Link", "plain_line", "print_lines", "register"]

_LEVELS = [DepthLevel.L5.value, DepthLevel.L10.value, DepthLevel.L25.value, DepthLevel.FULL.value]


#: The line under the live view: what its words mean.
LEGEND = view.legend(
    ("STALE", "connection down or awaiting a fresh snapshot"),
    ("seq", "the snapshot's sequence number"),
    ("Ctrl-C", "quit"),
)


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "book",
        help="live order book of one market",
        description="Show a live order book. Plain lines instead of the view when piped.",
    )
    parser.add_argument("market", metavar="MARKET", help="market code, e.g. BTC-USD-SWAP-LIN")
    parser.add_argument(
        "--levels", type=positive_int, default=10, help="levels per side shown (default: 10)"
    )
    parser.add_argument(
        "--channel",
        choices=_LEVELS,
        default=DepthLevel.L25.value,
        help="depth channel to keep the book from (default: depthL25)",
    )
    parser.add_argument(
        "--duration", type=positive_float, metavar="SECONDS", help="stop after this long"
    )
    parser.add_argument(
        "--interval",
        type=positive_float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between plain lines when piped (default: 1)",
    )
    parser.add_argument(
        "--plain", action="store_true", help="plain lines even in a terminal (no live view)"
    )
    add_connection_options(parser, embedded_sim=True)
    add_logging_options(parser)
    parser.set_defaults(handler=handle, log_level=logging.WARNING)


class Link:
    """What the connection's events said last: its state and why it went down.

    Fed by :meth:`follow` from ``conn.events()``; the book is shown as stale whenever the
    state is not ``CONNECTED`` or the book itself is not valid.
    """

    def __init__(self, state: ConnectionState) -> None:
        self.state = state
        self.detail = ""

    async def follow(self, events: Feed[ConnectionEvent]) -> None:
        async for event in events:
            if isinstance(event, StreamRestarted) or event.state is None:
                continue
            self.state = event.state
            self.detail = "" if event.state is ConnectionState.CONNECTED else event.detail

    def why(self) -> str:
        """The state, with the reason of the drop when it is down (``reconnecting: ...``)."""
        return self.state.value + (f": {self.detail}" if self.detail else "")


def plain_line(book: OrderBook, state: ConnectionState, detail: str = "") -> str:
    """One line about ``book``: sequence, best bid and ask, spread; or ``STALE`` and why.

    A book is stale while the connection is not ``CONNECTED`` (``detail``: why it went down)
    or the book is not valid, until the first fresh snapshot after the resubscription.
    """
    if not book.valid or state is not ConnectionState.CONNECTED:
        why = state.value + (f": {detail}" if detail else "")
        return (
            f"{book.market_code} STALE ({why}): book invalid, not live; "
            "waiting for a fresh snapshot"
        )
    bid, ask = book.best_bid, book.best_ask
    bid_text = f"{view.number(bid.quantity)} @ {view.number(bid.price)}" if bid else "-"
    ask_text = f"{view.number(ask.quantity)} @ {view.number(ask.price)}" if ask else "-"
    return (
        f"{book.market_code} seq={book.seq_num} bid {bid_text} | ask {ask_text} "
        f"spread {view.number(book.spread)}"
    )


async def handle(args: argparse.Namespace, stop: trio.CancelScope) -> int:
    live_view = sys.stdout.isatty() and not args.plain
    with stop, trio.move_on_after(args.duration or float("inf")):
        async with open_target(args) as target:
            await check_markets(target.rest_url, [args.market])
            async with (
                connect_to(target, args, login=False) as conn,
                conn.events() as events,
                conn.order_book(args.market, level=DepthLevel(args.channel)) as live,
                trio.open_nursery() as nursery,
            ):
                link = Link(conn.state)
                nursery.start_soon(link.follow, events)
                if live_view:
                    await _show(conn, live, link, args)
                else:
                    await print_lines(live, link, args.interval, emit)
                nursery.cancel_scope.cancel()
    return 0


async def print_lines(
    live: LiveOrderBook, link: Link, interval: float, sink: Callable[[str], None]
) -> None:
    """A line every ``interval`` seconds, live or ``STALE`` (a stale book is never printed)."""
    while True:
        sink(plain_line(live.book, link.state, link.detail))
        await trio.sleep(interval)


async def _show(
    conn: Connection, live: LiveOrderBook, link: Link, args: argparse.Namespace
) -> None:
    console = Console()
    with Live(console=console, auto_refresh=False, screen=False, transient=False) as screen:
        while True:
            stats = conn.stats()
            stale = None
            if link.state is not ConnectionState.CONNECTED or not live.book.valid:
                stale = link.why()
            header = Text.assemble(
                ("flexconn book  ", "bold"),
                view.state_text(link.state),
                f"  {conn.url}  reconnects {stats.reconnects}  frames in {stats.frames_in}",
            )
            size = console.size
            footer = view.height_of(header, size.width) + view.height_of(LEGEND, size.width)
            levels = view.fit_levels(args.levels, size.height, reserved=footer)
            panel = view.book_panel(live.book, levels=levels, stale=stale)
            needed = view.width_of(panel)
            body: RenderableType = panel
            if size.width < needed:
                body = Text(
                    f"terminal too narrow for the book: it needs {needed} columns, this one "
                    f"has {size.width}; widen it or use --plain",
                    style="bold yellow",
                )
            screen.update(Group(header, body, LEGEND), refresh=True)
            # At most ten redraws a second, at least two (the state line moves on its own).
            await trio.sleep(0.1)
            with trio.move_on_after(0.4):
                await live.wait_updated()
