"""``flexconn book MARKET``: a live view of one market's order book.

In a terminal it redraws a two-sided book (rich); with its output piped it prints one line per
``--interval`` instead: sequence number, best bid and ask, spread.
"""

from __future__ import annotations

import argparse
import logging
import sys

import trio
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from flexconn._cli import view
from flexconn._cli.common import (
    Subparsers,
    add_connection_options,
    add_logging_options,
    connect_to,
    emit,
    open_target,
    positive_float,
    positive_int,
)
from flexconn.book import OrderBook
from flexconn.connection import Connection, ConnectionState, LiveOrderBook
from flexconn.models.enums import DepthLevel

__all__ = ["register"]

_LEVELS = [DepthLevel.L5.value, DepthLevel.L10.value, DepthLevel.L25.value, DepthLevel.FULL.value]


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


def plain_line(book: OrderBook, state: ConnectionState) -> str:
    """One line about ``book``: sequence, best bid and ask, spread (or why it is stale)."""
    if not book.valid:
        return f"{book.market_code} {state.value}: book stale, waiting for a fresh snapshot"
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
        async with (
            open_target(args) as target,
            connect_to(target, args, login=False) as conn,
            conn.order_book(args.market, level=DepthLevel(args.channel)) as live,
        ):
            if live_view:
                await _show(conn, live, args)
            else:
                await _print(conn, live, args.interval)
    return 0


async def _print(conn: Connection, live: LiveOrderBook, interval: float) -> None:
    while True:
        if live.book.valid or conn.state is not ConnectionState.CONNECTED:
            emit(plain_line(live.book, conn.state))
        await trio.sleep(interval)


async def _show(conn: Connection, live: LiveOrderBook, args: argparse.Namespace) -> None:
    console = Console()
    with Live(console=console, auto_refresh=False, screen=False, transient=False) as screen:
        while True:
            stats = conn.stats()
            header = Text.assemble(
                ("flexconn book  ", "bold"),
                view.state_text(conn.state),
                f"  {conn.url}  reconnects {stats.reconnects}  frames in {stats.frames_in}",
            )
            panel = view.book_panel(live.book, levels=args.levels)
            footer = Text("Ctrl-C to quit", style="dim")
            screen.update(Group(header, panel, footer), refresh=True)
            # At most ten redraws a second, at least two (the state line moves on its own).
            await trio.sleep(0.1)
            with trio.move_on_after(0.4):
                await live.wait_updated()
