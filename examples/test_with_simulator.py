"""Test your own trading code against the embedded simulator (pytest with pytest-trio).

Run with ``pytest examples/test_with_simulator.py`` (``trio_mode = true`` in the pytest config,
as flexconn's own, or mark the tests with ``@pytest.mark.trio``).
"""

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from flexconn import (
    ConnectionEvent,
    ConnectionState,
    Credentials,
    InsufficientFundsError,
    LimitOrder,
    RestClient,
    Side,
    open_connection,
)
from flexconn.sim import Simulator, serve

MARKET = "BTC-USD-SWAP-LIN"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # No synthetic participants: the books stay still, so nothing fills by surprise.
    async with serve(participants_rate=None) as simulator:
        yield simulator


def demo(sim: Simulator) -> Credentials:
    return Credentials(sim.demo_key.api_key, sim.demo_key.api_secret)


async def test_an_open_order_survives_a_dropped_connection(sim: Simulator) -> None:
    assert sim.rest_url is not None
    async with (
        RestClient(sim.rest_url, demo(sim)) as rest,
        open_connection(sim.ws_url, credentials=demo(sim), rest=rest) as conn,
    ):
        ack = await conn.place(LimitOrder(MARKET, Side.BUY, Decimal("0.01"), Decimal(40_000)))
        async with conn.events() as events:
            sim.faults.drop_all()
            async for event in events:  # reconnecting, connecting, ..., connected
                if isinstance(event, ConnectionEvent) and event.state is ConnectionState.CONNECTED:
                    break
        assert conn.stats().reconnects == 1
        assert ack.order_id in conn.orders
        # The simulator's engine is the ground truth.
        engine_orders = sim.exchange.engine.open_orders(sim.demo_key.account_id)
        assert [order.order_id for order in engine_orders] == [ack.order_id]


async def test_a_refused_order_raises_the_exchange_error(sim: Simulator) -> None:
    sim.faults.fail_next("placeorder", "710005")  # the margin check fails, once
    async with open_connection(sim.ws_url, credentials=demo(sim)) as conn:
        with pytest.raises(InsufficientFundsError) as refused:
            await conn.place(LimitOrder(MARKET, Side.BUY, Decimal("0.01"), Decimal(40_000)))
        assert refused.value.code == "710005"
        assert len(conn.orders) == 0
