"""``flexconn orders``, ``place``, ``modify`` and ``cancel``: an account's orders from the shell.

They connect with the key pair from ``--api-key``/``--api-secret`` or ``$FLEXCONN_API_KEY`` and
``$FLEXCONN_API_SECRET`` (the secret is never printed), to ``--url`` or ``$FLEXCONN_URL`` (by
default where ``flexconn sim`` listens). Orders go through the connection's outbox over the
WebSocket; the REST origin (``--rest-url``) seeds the open orders and settles an order whose
reply was lost. Piped, ``orders`` prints one JSON line per open order.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from flexconn._cli import view
from flexconn._cli.common import (
    CliError,
    Subparsers,
    add_connection_options,
    add_logging_options,
    connect_to,
    emit,
    open_target,
    positive_decimal,
    positive_float,
    positive_int,
)
from flexconn.connection import Connection
from flexconn.errors import FlexconnError
from flexconn.models.enums import Side, TimeInForce
from flexconn.models.orders import (
    CancelOrder,
    LimitOrder,
    MarketOrder,
    OrderSpec,
    StopLimitOrder,
)
from flexconn.models.rest import BalancesReply
from flexconn.orders import WorkingOrder
from flexconn.protocol.codec import dumps
from flexconn.rest import RestClient

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    _register_orders(subparsers)
    _register_place(subparsers)
    _register_modify(subparsers)
    _register_cancel(subparsers)


def _common(parser: argparse.ArgumentParser) -> None:
    add_connection_options(parser, embedded_sim=False)
    add_logging_options(parser)


def _register_orders(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "orders",
        help="the account's open orders and balances",
        description=(
            "Show the account's open orders and balances. Piped, print one JSON line per open "
            "order instead."
        ),
    )
    parser.add_argument("--market", help="only this market's orders")
    parser.add_argument(
        "--watch", action="store_true", help="keep the view open and live (terminal only)"
    )
    parser.add_argument(
        "--duration", type=positive_float, metavar="SECONDS", help="with --watch: stop after"
    )
    _common(parser)
    parser.set_defaults(handler=handle_orders, log_level=logging.WARNING)


def _register_place(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "place",
        help="place one order",
        description=(
            "Place a LIMIT order (PRICE given), a MARKET order (no PRICE) or a stop-limit order "
            "(--stop and PRICE), and print the exchange's acknowledgement."
        ),
    )
    parser.add_argument("market", metavar="MARKET", help="market code, e.g. BTC-USD-SWAP-LIN")
    parser.add_argument("side", metavar="SIDE", type=_side, help="buy or sell")
    parser.add_argument("quantity", metavar="QUANTITY", type=positive_decimal)
    parser.add_argument(
        "price", metavar="PRICE", type=positive_decimal, nargs="?", help="limit price"
    )
    parser.add_argument(
        "--stop", type=positive_decimal, metavar="PRICE", help="stop price (a stop-limit order)"
    )
    parser.add_argument(
        "--tif",
        type=_time_in_force,
        default=TimeInForce.GTC,
        metavar="TIF",
        help="time in force: GTC, IOC, FOK, MAKER_ONLY, MAKER_ONLY_REPRICE (default: GTC)",
    )
    parser.add_argument(
        "--client-order-id", type=positive_int, metavar="N", help="your id for the order"
    )
    _common(parser)
    parser.set_defaults(handler=handle_place, log_level=logging.WARNING)


def _register_modify(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "modify",
        help="change an open limit order's price or quantity",
        description=(
            "Modify an open LIMIT order. Reducing only the quantity keeps its id; any other "
            "change replaces it with a new order id, which is printed."
        ),
    )
    parser.add_argument("market", metavar="MARKET")
    parser.add_argument("order_id", metavar="ORDER_ID", type=positive_int)
    parser.add_argument("--price", type=positive_decimal)
    parser.add_argument("--quantity", type=positive_decimal)
    parser.add_argument("--side", type=_side)
    _common(parser)
    parser.set_defaults(handler=handle_modify, log_level=logging.WARNING)


def _register_cancel(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "cancel",
        help="cancel open orders",
        description=(
            "Cancel the given orders of MARKET, or with --all every open order (of MARKET when "
            "given), in batches."
        ),
    )
    parser.add_argument("market", metavar="MARKET", nargs="?")
    parser.add_argument("order_ids", metavar="ORDER_ID", type=positive_int, nargs="*")
    parser.add_argument("--all", action="store_true", help="every open order")
    _common(parser)
    parser.set_defaults(handler=handle_cancel, log_level=logging.WARNING)


def _side(text: str) -> Side:
    try:
        return Side(text.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"side must be buy or sell, not {text!r}") from None


def _time_in_force(text: str) -> TimeInForce:
    try:
        return TimeInForce(text.upper())
    except ValueError:
        choices = ", ".join(tif.value for tif in TimeInForce)
        raise argparse.ArgumentTypeError(f"choose from {choices}") from None


# --- the account -------------------------------------------------------------------------------


@asynccontextmanager
async def _account(args: argparse.Namespace) -> AsyncIterator[tuple[Connection, RestClient | None]]:
    """A logged-in connection (with a REST client for its outbox when there is a REST URL)."""
    async with open_target(args) as target:
        if target.credentials is None:
            raise CliError(
                "no credentials: give --api-key and --api-secret, or set FLEXCONN_API_KEY and "
                "FLEXCONN_API_SECRET (flexconn sim prints the demo pair)",
                status=2,
            )
        if target.rest_url is None:
            async with connect_to(target, args) as conn:
                yield conn, None
            return
        async with (
            RestClient(target.rest_url, target.credentials) as rest,
            connect_to(target, args, rest=rest) as conn,
        ):
            yield conn, rest


def _rows(conn: Connection, market: str | None) -> list[view.OrderRow]:
    return [
        view.OrderRow(
            market_code=order.market_code,
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            side=order.side,
            price=order.price,
            quantity=order.remaining_quantity,
            status=order.status.value,
        )
        for order in _open(conn, market)
    ]


def _open(conn: Connection, market: str | None) -> list[WorkingOrder]:
    return [o for o in conn.orders.values() if market is None or o.market_code == market]


def _balances_table(reply: BalancesReply | None) -> Table | Text:
    if reply is None:
        return Text("balances: no REST origin given (--rest-url)", style="dim")
    table = Table(title="balances", title_justify="left")
    table.add_column("asset")
    for name in ("total", "available", "reserved"):
        table.add_column(name, justify="right")
    for balance in reply.data:
        table.add_row(
            balance.instrument_id,
            view.number(balance.total),
            view.number(balance.available),
            view.number(balance.reserved),
        )
    return table


async def handle_orders(args: argparse.Namespace, stop: trio.CancelScope) -> int:
    terminal = sys.stdout.isatty()
    if args.watch and not terminal:
        raise CliError(
            "--watch needs a terminal; to follow orders piped use: flexconn stream order:all", 2
        )
    with stop, trio.move_on_after(args.duration or float("inf")):
        async with _account(args) as (conn, rest):
            if not conn.orders.synced:
                logging.getLogger("flexconn.cli").warning(
                    "no REST origin: only orders whose notices arrive from now on are shown"
                )
            if not terminal:
                for order in _open(conn, args.market):
                    emit(dumps(order))
                return 0
            balances = [await rest.balances() if rest is not None else None]
            console = Console()
            if not args.watch:
                console.print(_orders_view(conn, args.market, balances[0]))
                return 0

            async def refresh_balances(rest: RestClient) -> None:
                while True:
                    await trio.sleep(2)
                    balances[0] = await rest.balances()

            async with trio.open_nursery() as nursery:
                if rest is not None:
                    nursery.start_soon(refresh_balances, rest)
                with Live(console=console, auto_refresh=False) as screen:
                    while True:
                        screen.update(_orders_view(conn, args.market, balances[0]), refresh=True)
                        await trio.sleep(0.25)
    return 0


def _orders_view(conn: Connection, market: str | None, balances: BalancesReply | None) -> Group:
    title = f"open orders{' in ' + market if market else ''}"
    return Group(
        view.orders_panel(_rows(conn, market), title=title),
        _balances_table(balances),
    )


def _describe(order: OrderSpec) -> str:
    price = ""
    if isinstance(order, LimitOrder):
        price = f" @ {view.number(order.price)} {order.time_in_force.value}"
    elif isinstance(order, StopLimitOrder):
        price = f" stop {view.number(order.stop_price)} limit {view.number(order.limit_price)}"
    kind = order.order_type.value
    return f"{kind} {order.side.value} {view.number(order.quantity)} {order.market_code}{price}"


def _order(args: argparse.Namespace) -> OrderSpec:
    if args.stop is not None:
        if args.price is None:
            raise CliError("a stop-limit order needs PRICE (its limit price) besides --stop", 2)
        return StopLimitOrder(
            args.market,
            args.side,
            args.quantity,
            stop_price=args.stop,
            limit_price=args.price,
            time_in_force=args.tif,
            client_order_id=args.client_order_id,
        )
    if args.price is None:
        return MarketOrder(
            args.market, args.side, args.quantity, client_order_id=args.client_order_id
        )
    return LimitOrder(
        args.market,
        args.side,
        args.quantity,
        args.price,
        time_in_force=args.tif,
        client_order_id=args.client_order_id,
    )


async def handle_place(args: argparse.Namespace, stop: trio.CancelScope) -> int:
    order = _order(args)
    with stop:
        async with _account(args) as (conn, _rest):
            ack = await conn.place(order)
            emit(
                f"placed {_describe(ack.order)}: order id {ack.order_id}, "
                f"client order id {ack.client_order_id}"
            )
    return 0


async def handle_modify(args: argparse.Namespace, stop: trio.CancelScope) -> int:
    if args.price is None and args.quantity is None and args.side is None:
        raise CliError("nothing to change: give --price, --quantity and/or --side", status=2)
    with stop:
        async with _account(args) as (conn, _rest):
            before = conn.orders.get(args.order_id)
            in_place = (
                args.price is None
                and args.side is None
                and before is not None
                and args.quantity < before.quantity
            )
            ack = await conn.modify(
                args.order_id, args.market, side=args.side, price=args.price, quantity=args.quantity
            )
            # A replacement's OrderOpened notice may trail the reply by a moment.
            with trio.move_on_after(0 if in_place else 1):
                while conn.orders.successor(ack.order_id) == ack.order_id:  # noqa: ASYNC110
                    await trio.sleep(0.02)
            successor = ack.replaced_by or conn.orders.successor(ack.order_id)
            if successor != ack.order_id:
                emit(f"modified order {ack.order_id}: replaced by order {successor}")
            else:
                emit(f"modified order {ack.order_id} in place")
    return 0


async def handle_cancel(args: argparse.Namespace, stop: trio.CancelScope) -> int:
    if args.all == bool(args.order_ids):
        raise CliError("give ORDER_ID(s) or --all (not both)", status=2)
    if args.order_ids and args.market is None:
        raise CliError("cancelling by id needs the MARKET", status=2)
    failed = 0
    with stop:
        async with _account(args) as (conn, _rest):
            if args.all:
                requests = [
                    CancelOrder(o.market_code, o.order_id) for o in _open(conn, args.market)
                ]
            else:
                requests = [CancelOrder(args.market, order_id) for order_id in args.order_ids]
            if not requests:
                emit("no open orders to cancel")
                return 0
            outcomes: list[Any] = await conn.cancel_many(requests)
            for request, outcome in zip(requests, outcomes, strict=True):
                if isinstance(outcome, FlexconnError):
                    failed += 1
                    emit(f"order {request.order_id}: not cancelled: {outcome}")
                else:
                    emit(f"order {request.order_id}: cancelled")
    if failed:
        raise CliError(f"{failed} of {len(requests)} cancels failed")
    return 0
