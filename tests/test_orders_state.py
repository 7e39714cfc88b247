"""``conn.orders``: the open-orders set kept from order notices (pure tests on decoded frames),
and against the simulator: seeded on connect, correct across drops, partial fills, amends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from helpers import ACCOUNT, creds, trading, wait_until

from flexconn.connection import Connection, ConnectionState
from flexconn.models.enums import OrderStatus, OrderType, Side, TimeInForce
from flexconn.models.orders import LimitOrder, MarketOrder
from flexconn.models.rest import OpenOrder as RestOpenOrder
from flexconn.orders import OpenOrders, WorkingOrder
from flexconn.protocol import decode
from flexconn.rest import RestClient
from flexconn.sim import Simulator, serve

D = Decimal
MARKET = "BTC-USD-SWAP-LIN"


def frame(notice: str, order_id: int, **fields: Any) -> object:
    entry = {
        "notice": notice,
        "accountId": ACCOUNT,
        "orderId": str(order_id),
        "marketCode": MARKET,
        "side": "BUY",
        "orderType": "LIMIT",
        "quantity": "0.003",
        "price": "30000",
        "timeInForce": "GTC",
        "status": "OPEN",
        "timestamp": "1594943491077",
        "isTriggered": "False",
    }
    entry.update({k: str(v) for k, v in fields.items()})
    return decode(orjson.dumps({"table": "order", "data": [entry]}))


def matched(order_id: int, remain: str, status: str = "PARTIAL_FILL") -> object:
    return frame(
        "OrderMatched",
        order_id,
        status=status,
        matchId=7,
        matchPrice="30000",
        matchQuantity="0.001",
        orderMatchType="MAKER",
        remainQuantity=remain,
        fees="0.01",
        feeInstrumentId="USD",
    )


def rest_order(order_id: int, remaining: str = "0.003", cid: int | None = None) -> RestOpenOrder:
    return RestOpenOrder(
        order_id=order_id,
        market_code=MARKET,
        client_order_id=cid,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D("0.003"),
        remaining_quantity=D(remaining),
        price=D(30000),
        order_created=1,
        time_in_force=TimeInForce.GTC,
    )


# -- pure ----------------------------------------------------------------------------------------


def test_notices_open_fill_reduce_and_close_orders() -> None:
    orders = OpenOrders()
    orders.apply(frame("OrderOpened", 1, clientOrderId=11))
    orders.apply(frame("OrderOpened", 2))
    assert set(orders) == {1, 2} and orders[1].client_order_id == 11
    orders.apply(matched(1, "0.002"))
    assert orders[1].remaining_quantity == D("0.002")
    assert orders[1].status is OrderStatus.PARTIAL_FILL
    assert orders[1].filled_quantity == D("0.001")
    # a quantity-reducing modify keeps the id; the notice carries the new total quantity
    orders.apply(frame("OrderModified", 1, quantity="0.002", clientOrderId=11))
    assert orders[1].remaining_quantity == D("0.001") and orders[1].quantity == D("0.002")
    orders.apply(matched(1, "0", status="FILLED"))
    assert 1 not in orders
    orders.apply(frame("OrderClosed", 2, status="CANCELED_BY_USER", remainQuantity="0.003"))
    assert len(orders) == 0 and orders.version == 6


def test_an_amend_closes_and_reopens_with_a_new_id_and_the_chain_is_followed() -> None:
    orders = OpenOrders()
    orders.apply(frame("OrderOpened", 1, clientOrderId=5))
    orders.apply(frame("OrderClosed", 1, clientOrderId=5, status="CANCELED_BY_AMEND"))
    orders.apply(frame("OrderOpened", 2, clientOrderId=5, price="30100"))
    orders.apply(frame("OrderClosed", 2, clientOrderId=5, status="CANCELED_BY_AMEND"))
    orders.apply(frame("OrderOpened", 3, clientOrderId=5, price="30200"))
    assert list(orders) == [3] and orders[3].price == D(30200)
    assert orders.successor(1) == 3 and orders.successor(3) == 3
    by_cid = orders.by_client_order_id(5)
    assert isinstance(by_cid, WorkingOrder) and by_cid.order_id == 3
    assert orders.by_client_order_id(6) is None
    # an unrelated open after a plain close is no successor
    orders.apply(frame("OrderClosed", 3, clientOrderId=5, status="CANCELED_BY_USER"))
    orders.apply(frame("OrderOpened", 4, clientOrderId=5))
    assert orders.successor(3) == 3


def test_rejections_change_nothing_and_failure_notices_remove_stale_orders() -> None:
    orders = OpenOrders()
    orders.apply(frame("OrderOpened", 9))
    rejected = decode(
        orjson.dumps(
            {
                "table": "order",
                "data": [
                    {"notice": "OrderRejected", "status": "REJECT_QUANTITY_ZERO", "timestamp": "1"}
                ],
            }
        )
    )
    orders.apply(rejected)
    assert list(orders) == [9]
    failure = decode(
        orjson.dumps(
            {
                "event": "CANCEL",
                "submitted": False,
                "code": "100004",
                "message": "Order request was rejected : REJECT_CANCEL_ORDER_ID_NOT_FOUND",
                "timestamp": "0",
                "data": {
                    "orderId": 9,
                    "marketCode": MARKET,
                    "status": "REJECT_CANCEL_ORDER_ID_NOT_FOUND",
                },
            }
        )
    )
    orders.apply(failure)
    assert len(orders) == 0
    cancel_all = decode(orjson.dumps({"event": "CANCEL", "submitted": True, "timestamp": "1"}))
    orders.apply(cancel_all)
    assert orders.resync_wanted


def test_seeding_replays_notices_held_during_the_snapshot() -> None:
    orders = OpenOrders()
    orders.apply(frame("OrderOpened", 1, clientOrderId=1))
    orders.apply(frame("OrderOpened", 2, clientOrderId=2))
    orders.begin_sync()
    assert not orders.synced
    # held: an order opened and filled, one opened that the snapshot already shows, a close
    orders.apply(frame("OrderOpened", 5))
    orders.apply(matched(5, "0", status="FILLED"))
    orders.apply(frame("OrderOpened", 6))
    orders.apply(frame("OrderClosed", 3, status="CANCELED_BY_USER"))
    assert set(orders) == {1, 2}  # nothing applied yet
    # the snapshot: 1 is gone (replaced: 7 carries its client order id), 3 and 6 are open
    orders.finish_sync([rest_order(3), rest_order(6), rest_order(7, cid=1), rest_order(2, cid=2)])
    assert orders.synced and not orders.resync_wanted
    assert set(orders) == {2, 6, 7}
    assert orders.successor(1) == 7
    orders.begin_sync()
    orders.apply(frame("OrderClosed", 2, status="CANCELED_BY_USER"))
    orders.abort_sync()
    assert set(orders) == {6, 7} and not orders.synced
    assert repr(orders) == "<OpenOrders 2 open synced=False>"


def test_a_partly_filled_snapshot_order_keeps_its_fill_through_an_in_place_modify() -> None:
    orders = OpenOrders()
    orders.begin_sync()
    orders.finish_sync([rest_order(4, remaining="0.002")])
    assert orders[4].status is OrderStatus.PARTIAL_FILL
    orders.apply(frame("OrderModified", 4, quantity="0.002"))
    assert orders[4].remaining_quantity == D("0.001")
    orders.record_successor(4, 4)
    assert orders.successor(4) == 4


# -- against the simulator -----------------------------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with serve(participants_rate=None) as simulator:
        yield simulator


def truth(sim: Simulator) -> dict[int, tuple[Decimal, Decimal | None, Side]]:
    return {
        o.order_id: (o.remaining, o.price, o.side) for o in sim.exchange.engine.open_orders(ACCOUNT)
    }


def tracked(conn: Connection) -> dict[int, tuple[Decimal, Decimal | None, Side]]:
    return {i: (o.remaining_quantity, o.price, o.side) for i, o in conn.orders.items()}


def place_directly(sim: Simulator, price: int, quantity: str = "0.001") -> int:
    """An order placed behind the connection's back (another session, the GUI...)."""
    order = sim.exchange.engine.place(
        ACCOUNT,
        market_code=MARKET,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D(quantity),
        price=D(price),
    )
    sim.exchange.flush()
    return order.order_id


async def test_orders_are_seeded_on_connect(sim: Simulator) -> None:
    existing = {place_directly(sim, 30000 + i) for i in range(3)}
    async with trading(sim, shared_clock=False) as conn:
        assert conn.orders.synced
        assert set(conn.orders) == existing
        assert tracked(conn) == truth(sim)


async def test_orders_stay_true_across_a_drop_that_hid_changes(sim: Simulator) -> None:
    async with trading(sim, shared_clock=False) as conn:
        kept = await conn.place(LimitOrder(MARKET, Side.SELL, D("0.003"), D(50000)))
        doomed = await conn.place(LimitOrder(MARKET, Side.BUY, D("0.001"), D(30000)))
        await wait_until(lambda: len(conn.orders) == 2)
        sim.faults.refuse_connections(0.3)
        sim.faults.drop_all()
        await conn.wait_state(ConnectionState.RECONNECTING)
        # while we are away: one order is cancelled, one opened, one partly filled
        assert doomed.order_id is not None and kept.order_id is not None
        sim.exchange.engine.cancel(ACCOUNT, MARKET, doomed.order_id)
        born = place_directly(sim, 31000)
        taker = sim.exchange.engine.place(
            ACCOUNT,
            market_code=MARKET,
            side=Side.BUY,
            order_type=OrderType.MARKET,
            quantity=D("0.001"),
        )
        sim.exchange.flush()
        assert taker.filled == D("0.001")
        await wait_until(lambda: conn.stats().reconnects == 1)
        await conn.wait_state(ConnectionState.CONNECTED)
        assert conn.orders.synced
        assert set(conn.orders) == {kept.order_id, born}
        assert conn.orders[kept.order_id].remaining_quantity == D("0.002")
        assert tracked(conn) == truth(sim)


async def test_fills_amends_and_a_rest_cancel_all_are_followed(sim: Simulator) -> None:
    assert sim.rest_url is not None
    async with (
        trading(sim, shared_clock=False) as conn,
        RestClient(sim.rest_url, creds(sim)) as rest,
    ):
        maker = await conn.place(LimitOrder(MARKET, Side.SELL, D("0.005"), D(50000)))
        assert maker.order_id is not None
        maker_id = maker.order_id
        await conn.place(MarketOrder(MARKET, Side.BUY, D("0.002")))
        await wait_until(lambda: conn.orders.get(maker_id) is not None)
        await wait_until(lambda: conn.orders[maker_id].remaining_quantity == D("0.003"))
        await conn.modify(maker_id, MARKET, price=D(50500))
        await wait_until(lambda: conn.orders.successor(maker_id) != maker_id)
        assert tracked(conn) == truth(sim)
        for i in range(3):
            await conn.place(LimitOrder(MARKET, Side.BUY, D("0.001"), D(30000 + i)))
        await wait_until(lambda: len(conn.orders) == 4)
        await rest.cancel_all_orders(MARKET)
        await wait_until(lambda: not conn.orders and conn.orders.synced)
        assert truth(sim) == {}
