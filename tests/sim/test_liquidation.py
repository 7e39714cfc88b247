"""Liquidations: the engine's rule, the ``liquidationRFQ`` announcement 50 ms ahead, and the
typed channel a flexconn client receives over loopback.

A thinly funded account buys one BTC perpetual at 50000 (initial margin 10%: 5000 USD, plus the
taker fee), then another account moves the book below its liquidation price.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio
import trio.testing
from conftest import Client

from flexconn import channels
from flexconn.connection import open_connection
from flexconn.models import LiquidationRFQUpdate
from flexconn.models.enums import OrderStatus, OrderType, Side
from flexconn.sim import SimExchange, Simulator
from flexconn.sim.engine import Engine, OrderClosed, OrderMatched
from flexconn.sim.liquidation import LIQUIDATION_LEAD, Liquidator
from flexconn.transport import TransportFactory

MARKET = "BTC-USD-SWAP-LIN"
PUNTER = "punter"
DEALER = "dealer"


def _limit(engine: Engine, account: str, side: Side, price: int, quantity: str = "1") -> int:
    return engine.place(
        account,
        market_code=MARKET,
        side=side,
        order_type=OrderType.LIMIT,
        quantity=Decimal(quantity),
        price=Decimal(price),
    ).order_id


def _leveraged_long(engine: Engine) -> int:
    """The punter goes long 1 at 50000 with barely its initial margin; returns the dealer's bid
    order id (the book is then 49000 / 51000, mid 50000)."""
    engine.open_account(PUNTER, {"USD": Decimal(5200)})
    engine.open_account(DEALER, {"USD": Decimal(10**9)})
    _limit(engine, DEALER, Side.SELL, 50000)
    engine.place(
        PUNTER, market_code=MARKET, side=Side.BUY, order_type=OrderType.MARKET, quantity=Decimal(1)
    )
    bid = _limit(engine, DEALER, Side.BUY, 49000)
    _limit(engine, DEALER, Side.SELL, 51000)
    return bid


def _move_mid(engine: Engine, bid_order: int, bid: int, ask: int) -> int:
    """Replace the dealer's book with ``bid`` / ``ask``; returns the new bid's order id."""
    engine.cancel_all(DEALER, MARKET)
    new_bid = _limit(engine, DEALER, Side.BUY, bid, "2")
    _limit(engine, DEALER, Side.SELL, ask, "2")
    return new_bid


def test_liquidation_is_due_exactly_at_the_reported_liquidation_price() -> None:
    engine = Engine()
    bid = _leveraged_long(engine)
    position = engine.positions(PUNTER)[MARKET]
    # equity 5200 - 25 fee = 5175; due when 5175 + (m - 50000) <= 0.05 m, i.e. m <= 47184.21
    assert position.est_liquidation_price == Decimal("47184.2")
    assert engine.liquidatable() == []
    bid = _move_mid(engine, bid, 47184, 47185)  # mid 47184.5: just above
    assert engine.liquidatable() == []
    _move_mid(engine, bid, 47183, 47185)  # mid 47184: below
    assert engine.liquidatable() == [(PUNTER, MARKET)]


def test_liquidate_cancels_the_accounts_orders_and_sweeps_the_position() -> None:
    engine = Engine()
    bid = _leveraged_long(engine)
    resting = _limit(engine, PUNTER, Side.SELL, 60000, "0.01")
    _move_mid(engine, bid, 46000, 47000)
    engine.drain_events()
    order = engine.liquidate(PUNTER, MARKET)
    assert order is not None
    assert order.order_type is OrderType.MARKET and order.side is Side.SELL
    assert order.status is OrderStatus.FILLED
    events = engine.drain_events()
    closed = [e for e in events if isinstance(e, OrderClosed)]
    assert [(e.order.order_id, e.status) for e in closed] == [
        (resting, OrderStatus.CANCELED_BY_USER)
    ]
    fills = [e for e in events if isinstance(e, OrderMatched) and e.order.account_id == PUNTER]
    assert [(e.match_price, e.match_quantity) for e in fills] == [(Decimal(46000), Decimal(1))]
    assert engine.net_position(PUNTER, MARKET) == 0
    assert engine.liquidatable() == []
    assert engine.liquidate(PUNTER, MARKET) is None


async def test_rfq_is_published_before_the_liquidation_on_the_same_socket(
    sim: Simulator, client: Client, autojump_clock: trio.testing.MockClock
) -> None:
    engine = sim.exchange.engine
    bid = _leveraged_long(engine)
    sim.exchange.flush()
    replies = await client.subscribe("liquidationRFQ", f"trade:{MARKET}")
    assert [r["channel"] for r in replies] == ["liquidationRFQ", f"trade:{MARKET}"]
    assert await client.nothing_within(1.0)  # healthy: nothing to announce
    _move_mid(engine, bid, 46000, 47000)
    sim.exchange.flush()
    start = trio.current_time()
    rfq = await client.table("liquidationRFQ")
    announced = trio.current_time()
    assert list(rfq) == ["table", "data"]
    assert rfq["data"] == [{"marketCode": MARKET, "timestamp": rfq["data"][0]["timestamp"]}]
    assert rfq["data"][0]["timestamp"].isdigit()
    assert announced - start <= 0.1 + 1e-9  # the next scan (every 100 ms) finds it
    assert sim.exchange.liquidator.pending == {(PUNTER, MARKET)}
    trade = await client.table("trade")
    assert trade["data"][0]["price"] == "46000" and trade["data"][0]["side"] == "sell"
    assert trio.current_time() - announced >= LIQUIDATION_LEAD - 1e-9
    assert engine.net_position(PUNTER, MARKET) == 0
    assert sim.exchange.liquidator.liquidated == 1
    assert await client.nothing_within(1.0)  # announced once, liquidated once


async def test_client_receives_typed_liquidation_rfqs(
    sim: Simulator, transport: TransportFactory, autojump_clock: trio.testing.MockClock
) -> None:
    engine = sim.exchange.engine
    bid = _leveraged_long(engine)
    sim.exchange.flush()
    async with (
        open_connection(sim.ws_url, transport=transport) as conn,
        conn.subscribe(channels.liquidation_rfq()) as feed,
    ):
        _move_mid(engine, bid, 46000, 47000)
        sim.exchange.flush()
        with trio.fail_after(5):
            update = await feed.receive()
        assert isinstance(update, LiquidationRFQUpdate)
        assert update.channel == "liquidationRFQ"
        (item,) = update.data
        assert item.market_code == MARKET
        assert item.timestamp is not None and item.time is not None
        with trio.fail_after(5):
            while engine.net_position(PUNTER, MARKET):  # noqa: ASYNC110 - engine state, no event
                await trio.sleep(0.01)


def test_liquidator_refuses_a_negative_lead() -> None:
    with pytest.raises(ValueError):
        Liquidator(SimExchange(), lead=-1.0)
