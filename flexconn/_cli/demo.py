"""``flexconn demo``: a scripted trading session against an in-process simulator.

The demo starts the embedded simulator, connects with its demo key (and a REST client for the
outbox's reconciliation), keeps the book, trades and the account's orders, and follows a script
spread over ``--duration`` seconds:

1. place a batch of ten limit orders around the touch (one ``place_many`` call);
2. modify four of them in one call: two repriced (replaced with new ids), two reduced in place;
3. send a batch in which one order is priced beyond the market's bound: one ack, one rejection;
4. cross the spread with a small IOC order, so the account gets a fill;
5. drop every connection (``sim.faults.drop_all``) while two orders are in flight, then show the
   reconnect, the resubscription, the open orders surviving and what became of the two;
6. requote for a while with concurrent single ``modify`` calls (the outbox batches them);
7. cancel every open order in one ``cancel_many`` call, and print a summary.

In a terminal it draws a live view (rich); piped, it prints one line per event instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Sequence
from contextlib import nullcontext
from decimal import Decimal
from typing import Any, TypeVar

import trio
import trio.lowlevel
from rich.console import Console
from rich.live import Live

from flexconn import channels
from flexconn._cli.common import (
    CliError,
    Subparsers,
    add_logging_options,
    emit,
    positive_float,
)
from flexconn._cli.demo_state import DemoState
from flexconn._cli.view import FillRow, number
from flexconn.auth import Credentials
from flexconn.connection import Connection, ConnectionEvent, ConnectionState, open_connection
from flexconn.errors import FlexconnError, OrderNotApplied
from flexconn.feeds import Feed, StreamRestarted
from flexconn.models.enums import MatchType, Side, TimeInForce
from flexconn.models.market import TradeUpdate
from flexconn.models.notices import OrderMatched, OrderUpdate
from flexconn.models.orders import CancelOrder, LimitOrder, ModifyOrder
from flexconn.models.rest import Market
from flexconn.outbox import PlaceAck
from flexconn.rest import RestClient
from flexconn.sim import DEFAULT_MARKETS, Simulator, serve
from flexconn.transport import DEFAULT_TRANSPORT

__all__ = ["register"]

T = TypeVar("T")

#: The script's steps, as fractions of the duration.
_PLACE, _MODIFY, _REJECT, _FILL, _DROP = 0.08, 0.16, 0.24, 0.32, 0.40
_REQUOTE_FROM, _REQUOTE_UNTIL, _CANCEL = 0.55, 0.85, 0.90
_MIN_DURATION = 3.0
#: How long past ``--duration`` the script may run before it is cut short.
_GRACE = 5.0


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="scripted trading session with a live view",
        description=(
            "Start the simulator in this process, trade on it with the demo account and show "
            "the book, trades, orders, fills, outbox figures and connection state live; one "
            "forced disconnect shows the reconnect. Plain lines instead of the view when piped."
        ),
    )
    markets = [spec.market_code for spec in DEFAULT_MARKETS]
    parser.add_argument(
        "--duration",
        type=positive_float,
        default=30.0,
        metavar="SECONDS",
        help=f"how long the demo runs, at least {_MIN_DURATION:g} (default: 30)",
    )
    parser.add_argument(
        "--market",
        choices=markets,
        default="BTC-USD-SWAP-LIN",
        help="the market to trade (default: BTC-USD-SWAP-LIN)",
    )
    parser.add_argument(
        "--sim-rate",
        type=positive_float,
        default=60.0,
        metavar="PER_SECOND",
        help="synthetic participant actions per second (default: 60)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seeds the market (default: 1)")
    parser.add_argument(
        "--plain", action="store_true", help="plain lines even in a terminal (no live view)"
    )
    add_logging_options(parser)
    parser.set_defaults(handler=handle, log_level=logging.WARNING)


async def handle(args: argparse.Namespace, stop: trio.CancelScope) -> int:
    if args.duration < _MIN_DURATION:
        raise CliError(f"--duration must be at least {_MIN_DURATION:g} seconds", status=2)
    live_view = sys.stdout.isatty() and not args.plain
    state = DemoState(
        market=args.market,
        duration=args.duration,
        started=trio.current_time(),
        sink=None if live_view else emit,
    )
    if live_view:
        _log_into(state)
    with stop:
        await _run(args, state, live_view)
    if stop.cancelled_caught:
        emit(f"demo stopped by Ctrl-C after {state.elapsed():.1f} s")
    for line in state.summary():
        emit(line)
    return 0


class _StateLog(logging.Handler):
    """Library warnings go to the view's event log (stderr would tear the screen)."""

    def __init__(self, state: DemoState) -> None:
        super().__init__(logging.WARNING)
        self.state = state

    def emit(self, record: logging.LogRecord) -> None:
        self.state.note(f"{record.levelname.lower()}: {record.getMessage()}")


def _log_into(state: DemoState) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_StateLog(state))


async def _run(args: argparse.Namespace, state: DemoState, live_view: bool) -> None:
    screen = (
        Live(console=Console(), screen=True, auto_refresh=False, redirect_stderr=False)
        if live_view
        else None
    )
    with screen if screen is not None else nullcontext():
        async with serve(participants_rate=args.sim_rate or None, seed=args.seed) as sim:
            assert sim.rest_url is not None
            key = sim.demo_key
            credentials = Credentials(key.api_key, key.api_secret)
            state.note(
                f"simulator running at {sim.ws_url}; trading as demo account {key.account_id}"
            )
            async with (
                RestClient(sim.rest_url, credentials) as rest,
                open_connection(
                    sim.ws_url,
                    credentials=credentials,
                    rest=rest,
                    transport=state.tap.factory(DEFAULT_TRANSPORT),
                ) as conn,
                conn.events() as events,
                conn.order_book(state.market) as live,
                conn.subscribe(channels.trade(state.market), backfill=rest) as trades,
                conn.subscribe(channels.order()) as orders,
                trio.open_nursery() as nursery,
            ):
                state.conn, state.book = conn, live
                state.note(
                    f"connected and logged in; subscribed to depthL25:{state.market}, "
                    f"trade:{state.market} and order:all; {len(conn.orders)} open orders"
                )
                market = await _market(rest, state.market)
                nursery.start_soon(_watch_events, events, state)
                nursery.start_soon(_watch_trades, trades, state)
                nursery.start_soon(_watch_orders, orders, state)
                nursery.start_soon(_watch_book, state)
                if screen is not None:
                    nursery.start_soon(_redraw, screen, state)
                else:
                    nursery.start_soon(_print_status, state)
                # The script waits on the market now and then; the demo ends on time regardless.
                with trio.move_on_at(state.started + state.duration + _GRACE) as late:
                    await _script(conn, sim, market, state)
                if late.cancelled_caught:
                    state.note(f"the script did not finish within {_GRACE:g} s of its end")
                nursery.cancel_scope.cancel()


async def _market(rest: RestClient, code: str) -> Market:
    for market in (await rest.markets()).data:
        if market.market_code == code:
            return market
    raise CliError(f"the simulator does not list {code}")


# --- watchers --------------------------------------------------------------------------------


async def _watch_events(events: Feed[ConnectionEvent], state: DemoState) -> None:
    async for event in events:
        if isinstance(event, StreamRestarted):
            continue
        if event.kind != "state" or event.state is None:
            state.note(f"connection event {event.kind}: {event.detail}")
        elif event.state is ConnectionState.RECONNECTING:
            state.note(f"connection lost ({event.detail}): reconnecting")
        elif event.state is ConnectionState.CONNECTED and state.conn is not None:
            reconnects = state.conn.stats().reconnects
            state.note(f"connection state: connected (reconnect #{reconnects})")
        else:
            state.note(f"connection state: {event.state.value}")


async def _watch_trades(feed: Feed[TradeUpdate], state: DemoState) -> None:
    restarted = False
    async for item in feed:
        if isinstance(item, StreamRestarted):
            state.markers += 1
            restarted = True
            state.note(
                f"{item.channel}: continuity marker (reconnect #{item.reconnects}); "
                "trades missed meanwhile are backfilled over REST"
            )
            continue
        if restarted:
            restarted = False
            state.note(f"{feed.channel}: trades flowing again after the resubscription")
        state.trades.extend(item.data)


async def _watch_orders(feed: Feed[Any], state: DemoState) -> None:
    restarted = False
    async for item in feed:
        if isinstance(item, StreamRestarted):
            state.markers += 1
            restarted = True
            state.note(f"{item.channel}: continuity marker (reconnect #{item.reconnects})")
            continue
        if restarted:
            restarted = False
            state.note(f"{feed.channel}: order notices flowing again after the resubscription")
        if not isinstance(item, OrderUpdate):
            continue
        for event in item.data:
            if isinstance(event, OrderMatched):
                state.fill_count += 1
                if event.remain_quantity <= 0:
                    state.filled.add(event.order_id)
                state.fills.append(
                    FillRow(
                        timestamp=event.timestamp,
                        market_code=event.market_code,
                        order_id=event.order_id,
                        side=event.side,
                        price=event.match_price,
                        quantity=event.match_quantity,
                        maker=event.order_match_type is MatchType.MAKER,
                    )
                )
                state.note(
                    f"fill: order {event.order_id} {event.side.value} "
                    f"{number(event.match_quantity)} @ {number(event.match_price)} "
                    f"({event.order_match_type.value.lower()})"
                )


async def _watch_book(state: DemoState) -> None:
    live = state.book
    assert live is not None
    was_valid = live.book.valid
    while True:
        await live.wait_updated()
        valid = live.book.valid
        if was_valid and not valid:
            state.note(f"book {state.market} stale after the drop: waiting for a fresh snapshot")
        elif valid and not was_valid and state.markers:
            state.note(f"book {state.market} resynchronised (seq {live.book.seq_num})")
        was_valid = valid


async def _redraw(screen: Live, state: DemoState) -> None:
    while True:
        size = screen.console.size
        screen.update(state.render(size.width, size.height), refresh=True)
        await trio.sleep(0.2)


async def _print_status(state: DemoState) -> None:
    every = max(1.0, state.duration / 6)
    while True:
        await trio.sleep(every)
        state.note(state.status_line())


# --- the script ------------------------------------------------------------------------------


async def _timed(state: DemoState, kind: str, call: Awaitable[list[T]]) -> list[T]:
    """Await an order call, recording its outcomes and round trip."""
    started = trio.current_time()
    outcomes = await call
    state.score.record(kind, outcomes, trio.current_time() - started)
    return outcomes


async def _one(state: DemoState, kind: str, call: Awaitable[T]) -> T | FlexconnError:
    """Await a single-order call; its exception (if any) is its outcome."""
    started = trio.current_time()
    try:
        outcome: T | FlexconnError = await call
    except FlexconnError as exc:
        outcome = exc
    state.score.record(kind, [outcome], trio.current_time() - started)
    return outcome


def _tally(outcomes: Sequence[object]) -> str:
    failed = [o for o in outcomes if isinstance(o, FlexconnError)]
    text = f"{len(outcomes) - len(failed)} acked"
    if failed:
        text += ", " + "; ".join(f"{type(o).__name__}: {o}" for o in failed)
    return text


class _Script:
    """The demo's steps; each reads the current book and the account's open orders."""

    def __init__(self, conn: Connection, sim: Simulator, market: Market, state: DemoState):
        self.conn = conn
        self.sim = sim
        self.market = market
        self.state = state
        self.code = market.market_code
        self.tick = market.tick_size
        self.quantity = market.qty_increment * 10

    async def at(self, fraction: float, phase: str) -> None:
        state = self.state
        await trio.sleep_until(state.started + state.duration * fraction)
        state.phase = phase

    async def touch(self) -> tuple[Decimal, Decimal, Decimal]:
        """Best bid, best ask and a quoting step of a few basis points (whole ticks)."""
        live = self.state.book
        assert live is not None
        while not (live.book.valid and live.book.best_bid and live.book.best_ask):
            await live.wait_updated()
        bid, ask = live.book.best_bid, live.book.best_ask
        assert bid is not None and ask is not None
        mid = (bid.price + ask.price) / 2
        step = max(self.tick, (mid * Decimal("0.0002") / self.tick).to_integral() * self.tick)
        return bid.price, ask.price, step

    def ours(self, side: Side | None = None) -> list[int]:
        """Our open orders in the market (of ``side``), nearest the touch first."""
        found = [
            order
            for order in self.conn.orders.values()
            if order.market_code == self.code and (side is None or order.side is side)
        ]
        found.sort(key=lambda o: -(o.price or 0) if o.side is Side.BUY else (o.price or 0))
        return [order.order_id for order in found]

    async def place_ladder(self) -> None:
        await self.at(_PLACE, "placing a batch of ten orders")
        bid, ask, step = await self.touch()
        orders = [
            LimitOrder(self.code, Side.BUY, self.quantity, bid - step * (3 + i)) for i in range(5)
        ]
        orders += [
            LimitOrder(self.code, Side.SELL, self.quantity, ask + step * (3 + i)) for i in range(5)
        ]
        commands = self.state.commands_sent()
        outcomes = await _timed(self.state, "place", self.conn.place_many(orders))
        self.state.note(
            f"place_many: {len(orders)} orders in {self.state.commands_sent() - commands} "
            f"command(s); {_tally(outcomes)}"
        )

    async def modify_some(self) -> None:
        await self.at(_MODIFY, "modifying four orders in one call")
        _bid, _ask, step = await self.touch()
        bids, asks = self.ours(Side.BUY)[-2:], self.ours(Side.SELL)[:2]
        # Bids move one step nearer (a price change: replaced with a new order id); asks are
        # halved in place (a quantity reduction keeps the id and the queue position).
        prices = {order_id: self.conn.orders[order_id].price for order_id in bids}
        changes = [
            ModifyOrder(self.code, order_id, price=price + step)
            for order_id, price in prices.items()
            if price is not None
        ]
        changes += [
            ModifyOrder(self.code, order_id, quantity=self.quantity / 2) for order_id in asks
        ]
        if not changes:
            return
        outcomes = await _timed(self.state, "modify", self.conn.modify_many(changes))
        replaced = [
            f"{o.order_id}->{self.conn.orders.successor(o.order_id)}"
            for o in outcomes
            if not isinstance(o, FlexconnError)
            and self.conn.orders.successor(o.order_id) != o.order_id
        ]
        self.state.note(
            f"modify_many: {len(changes)} changes; {_tally(outcomes)}"
            + (f"; repriced orders got new ids: {', '.join(replaced)}" if replaced else "")
        )

    async def provoke_rejection(self) -> None:
        await self.at(_REJECT, "a batch with one order beyond the price bound")
        bid, _ask, step = await self.touch()
        bound = self.market.upper_price_bound or bid * 3
        orders = [
            LimitOrder(self.code, Side.BUY, self.quantity, bid - step * 9),
            LimitOrder(self.code, Side.BUY, self.quantity, bound + self.tick * 10),
        ]
        outcomes = await _timed(self.state, "place", self.conn.place_many(orders))
        self.state.note(
            f"place_many with a price above the upper bound {number(bound)}: {_tally(outcomes)}"
        )

    async def take(self) -> None:
        await self.at(_FILL, "crossing the spread with an IOC order")
        _bid, ask, _step = await self.touch()
        order = LimitOrder(
            self.code, Side.BUY, self.market.qty_increment * 2, ask, time_in_force=TimeInForce.IOC
        )
        outcome = await _one(self.state, "place", self.conn.place(order))
        self.state.note(f"IOC buy at {number(ask)}: {_tally([outcome])}; fills arrive on order:all")

    async def drop(self) -> None:
        await self.at(_DROP, "forced disconnect with two orders in flight")
        state, conn = self.state, self.conn
        bid, ask, step = await self.touch()
        in_flight = [
            LimitOrder(self.code, Side.BUY, self.quantity, bid - step * 10),
            LimitOrder(self.code, Side.SELL, self.quantity, ask + step * 10),
        ]
        state.orders_before_drop = frozenset(self.ours())
        state.note(
            f"dropping every connection (sim.faults.drop_all) as 2 orders leave; "
            f"{len(state.orders_before_drop)} orders open"
        )
        outcomes: list[PlaceAck | FlexconnError] = []

        async def send() -> None:
            outcomes.extend(await _timed(state, "place", conn.place_many(in_flight)))

        sent = state.orders_sent()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            with trio.move_on_after(1):
                while state.orders_sent() < sent + len(in_flight):
                    await trio.lowlevel.checkpoint()
            self.sim.faults.drop_all()
        with trio.move_on_after(15) as waiting:
            await conn.wait_state(ConnectionState.CONNECTED)
        if waiting.cancelled_caught:
            state.note("no reconnection within 15 s")
            return
        after = frozenset(self.ours())
        state.orders_after_drop = after - {
            o.order_id for o in outcomes if isinstance(o, PlaceAck) and o.order_id is not None
        }
        filled = state.orders_before_drop & state.filled
        kept = state.orders_before_drop - filled <= after
        state.note(
            f"after the reconnect: {len(after)} orders open (re-seeded over REST); "
            + ("every order open before the drop survived it" if kept else "some orders changed")
            + (f" ({len(filled)} filled meanwhile)" if filled else "")
        )
        for order, outcome in zip(in_flight, outcomes, strict=True):
            if isinstance(outcome, PlaceAck):
                state.note(
                    f"in-flight {order.side.value} order: placed (id {outcome.order_id}, "
                    f"known from {outcome.source.value})"
                )
            elif isinstance(outcome, OrderNotApplied):
                state.note(
                    f"in-flight {order.side.value} order: not applied ({outcome}); resending"
                )
                await _one(state, "place", conn.place(order))
            else:
                state.note(
                    f"in-flight {order.side.value} order: {type(outcome).__name__}: {outcome}"
                )

    async def requote(self) -> None:
        await self.at(_REQUOTE_FROM, "requoting with concurrent modify calls")
        state = self.state
        end = state.started + state.duration * _REQUOTE_UNTIL
        rounds = 0
        while trio.current_time() < end:
            bid, ask, step = await self.touch()
            targets = [(i, bid - step * 3) for i in self.ours(Side.BUY)[-1:]]
            targets += [(i, ask + step * 3) for i in self.ours(Side.SELL)[-1:]]
            commands = state.commands_sent()
            async with trio.open_nursery() as nursery:
                for order_id, price in targets:
                    nursery.start_soon(self._modify, order_id, price)
            rounds += 1
            state.note(
                f"requote {rounds}: {len(targets)} concurrent modify calls left in "
                f"{state.commands_sent() - commands} command(s)"
            )
            await trio.sleep(max(0.3, state.duration / 15))

    async def _modify(self, order_id: int, price: Decimal) -> None:
        await _one(self.state, "modify", self.conn.modify(order_id, self.code, price=price))

    async def cancel_all(self) -> None:
        await self.at(_CANCEL, "cancelling every open order")
        ids = self.ours()
        if not ids:
            return
        commands = self.state.commands_sent()
        outcomes = await _timed(
            self.state,
            "cancel",
            self.conn.cancel_many(CancelOrder(self.code, order_id) for order_id in ids),
        )
        self.state.note(
            f"cancel_many: {len(ids)} orders in {self.state.commands_sent() - commands} "
            f"command(s); {_tally(outcomes)}"
        )

    async def finish(self) -> None:
        await self.at(1.0, "done")


async def _script(conn: Connection, sim: Simulator, market: Market, state: DemoState) -> None:
    script = _Script(conn, sim, market, state)
    for step in (
        script.place_ladder,
        script.modify_some,
        script.provoke_rejection,
        script.take,
        script.drop,
        script.requote,
        script.cancel_all,
        script.finish,
    ):
        await step()
