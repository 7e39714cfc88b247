"""``flexconn markets``: the markets an exchange lists (``GET /v2/all/markets``).

In a terminal it prints a table (code, type, tick size, quantity increment, price bounds); piped,
one JSON line per market, the REST record as the codec encodes it. Every command that takes a
market code points here when it is given one the exchange does not list.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import trio
from rich import box
from rich.console import Console
from rich.table import Table

from flexconn._cli import view
from flexconn._cli.common import (
    DEFAULT_REST_URL,
    ENV_REST_URL,
    CliError,
    Subparsers,
    add_logging_options,
    emit,
)
from flexconn.errors import FlexconnError
from flexconn.models.rest import Market
from flexconn.protocol.codec import dumps
from flexconn.rest import RestClient

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "markets",
        help="the markets the exchange lists",
        description=(
            "List the exchange's markets over REST: code, type, tick size, quantity increment "
            "and price bounds. Piped, one JSON line per market instead."
        ),
    )
    parser.add_argument(
        "--rest-url",
        help=f"REST origin (default: ${ENV_REST_URL}, else flexconn sim's; {DEFAULT_REST_URL})",
    )
    add_logging_options(parser)
    parser.set_defaults(handler=handle, log_level=logging.WARNING)


async def handle(args: argparse.Namespace, stop: trio.CancelScope) -> int:
    url = args.rest_url or os.environ.get(ENV_REST_URL) or DEFAULT_REST_URL
    with stop:
        try:
            async with RestClient(url) as rest:
                reply = await rest.markets()
        except (FlexconnError, OSError) as exc:
            raise CliError(f"cannot read the markets from the REST origin {url}: {exc}") from None
        if not sys.stdout.isatty():
            for market in reply.data:
                emit(dumps(market))
            return 0
        Console().print(markets_table(reply.data))
    return 0


def markets_table(markets: tuple[Market, ...]) -> Table:
    """The markets as a table, one row each: code, type, tick size, quantity increment, bounds."""
    table = Table(
        title=f"{len(markets)} markets", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("market", no_wrap=True)
    table.add_column("type", no_wrap=True)
    for name in ("tick", "qty step", "min price", "max price"):
        table.add_column(name, justify="right", no_wrap=True)
    for market in markets:
        table.add_row(
            market.market_code,
            market.type,
            view.number(market.tick_size),
            view.number(market.qty_increment),
            view.number(market.lower_price_bound),
            view.number(market.upper_price_bound),
        )
    return table
