"""Every order outcome is a fact about the exchange (the outcome table of ``docs/orders.md``).

Against the simulator over loopback, on trio's MockClock (each test takes ``autojump_clock``:
pytest-trio installs only a clock the test itself requests). The simulator, the REST client and
the connection share one wall clock derived from trio time, so an order's ``recvWindow`` closes
(and the simulator refuses a late frame with ``20024``) at the same mock moment on both sides.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import trio
import trio.testing
from helpers import ACCOUNT, sim_exchange, trading, wait_until, wall_ms

from flexconn.config import Heartbeat
from flexconn.connection import ConnectionState
from flexconn.errors import (
    AuthenticationError,
    FlexconnError,
    OrderAlreadyClosed,
    OrderNotApplied,
    OrderNotFoundError,
    OrderOutcomeUnknown,
)
from flexconn.models.enums import OrderStatus, OrderType, Side
from flexconn.models.orders import LimitOrder, ModifyOrder
from flexconn.outbox import AckSource, CancelAck, ModifyAck, OutboxConfig, PlaceAck
from flexconn.sim import Simulator, serve

D = Decimal
MARKET = "BTC-USD-SWAP-LIN"
TAKER = "2002"
#: Declares a silent socket dead within about two seconds.
QUICK_HEARTBEAT = Heartbeat(interval=1.0, timeout=1.0)
#: Never declares the socket dead during a test.
PATIENT_HEARTBEAT = Heartbeat(interval=30.0, timeout=20.0)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    exchange = sim_exchange()
    exchange.open_account(TAKER, {"USD": D(10_000_000), "BTC": D(1000)})
    async with serve(participants_rate=None, exchange=exchange) as simulator:
        yield simulator


def bid(price: int = 30000, quantity: str = "0.002") -> LimitOrder:
    return LimitOrder(MARKET, Side.BUY, D(quantity), D(price))


def take(sim: Simulator, price: int = 30000, quantity: str = "0.002") -> None:
    """Another account sells into our bid: our order fills."""
    sim.exchange.engine.place(
        TAKER,
        market_code=MARKET,
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        quantity=D(quantity),
        price=D(price),
    )
    sim.exchange.flush()


def history(sim: Simulator) -> dict[int, Any]:
    engine = sim.exchange.engine
    orders = [*engine.order_history(ACCOUNT), *engine.open_orders(ACCOUNT)]
    return {o.order_id: o for o in orders}


def with_cid(sim: Simulator, cid: int) -> list[Any]:
    return [o for o in history(sim).values() if o.client_order_id == cid]


async def outcome_of(call: Any) -> object:
    try:
        result: object = await call
    except FlexconnError as exc:
        return exc
    return result


# -- cancel and modify are confirmed by the order channel ----------------------------------------


async def test_a_cancel_of_a_filled_order_raises_already_closed_filled(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        ack = await conn.place(bid())
        take(sim)
        assert history(sim)[ack.order_id].status is OrderStatus.FILLED
        with pytest.raises(OrderAlreadyClosed) as info:
            await conn.cancel(MARKET, ack.order_id)
        assert info.value.close_reason is OrderStatus.FILLED
        assert info.value.order_id == ack.order_id and info.value.code == "100004"
        assert isinstance(info.value, OrderNotFoundError)


async def test_a_second_cancel_raises_already_closed_cancelled_by_user(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        ack = await conn.place(bid())
        first = await conn.cancel(MARKET, ack.order_id)
        assert first.confirmed and first.source is AckSource.ORDER_CHANNEL
        assert first.reply is not None and first.client_order_id == ack.client_order_id
        assert history(sim)[ack.order_id].status is OrderStatus.CANCELED_BY_USER
        with pytest.raises(OrderAlreadyClosed) as info:
            await conn.cancel(MARKET, ack.order_id)
        assert info.value.close_reason is OrderStatus.CANCELED_BY_USER


async def test_confirm_false_returns_at_the_reply(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        ack = await conn.place(bid())
        take(sim)
        quick = await conn.cancel(MARKET, ack.order_id, confirm=False)
        # Accepted, not confirmed: the order had filled, which the default call would raise.
        assert isinstance(quick, CancelAck) and not quick.confirmed
        assert quick.reply is not None and quick.reply.submitted


async def test_a_modify_of_a_filled_order_raises_already_closed(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        ack = await conn.place(bid())
        take(sim)
        with pytest.raises(OrderAlreadyClosed) as info:
            await conn.modify(ack.order_id, MARKET, quantity=D("0.001"))
        assert info.value.close_reason is OrderStatus.FILLED


async def test_a_modify_names_its_own_replacement_and_a_modify_of_the_old_id_fails(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        ack = await conn.place(bid())
        moved = await conn.modify(ack.order_id, MARKET, price=D(29990))
        assert moved.confirmed and moved.replaced_by is not None
        replacement = history(sim)[moved.replaced_by]
        assert replacement.is_open and replacement.price == D(29990)
        assert replacement.client_order_id == ack.client_order_id
        assert history(sim)[ack.order_id].status is OrderStatus.CANCELED_BY_AMEND
        shrunk = await conn.modify(moved.replaced_by, MARKET, quantity=D("0.001"))
        assert shrunk.confirmed and shrunk.replaced_by is None
        assert history(sim)[moved.replaced_by].remaining == D("0.001")
        # The old id is gone: never another modify's replacement.
        with pytest.raises(OrderAlreadyClosed) as info:
            await conn.modify(ack.order_id, MARKET, price=D(29980))
        assert info.value.close_reason is OrderStatus.CANCELED_BY_AMEND
        assert [o.order_id for o in sim.exchange.engine.open_orders(ACCOUNT)] == [moved.replaced_by]


async def test_a_modify_storm_settles_each_modify_with_its_own_outcome(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        ack = await conn.place(bid(quantity="0.005"))
        changes: list[dict[str, Any]] = [
            {"quantity": D("0.004")},
            {"quantity": D("0.003")},
            {"price": D(29990)},
            {"quantity": D("0.002")},
            {"price": D(29980)},
        ]
        outcomes: dict[int, object] = {}

        async def modify(index: int) -> None:
            outcomes[index] = await outcome_of(conn.modify(ack.order_id, MARKET, **changes[index]))

        async with trio.open_nursery() as nursery:
            for index in range(len(changes)):
                nursery.start_soon(modify, index)
        engine = history(sim)
        original = engine[ack.order_id]
        assert original.status is OrderStatus.CANCELED_BY_AMEND
        (replacement,) = [o for o in sim.exchange.engine.open_orders(ACCOUNT)]
        replaced = [i for i, o in outcomes.items() if isinstance(o, ModifyAck) and o.replaced_by]
        assert len(replaced) == 1, outcomes  # exactly one modify opened the replacement
        winner = outcomes[replaced[0]]
        assert isinstance(winner, ModifyAck) and winner.replaced_by == replacement.order_id
        change = changes[replaced[0]]
        # The replacement is what the winning modify asked for (a new price, or a quantity
        # above what was open when it was processed).
        assert replacement.price == change.get("price", replacement.price)
        assert replacement.remaining == change.get("quantity", replacement.remaining)
        for index, outcome in outcomes.items():
            if index == replaced[0]:
                continue
            if isinstance(outcome, ModifyAck):
                # In place, before the replacing one.
                assert outcome.confirmed and outcome.replaced_by is None
                assert "quantity" in changes[index]
            else:
                assert isinstance(outcome, OrderAlreadyClosed), outcome
                assert outcome.close_reason is OrderStatus.CANCELED_BY_AMEND
        assert original.status is OrderStatus.CANCELED_BY_AMEND


async def test_cancels_racing_a_fill_each_learn_the_truth(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        ack = await conn.place(bid())
        outcomes: list[object] = []

        async def cancel() -> None:
            outcomes.append(await outcome_of(conn.cancel(MARKET, ack.order_id)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel)
            nursery.start_soon(cancel)
            take(sim)
        status = history(sim)[ack.order_id].status
        confirmed = [o for o in outcomes if isinstance(o, CancelAck)]
        closed = [o for o in outcomes if isinstance(o, OrderAlreadyClosed)]
        assert len(confirmed) + len(closed) == 2
        if status is OrderStatus.FILLED:
            assert not confirmed and all(o.close_reason is OrderStatus.FILLED for o in closed)
        else:
            assert status is OrderStatus.CANCELED_BY_USER and len(confirmed) == 1


# -- timestamp and recvWindow --------------------------------------------------------------------


async def test_every_place_and_modify_carries_timestamp_and_recv_window(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    sent: list[dict[str, Any]] = []
    async with trading(sim, outbox=OutboxConfig(recv_window_ms=2500)) as conn:
        send = conn.send_raw

        async def spy(text: str) -> None:
            sent.append(json.loads(text))
            await send(text)

        conn._outbox._send = spy
        await trio.sleep(1.5)
        written_at = wall_ms()
        ack = await conn.place(bid())
        await conn.modify(ack.order_id, MARKET, quantity=D("0.001"))
        mine = LimitOrder(MARKET, Side.BUY, D("0.001"), D(29000), timestamp=written_at - 100)
        await conn.place(mine)
        await conn.cancel(MARKET, ack.order_id)
    place, modify, own, cancel = (frame["data"] for frame in sent)
    assert place["timestamp"] == written_at and place["recvWindow"] == 2500
    assert modify["timestamp"] >= written_at and modify["recvWindow"] == 2500
    assert own["timestamp"] == written_at - 100 and own["recvWindow"] == 2500  # caller's kept
    assert "timestamp" not in cancel and "recvWindow" not in cancel


async def test_an_order_reaching_the_exchange_after_its_window_is_refused_20024(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim, heartbeat=PATIENT_HEARTBEAT) as conn:
        assert sim.faults.stall(5.0) == 1  # the exchange reads it 5 s late: past 3 s
        with pytest.raises(AuthenticationError) as info:
            await conn.place(bid())
        assert info.value.code == "20024"
        assert history(sim) == {}


async def test_a_2020_12_reply_without_order_id_takes_it_from_the_notice(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        sim.faults.delay_replies(60)  # processed (the notice comes) but not answered
        task_result: list[object] = []

        async def place() -> None:
            task_result.append(await outcome_of(conn.place(bid())))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(place)
            await wait_until(lambda: len(sim.exchange.engine.open_orders(ACCOUNT)) == 1, 30)
            (order,) = sim.exchange.engine.open_orders(ACCOUNT)
            await wait_until(lambda: order.order_id in conn.orders, 30)
            old_style = {
                "event": "placeorder",
                "submitted": True,
                "timestamp": str(wall_ms()),
                "data": {
                    "clientOrderId": str(order.client_order_id),
                    "marketCode": MARKET,
                    "side": "BUY",
                    "orderType": "LIMIT",
                    "quantity": "0.002",
                    "price": "30000",
                },
            }
            sim.faults.inject(json.dumps(old_style))
        (ack,) = task_result
        assert isinstance(ack, PlaceAck) and ack.order_id == order.order_id
        assert ack.reply is not None and ack.reply.data is not None
        assert ack.reply.data.order_id is None


# -- half-open stalls: frames the exchange reads late --------------------------------------------


async def test_a_place_read_late_inside_its_window_is_found_never_not_applied(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    config = OutboxConfig(recv_window_ms=8000)
    async with trading(sim, heartbeat=QUICK_HEARTBEAT, outbox=config) as conn:
        resting = await conn.place(bid(29000))
        # Half-open for 5 s: the heartbeat gives the socket up after 2 s, the close waits 2 s
        # for the silent peer, and the connection reconnects at about 4 s: a lookup then finds
        # nothing. At 5 s the exchange reads the old socket's buffered frame, inside the 8 s
        # window: the order is placed, so "not applied" would have been a lie.
        assert sim.faults.stall(5.0) == 1
        start = trio.current_time()
        placed = await outcome_of(conn.place(bid(29100)))
        assert isinstance(placed, PlaceAck), placed
        assert placed.source in (AckSource.ORDER_CHANNEL, AckSource.REST)
        assert history(sim)[placed.order_id].client_order_id == placed.client_order_id
        assert trio.current_time() - start >= 5.0
        assert conn.stats().reconnects == 1
        assert sorted(history(sim)) == [resting.order_id, placed.order_id]


async def test_a_place_read_after_its_window_is_not_applied_and_never_appears(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim, heartbeat=QUICK_HEARTBEAT) as conn:
        resting = await conn.place(bid(29000))
        assert sim.faults.stall(10.0) == 1  # read 10 s late: refused (20024), nothing placed
        start = trio.current_time()
        outcome = await outcome_of(conn.place(bid(29100)))
        assert isinstance(outcome, OrderNotApplied) and outcome.sent, outcome
        # Proved only by a lookup after timestamp + recvWindow + margin (3 s + 1 s).
        assert trio.current_time() - start >= 4.0
        await trio.sleep(8)  # the exchange reads the buffered frame now
        assert conn.state is ConnectionState.CONNECTED
        assert list(history(sim)) == [resting.order_id]


async def test_a_stalled_cancel_with_its_order_open_is_unknown_and_a_modify_not_applied(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim, heartbeat=QUICK_HEARTBEAT) as conn:
        first = await conn.place(bid(29000))
        second = await conn.place(bid(29100))
        assert sim.faults.stall(10.0) == 1
        outcomes: dict[str, object] = {}

        async def run(name: str, call: Any) -> None:
            outcomes[name] = await outcome_of(call)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "cancel", conn.cancel(MARKET, first.order_id))
            nursery.start_soon(
                run, "modify", conn.modify(second.order_id, MARKET, quantity=D("0.001"))
            )
        # A cancel carries no window: the buffered one may still apply, so never "not applied".
        assert isinstance(outcomes["cancel"], OrderOutcomeUnknown), outcomes
        modify = outcomes["modify"]
        assert isinstance(modify, OrderNotApplied) and modify.sent, outcomes
        await trio.sleep(8)  # the exchange reads both now: the cancel applies, the modify is late
        engine = history(sim)
        assert engine[first.order_id].status is OrderStatus.CANCELED_BY_USER
        assert engine[second.order_id].is_open and engine[second.order_id].remaining == D("0.002")


async def test_modifies_cut_off_by_a_drop_are_looked_up_without_lending(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        ack = await conn.place(bid(quantity="0.004"))
        sim.faults.drop_after(1)  # the first reply gets out; notices and the rest are lost
        outcomes = await conn.modify_many(
            [
                ModifyOrder(MARKET, ack.order_id, price=D(29990)),
                ModifyOrder(MARKET, ack.order_id, price=D(29980)),
            ]
        )
        first, second = outcomes
        replacement = [o for o in sim.exchange.engine.open_orders(ACCOUNT)]
        assert len(replacement) == 1 and replacement[0].price == D(29990)
        # Two requests on one order: REST cannot say which opened the replacement.
        for outcome in outcomes:
            if isinstance(outcome, ModifyAck):
                assert outcome is first and outcome.replaced_by == replacement[0].order_id
            else:
                assert isinstance(outcome, OrderOutcomeUnknown | OrderAlreadyClosed), outcome
        assert not (isinstance(second, ModifyAck) and second.replaced_by is not None)


def all_tasks() -> set[trio.lowlevel.Task]:
    found: set[trio.lowlevel.Task] = set()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        found.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found


async def test_closing_the_connection_ends_lookups_waiting_for_a_window(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    before = all_tasks()
    results: list[object] = []
    config = OutboxConfig(recv_window_ms=20_000)
    async with (
        trio.open_nursery() as outer,
        trading(sim, heartbeat=QUICK_HEARTBEAT, outbox=config) as conn,
    ):
        assert sim.faults.stall(60.0) == 1

        async def place() -> None:
            results.append(await outcome_of(conn.place(bid())))

        outer.start_soon(place)
        # The socket is given up and the connection is back; the lookup found nothing and
        # waits for the 20 s window to close. Then the block exits.
        await wait_until(lambda: conn.stats().reconnects == 1, 30)
        await trio.sleep(1)
        assert conn.outbox_stats().unknown == 1 and not results
    (outcome,) = results
    assert isinstance(outcome, OrderOutcomeUnknown), outcome
    # The simulator still serves the stalled socket; the client left nothing behind.
    leaked = [
        t.name
        for t in all_tasks() - before
        if not t.name.startswith(("flexconn.sim", "trio.", "hypercorn"))
    ]
    assert not leaked, leaked
