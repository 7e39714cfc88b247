"""Chaos: a trading client and market-data consumers through a seeded schedule of TCP faults.

One authenticated connection (with a REST client for reconciliation) runs between the client
and the simulator through the chaos proxy, which resets, stalls, fragments, delays and refuses
on a seeded schedule of 24 faults. Meanwhile a trader places, modifies and cancels orders
through the outbox, and consumers read depth (also through a live order book), trades (with REST
backfill) and the order channel. Afterwards everything is checked against the proxy's fault log
and the simulator's engine, the ground truth:

* every order request got exactly one outcome, each true by the engine's own record of the
  commands it ran (:func:`chaos.helpers.check_outcomes`), and the exchange holds no duplicate
  order;
* ``conn.orders`` equals the engine's open orders for the account;
* every fill the engine made for the account was seen on the order channel, or fell in an
  outage (then reconciliation accounts for it: ``conn.orders`` still matches the engine);
* every feed saw a continuity marker after every disruptive fault and fresh data after every
  fault, fragments and delays never broke a connection, no trade was lost or repeated;
* no task, feed or memory channel outlived the connection.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import attrs
import pytest
import trio
from helpers import all_tasks

from chaos.helpers import (
    ExchangeLedger,
    OrderRequest,
    channel_ids,
    check_outcomes,
    open_channels,
)
from flexconn import channels
from flexconn.auth import Credentials
from flexconn.config import Heartbeat, ReconnectPolicy
from flexconn.connection import Connection, ConnectionEvent, ConnectionState, open_connection
from flexconn.errors import FlexconnError
from flexconn.feeds import Feed, StreamRestarted
from flexconn.models.enums import DepthLevel, Side, TimeInForce
from flexconn.models.market import DepthUpdate, TradeUpdate
from flexconn.models.notices import OrderMatched, OrderUpdate
from flexconn.models.orders import LimitOrder
from flexconn.outbox import OutboxConfig
from flexconn.rest import RestClient
from flexconn.sim import DEFAULT_MARKETS, Simulator, serve
from flexconn.sim.chaos import AppliedFault, ChaosSchedule, FaultKind, open_chaos_proxy
from flexconn.transport import TransportFactory

MARKET = "BTC-USD-SWAP-LIN"
SPEC = next(m for m in DEFAULT_MARKETS if m.market_code == MARKET)
FAULTS = 24
INTERVAL = 1.0
REQUESTS_PER_S = 10.0
#: Quick liveness detection, so that a stalled link is abandoned well within a stall.
HEARTBEAT = Heartbeat(interval=0.3, timeout=0.5)
#: connect_timeout bounds a reset handshake, which trio-websocket only fails by timing out.
RETRY = ReconnectPolicy(initial_delay=0.05, max_delay=0.3, connect_timeout=1.5)
#: How long a request may take to reach its outcome once trading stops: its reply timeout,
#: then the outbox's search for evidence, bounded by the reconcile timeout.
SETTLE = OutboxConfig().reply_timeout + OutboxConfig().reconcile_timeout + 5
#: Bytes already in flight when a link dies are lost with it: a fill this long before a
#: disruptive fault may be missing from the order channel.
IN_FLIGHT = 0.5


@attrs.define
class Record:
    """What one consumer received, stamped with trio time."""

    name: str
    items: list[tuple[float, Any]] = attrs.Factory(list)

    def markers(self) -> list[tuple[float, StreamRestarted]]:
        return [(t, i) for t, i in self.items if isinstance(i, StreamRestarted)]

    def data_after(self, moment: float) -> bool:
        return any(t > moment and not isinstance(i, StreamRestarted) for t, i in self.items)

    def marker_after(self, moment: float) -> bool:
        return any(t > moment for t, _ in self.markers())


async def consume(feed: Feed[Any], record: Record) -> None:
    async for item in feed:
        record.items.append((trio.current_time(), item))


async def note_connected(events: Feed[ConnectionEvent], moments: list[float]) -> None:
    """Record when the connection (re)reaches CONNECTED."""
    async for event in events:
        if isinstance(event, ConnectionEvent) and event.state is ConnectionState.CONNECTED:
            moments.append(trio.current_time())


class Trader:
    """Places passive and crossing orders, re-prices and cancels them, each in its own task."""

    def __init__(self, conn: Connection, book: Record, seed: int) -> None:
        self.conn = conn
        self.book = book
        self.rng = random.Random(seed)
        self.cids = itertools.count(seed * 1_000_000 + 1)
        self.requests: list[OrderRequest] = []

    def mid(self) -> Decimal | None:
        for _, item in reversed(self.book.items):
            if isinstance(item, DepthUpdate) and item.data:
                snap = item.data[0]
                if snap.best_bid is not None and snap.best_ask is not None:
                    return (snap.best_bid.price + snap.best_ask.price) / 2
        return None

    def price(self, mid: Decimal, offset: float) -> Decimal:
        ticks = (mid * Decimal(str(1 + offset)) / SPEC.tick_size).quantize(Decimal(1))
        return max(SPEC.tick_size, ticks * SPEC.tick_size)

    async def run(self, nursery: trio.Nursery) -> None:
        while True:
            await trio.sleep(1 / REQUESTS_PER_S)
            mid = self.mid()
            if mid is None:
                continue
            mine = sorted(o for o, w in self.conn.orders.items() if w.market_code == MARKET)
            roll = self.rng.random()
            side = self.rng.choice((Side.BUY, Side.SELL))
            away = 1 if side is Side.SELL else -1  # positive offsets are passive
            if roll < 0.15 or len(mine) < 6:
                crossing = roll < 0.05
                offset = -away * 0.002 if crossing else away * self.rng.uniform(0.0002, 0.01)
                order = LimitOrder(
                    MARKET,
                    side,
                    SPEC.qty_increment * self.rng.randint(1, 4),
                    self.price(mid, offset),
                    time_in_force=TimeInForce.IOC if crossing else TimeInForce.GTC,
                    client_order_id=next(self.cids),
                )
                request = OrderRequest(
                    kind="place",
                    label=f"place {len(self.requests)}",
                    market_code=MARKET,
                    client_order_id=order.client_order_id,
                )
                self.start(nursery, request, self.conn.place(order))
            elif roll < 0.55:
                working = self.conn.orders.get(self.rng.choice(mine))
                if working is None or working.price is None:
                    continue
                price = quantity = None
                if self.rng.random() < 0.3 and working.remaining_quantity > SPEC.qty_increment:
                    quantity = SPEC.qty_increment
                else:
                    price = working.price + SPEC.tick_size * self.rng.choice((-1, 1))
                request = OrderRequest(
                    kind="modify",
                    label=f"modify {len(self.requests)}",
                    market_code=MARKET,
                    order_id=working.order_id,
                    price=price,
                    quantity=quantity,
                )
                call = self.conn.modify(working.order_id, MARKET, price=price, quantity=quantity)
                self.start(nursery, request, call)
            else:
                victim = self.rng.choice(mine)
                request = OrderRequest(
                    kind="cancel",
                    label=f"cancel {len(self.requests)}",
                    market_code=MARKET,
                    order_id=victim,
                )
                self.start(nursery, request, self.conn.cancel(MARKET, victim))

    def start(self, nursery: trio.Nursery, request: OrderRequest, call: Awaitable[object]) -> None:
        self.requests.append(request)
        nursery.start_soon(self.settle, request, call)

    async def settle(self, request: OrderRequest, call: Awaitable[object]) -> None:
        try:
            request.outcomes.append(await call)
        except FlexconnError as exc:
            request.outcomes.append(exc)


def schedule_for(seed: int) -> ChaosSchedule:
    return ChaosSchedule.random(
        seed=seed, count=FAULTS, interval=INTERVAL, stall=2.0, refuse=0.8, window=1.0
    )


@attrs.frozen
class Truth:
    """The engine's view of the account at the end, and what the client held."""

    open_orders: dict[int, Decimal]  # order id -> remaining
    history: list[Any]  # every order (open and finished) of the account
    fills: list[Any]  # the account's trades
    client_orders: dict[int, Decimal]


async def settled_truth(sim: Simulator, conn: Connection) -> Truth:
    """Engine and client views, once they agree (fills by participants can land in between)."""
    account = sim.demo_key.account_id
    engine = sim.exchange.engine
    with trio.move_on_after(5):
        while True:
            truth = {o.order_id: o.remaining for o in engine.open_orders(account)}
            client = {o.order_id: o.remaining_quantity for o in conn.orders.values()}
            if truth == client:
                break
            await trio.sleep(0.05)
    return Truth(
        open_orders=truth,
        history=engine.order_history(account) + engine.open_orders(account),
        fills=engine.account_trades(account),
        client_orders=client,
    )


@pytest.mark.slow  # real time through the TCP chaos proxy
async def test_trading_and_feeds_survive_a_seeded_fault_schedule(
    transport: TransportFactory, chaos_seed: int
) -> None:
    tasks_before = all_tasks()
    channels_before = channel_ids()
    schedule = schedule_for(chaos_seed)
    assert all(schedule.counts()[kind] for kind in FaultKind)
    run = await run_scenario(transport, chaos_seed, schedule)
    check_markers(run.records, run.history, run.reconnects, run.drops)
    check_trades(run.records["trade"], run.public_trades)
    assert run.book_failures == 0, "fragmented or delayed frames corrupted a depth snapshot"
    check_requests(run.trader.requests, run.ledger)
    assert run.truth.client_orders == run.truth.open_orders, "conn.orders differs from the exchange"
    check_fills(run.records["order"], run.connected_at, run.truth, run.history, run.wall_offset)
    assert all_tasks() == tasks_before
    assert open_channels(channels_before) == []


@attrs.frozen(kw_only=True)
class Run:
    """Everything a scenario run leaves to check."""

    records: dict[str, Record]
    history: list[AppliedFault]
    reconnects: int  # sockets after a drop that reached CONNECTED
    drops: int  # sockets that were open and ended
    truth: Truth
    trader: Trader
    wall_offset: float  # time.time() minus trio.current_time()
    book_failures: int
    public_trades: list[int]
    connected_at: list[float]  # trio times the connection (re)reached CONNECTED
    ledger: ExchangeLedger  # the engine's record of the account's order commands


async def run_scenario(transport: TransportFactory, seed: int, schedule: ChaosSchedule) -> Run:
    async with serve(participants_rate=200, seed=seed) as sim:
        assert sim.rest_url is not None
        ledger = ExchangeLedger.attach(sim)
        target = urlsplit(sim.ws_url)
        assert target.hostname is not None and target.port is not None
        creds = Credentials(sim.demo_key.api_key, sim.demo_key.api_secret)
        records = {name: Record(name) for name in ("depth", "trade", "order")}
        connected_at: list[float] = []
        wall_offset = time.time() - trio.current_time()
        async with (
            RestClient(sim.rest_url, creds) as rest,
            open_chaos_proxy(target.hostname, target.port, schedule=schedule, seed=seed) as proxy,
            open_connection(
                proxy.url(sim.ws_url),
                credentials=creds,
                heartbeat=HEARTBEAT,
                reconnect=RETRY,
                transport=transport,
                seed=seed,
                rest=rest,
            ) as conn,
            # the same depth variant as the live book's: they share one exchange subscription
            conn.subscribe(channels.depth(MARKET, DepthLevel.L25)) as depth,
            conn.subscribe(channels.trade(MARKET), backfill=rest) as trades,
            conn.subscribe(channels.order()) as orders,
            conn.events() as events,
            conn.order_book(MARKET, level=DepthLevel.L25) as live,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(consume, depth, records["depth"])
            nursery.start_soon(consume, trades, records["trade"])
            nursery.start_soon(consume, orders, records["order"])
            nursery.start_soon(note_connected, events, connected_at)
            trader = Trader(conn, records["depth"], seed)
            async with trio.open_nursery() as requests:
                async with trio.open_nursery() as issuing:
                    issuing.start_soon(trader.run, requests)
                    await proxy.wait_schedule_done()
                    # trade on until the order channel has resumed after the last fault
                    # a fault's window ends a little after its scheduled end (it was applied
                    # a little late): the order channel must have resumed after every window
                    quiet = max(a.at + a.fault.duration for a in proxy.history)
                    with trio.fail_after(15):
                        while not records["order"].data_after(quiet):  # noqa: ASYNC110
                            await trio.sleep(0.05)
                    issuing.cancel_scope.cancel()
                # let every request in flight reach its outcome (a request cut off here has
                # none, which the checks report): an unknown one may be looked for until the
                # window is provably closed, bounded by the reconcile timeout
                with trio.move_on_after(SETTLE):
                    while any(not r.outcomes for r in trader.requests):  # noqa: ASYNC110
                        await trio.sleep(0.05)
                requests.cancel_scope.cancel()
            settled = trio.current_time()
            with trio.fail_after(15):
                await conn.wait_state(ConnectionState.CONNECTED)
                # the consumers' records have no event to wait on: poll them
                while not (  # noqa: ASYNC110
                    records["depth"].data_after(settled)
                    and records["trade"].data_after(settled)
                    and live.book.valid
                    and conn.orders.synced
                ):
                    await trio.sleep(0.05)
            truth = await settled_truth(sim, conn)
            reconnects = conn.stats().reconnects
            drops = conn.stats().drops
            book_failures = live.book.checksum_failures
            nursery.cancel_scope.cancel()
        public = [t.trade_id for t in sim.exchange.engine.public_trades(MARKET)]
        history = list(proxy.history)
    assert conn.state is ConnectionState.CLOSED
    assert proxy.statistics().open_connections == 0
    return Run(
        records=records,
        history=history,
        reconnects=reconnects,
        drops=drops,
        truth=truth,
        trader=trader,
        wall_offset=wall_offset,
        book_failures=book_failures,
        public_trades=public,
        connected_at=connected_at,
        ledger=ledger,
    )


def check_markers(
    records: dict[str, Record], history: list[AppliedFault], reconnects: int, drops: int
) -> None:
    """Markers against the fault log: one after every disruptive fault, numbered in order.

    A marker comes right after a new session's login, so a session that logged in and then
    dropped before CONNECTED has one that ``reconnects`` (sessions that reached CONNECTED) does
    not count: every feed has the same markers, numbered 1..K, reconnects <= K <= drops.
    """
    assert len(history) == FAULTS
    disruptive_hits = sum(
        1 for applied in history if applied.fault.kind.disruptive and applied.connections
    )
    # fragments and delays never break a connection: every reconnect has a disruptive cause
    assert 1 <= reconnects <= disruptive_hits
    numbers = [m.reconnects for _, m in records["order"].markers()]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    assert reconnects <= len(numbers) <= drops, (reconnects, numbers, drops)
    for record in records.values():
        markers = record.markers()
        assert [m.reconnects for _, m in markers] == numbers, record.name
        for applied in history:
            if applied.fault.kind.disruptive and applied.connections:
                assert record.marker_after(applied.at), (record.name, applied)
    for name in ("depth", "trade", "order"):
        record = records[name]
        for applied in history:
            assert record.data_after(applied.at + applied.fault.duration), (name, applied)
        for moment, _ in record.markers():
            assert record.data_after(moment), (name, moment)


def check_trades(record: Record, truth: list[int]) -> None:
    """Live trades plus backfill: the engine's trades, in order, none lost or repeated."""
    updates = [item for _, item in record.items if isinstance(item, TradeUpdate)]
    ids = [trade.trade_id for update in updates for trade in update.data]
    assert ids, "no trade was delivered"
    assert len(ids) == len(set(ids)), "a trade was delivered twice"
    start = truth.index(ids[0])
    assert sorted(ids) == truth[start : start + len(ids)], "a trade is missing"


def check_requests(requests: list[OrderRequest], ledger: ExchangeLedger) -> None:
    """Enough trading happened, and every outcome is the exchange's truth."""
    assert len(requests) >= 100
    summary = check_outcomes(requests, ledger)
    assert summary.counts.get("place:PlaceAck", 0) >= 30, summary


def check_fills(
    record: Record,
    connected_at: list[float],
    truth: Truth,
    history: list[AppliedFault],
    wall_offset: float,
) -> None:
    """Every fill was on the order channel unless it fell in an outage; none was made up.

    An outage runs from a disruptive fault (less the bytes in flight) until the connection is
    CONNECTED again, its order channel resubscribed (the continuity marker comes earlier, right
    after login).
    """
    seen = {
        event.match_id
        for _, item in record.items
        if isinstance(item, OrderUpdate)
        for event in item.data
        if isinstance(event, OrderMatched)
    }
    fills = {trade.match_id: trade for trade in truth.fills}
    assert fills, "the scenario made no fill"
    assert seen <= set(fills), "a fill was reported that the exchange never made"
    outages = []
    for applied in history:
        if applied.fault.kind.disruptive and applied.connections:
            back = next((t for t in connected_at if t > applied.at), connected_at[-1])
            outages.append((applied.at - IN_FLIGHT, back))
    for match_id, trade in fills.items():
        if match_id in seen:
            continue
        at = trade.timestamp / 1000 - wall_offset
        assert any(start <= at <= end for start, end in outages), (
            f"fill {match_id} at {at:.2f} was lost outside every outage {outages}"
        )
