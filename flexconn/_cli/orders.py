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
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from flexconn._cli import view
from flexconn._cli.common import (
    ENV_API_KEY,
    ENV_API_SECRET,
    ENV_REST_URL,
    EXIT_UNKNOWN,
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
    unknown_market,
)
from flexconn.connection import Connection
from flexconn.errors import (
    ExchangeError,
    FlexconnError,
    OrderAlreadyClosed,
    OrderNotApplied,
    OrderOutcomeUnknown,
)
from flexconn.models.enums import OrderStatus, Side, TimeInForce
from flexconn.models.orders import (
    CancelOrder,
    LimitOrder,
    MarketOrder,
    OrderSpec,
    StopLimitOrder,
)
from flexconn.models.rest import BalancesReply, OrderRecordStatus
from flexconn.orders import WorkingOrder
from flexconn.outbox import CancelAck
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
    parser.add_argument(
        "quantity",
        metavar="QUANTITY",
        type=positive_decimal,
        help="how much, in the market's base asset, e.g. 0.01",
    )
    parser.add_argument(
        "price",
        metavar="PRICE",
        type=positive_decimal,
        nargs="?",
        help="limit price; leave it out for a MARKET order",
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
            "change replaces it with a new order id, which is printed. Prints only a confirmed "
            "change; exit status 1 when the order was not modified (refused, already closed), "
            "3 when the outcome could not be learned."
        ),
    )
    parser.add_argument("market", metavar="MARKET", help="the order's market code")
    parser.add_argument(
        "order_id", metavar="ORDER_ID", type=positive_int, help="the open order's id"
    )
    parser.add_argument("--price", type=positive_decimal, help="the new limit price")
    parser.add_argument("--quantity", type=positive_decimal, help="the new quantity")
    parser.add_argument("--side", type=_side, help="the new side: buy or sell")
    _common(parser)
    parser.set_defaults(handler=handle_modify, log_level=logging.WARNING)


def _register_cancel(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "cancel",
        help="cancel open orders",
        description=(
            "Cancel the given orders of MARKET, or with --all every open order (of MARKET when "
            "given), in batches. Prints 'cancelled' only for a cancel the exchange confirmed; "
            "exit status 1 when an order was not cancelled (refused, already closed), 3 when an "
            "outcome could not be learned."
        ),
    )
    parser.add_argument(
        "market",
        metavar="MARKET",
        nargs="?",
        help="the orders' market code (with --all: only this market's orders)",
    )
    parser.add_argument(
        "order_ids", metavar="ORDER_ID", type=positive_int, nargs="*", help="ids of open orders"
    )
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
async def _account(
    args: argparse.Namespace, *, markets: Sequence[str | None] = (), reads_orders: bool = False
) -> AsyncIterator[tuple[Connection, RestClient | None]]:
    """A logged-in connection (with a REST client for its outbox when there is a REST URL).

    ``markets`` are checked against the exchange's list first (when the REST origin can be
    read). With ``reads_orders`` the command shows the open orders, which only REST can give:
    no REST origin, or one that cannot be read, is then an error rather than an empty list.
    """
    async with open_target(args) as target:
        if target.credentials is None:
            raise CliError(
                f"no credentials: give --api-key and --api-secret, or set {ENV_API_KEY} and "
                f"{ENV_API_SECRET} (flexconn sim prints its demo pair)",
                status=2,
            )
        if target.rest_url is None:
            if reads_orders:
                raise CliError(
                    f"the open orders come from REST: give --rest-url or set {ENV_REST_URL}",
                    status=2,
                )
            async with connect_to(target, args) as conn:
                yield conn, None
            return
        async with RestClient(target.rest_url, target.credentials) as rest:
            try:
                known: list[str] | None = [m.market_code for m in (await rest.markets()).data]
            except (FlexconnError, OSError) as exc:
                if reads_orders:
                    raise _rest_unreadable(target.rest_url, exc) from None
                known = None  # the outbox warns that it cannot seed; the exchange judges markets
            for code in markets:
                if code is not None and known is not None and code not in known:
                    raise unknown_market(code, known)
            async with connect_to(target, args, rest=rest) as conn:
                if reads_orders and not conn.orders.synced:
                    try:
                        await rest.open_orders()
                    except (FlexconnError, OSError) as exc:
                        raise _rest_unreadable(target.rest_url, exc) from None
                    raise CliError(f"the open orders could not be read from {target.rest_url}")
                yield conn, rest


def _rest_unreadable(url: str, exc: BaseException) -> CliError:
    return CliError(f"cannot read the open orders from the REST origin {url}: {exc}")


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
        async with _account(args, markets=[args.market], reads_orders=True) as (conn, rest):
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
        async with _account(args, markets=[args.market]) as (conn, _rest):
            try:
                ack = await conn.place(order)
            except FlexconnError as exc:
                raise _not_done(
                    exc,
                    what=f"placing {_describe(order)}",
                    order_id=None,
                    check=(
                        "before placing it again, look for it with: flexconn orders "
                        f"--market {order.market_code}"
                    ),
                ) from None
            emit(
                f"placed {_describe(ack.order)}: order id {ack.order_id}, "
                f"client order id {ack.client_order_id}"
            )
    return 0


async def handle_modify(args: argparse.Namespace, stop: trio.CancelScope) -> int:
    if args.price is None and args.quantity is None and args.side is None:
        raise CliError("nothing to change: give --price, --quantity and/or --side", status=2)
    with stop:
        async with _account(args, markets=[args.market]) as (conn, rest):
            try:
                ack = await conn.modify(
                    args.order_id,
                    args.market,
                    side=args.side,
                    price=args.price,
                    quantity=args.quantity,
                )
            except FlexconnError as exc:
                raise _not_done(
                    exc,
                    what=f"modifying order {args.order_id}",
                    order_id=args.order_id,
                    closed=await _how_closed(exc, rest, args.market),
                    verb="modified",
                    check=(
                        f"see whether order {args.order_id} (or a replacement with its client "
                        f"order id) changed with: flexconn orders --market {args.market}"
                    ),
                ) from None
            if not ack.confirmed:  # the outbox confirms unless asked not to; never claim more
                raise CliError(
                    f"order {args.order_id}: the exchange accepted the modify but did not "
                    "confirm it",
                    EXIT_UNKNOWN,
                )
            if ack.replaced_by is not None:
                emit(f"modified order {ack.order_id}: replaced by order {ack.replaced_by}")
            else:
                emit(f"modified order {ack.order_id} in place")
    return 0


async def handle_cancel(args: argparse.Namespace, stop: trio.CancelScope) -> int:
    if args.all == bool(args.order_ids):
        raise CliError("give ORDER_ID(s) or --all (not both)", status=2)
    if args.order_ids and args.market is None:
        raise CliError("cancelling by id needs the MARKET", status=2)
    failures: list[CliError] = []
    with stop:
        async with _account(args, markets=[args.market]) as (conn, rest):
            if args.all:
                requests = [
                    CancelOrder(o.market_code, o.order_id) for o in _open(conn, args.market)
                ]
            else:
                requests = [CancelOrder(args.market, order_id) for order_id in args.order_ids]
            if not requests:
                emit("no open orders to cancel")
                return 0
            outcomes: list[CancelAck | FlexconnError] = await conn.cancel_many(requests)
            for request, outcome in zip(requests, outcomes, strict=True):
                if isinstance(outcome, CancelAck) and not outcome.confirmed:
                    failures.append(
                        CliError(
                            f"order {request.order_id}: the exchange accepted the cancel but "
                            "did not confirm it",
                            EXIT_UNKNOWN,
                        )
                    )
                elif isinstance(outcome, FlexconnError):
                    failures.append(
                        _not_done(
                            outcome,
                            what=f"cancelling order {request.order_id}",
                            order_id=request.order_id,
                            closed=await _how_closed(outcome, rest, request.market_code),
                            verb="cancelled",
                            check=(
                                f"order {request.order_id} is still open if this lists it: "
                                f"flexconn orders --market {request.market_code}"
                            ),
                        )
                    )
                else:
                    emit(f"order {request.order_id}: cancelled")
    if not failures:
        return 0
    status = max(failure.status for failure in failures)
    if len(requests) == 1:
        raise failures[0]
    for failure in failures:
        sys.stderr.write(f"flexconn cancel: {failure}\n")
    raise CliError(f"{len(failures)} of {len(requests)} cancels failed (see above)", status)


async def _how_closed(exc: FlexconnError, rest: RestClient | None, market: str) -> str | None:
    """How an already-closed order closed, for the error message.

    The outbox knows when it saw the close on the order channel; a fresh command line usually
    did not (the order closed before it connected), so it asks REST (``GET /v2.1/orders``),
    whose records say filled (``OrderMatched``) or closed otherwise. ``None`` when neither knows.
    """
    if not isinstance(exc, OrderAlreadyClosed):
        return None
    if exc.close_reason is not None:
        return exc.close_reason.value
    if rest is None:
        return None
    try:
        records = (await rest.orders(market_code=market, order_id=exc.order_id)).data
    except (FlexconnError, OSError):
        return None
    for record in records:
        if record.order_id == exc.order_id:
            return _RECORD_CLOSES.get(record.status)
    return None


#: What a ``GET /v2.1/orders`` record's status says about how a closed order closed.
_RECORD_CLOSES = {
    OrderRecordStatus.MATCHED: OrderStatus.FILLED.value,
    OrderRecordStatus.CLOSED: "cancelled",
}


def _not_done(
    exc: FlexconnError,
    *,
    what: str,
    order_id: int | None,
    check: str,
    verb: str = "placed",
    closed: str | None = None,
) -> CliError:
    """The one-line error of an order request that did not (provably) do what was asked.

    Exit status 1 when the exchange refused it or did not act on it, :data:`EXIT_UNKNOWN` when
    the outcome could not be learned (``check`` then says how to find out). ``closed``: how an
    already-closed order closed (FILLED, CANCELED_BY_USER, ...), when known.
    """
    subject = f"order {order_id}" if order_id is not None else "the order"
    if isinstance(exc, OrderOutcomeUnknown):
        return CliError(f"{what}: the outcome is unknown ({exc}); {check}", EXIT_UNKNOWN)
    if isinstance(exc, OrderAlreadyClosed):
        reason = f" ({closed})" if closed else ""
        return CliError(
            f"order {exc.order_id} was already closed{reason}, so it was not {verb} "
            f"(exchange code {exc.code}: {exc.message})"
        )
    if isinstance(exc, ExchangeError):
        hint = "; flexconn markets lists the valid market codes" if exc.code == "20015" else ""
        return CliError(
            f"{subject} was not {verb}: the exchange refused: {exc} ({type(exc).__name__}){hint}"
        )
    if isinstance(exc, OrderNotApplied):
        return CliError(
            f"{subject} was not {verb}: {exc} (the exchange did not act on it; sending it "
            "again is safe)"
        )
    return CliError(f"{subject} was not {verb}: {exc} ({type(exc).__name__})")
