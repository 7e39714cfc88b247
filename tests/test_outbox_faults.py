"""The outbox across faults, against the simulator over loopback: requests acknowledged, in flight
and unsent when the socket drops, stalls or answers late each end exactly once with their true
outcome, and the exchange never holds a duplicate order.

On trio's MockClock (every test takes ``autojump_clock``): the simulator, the REST client and the
connection share one wall clock (``helpers.wall_ms``), so reply timeouts, delays, stalls and
recvWindows are exact moments, not races with the machine's load."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
import trio
import trio.testing
from helpers import ACCOUNT, engine_orders, tracked, trading, wait_until

from flexconn.config import Heartbeat
from flexconn.connection import Connection, ConnectionEvent, ConnectionState
from flexconn.errors import (
    ConnectionClosed,
    FlexconnError,
    OrderNotApplied,
    OrderOutcomeUnknown,
)
from flexconn.models.enums import Side
from flexconn.models.orders import CancelOrder, LimitOrder, ModifyOrder
from flexconn.outbox import AckSource, CancelAck, ModifyAck, OutboxConfig, PlaceAck
from flexconn.sim import Simulator

D = Decimal
MARKET = "BTC-USD-SWAP-LIN"
QUICK_HEARTBEAT = Heartbeat(interval=0.2, timeout=0.2)


@pytest.fixture
def sim(wall_sim: Simulator) -> Simulator:
    return wall_sim


def bid(i: int = 0, quantity: str = "0.001") -> LimitOrder:
    return LimitOrder(MARKET, Side.BUY, D(quantity), D(30000) + i)


def everything(sim: Simulator) -> list[Any]:
    engine = sim.exchange.engine
    return [*engine.order_history(ACCOUNT), *engine.open_orders(ACCOUNT)]


def assert_no_duplicates(sim: Simulator) -> None:
    """Every order the exchange ever accepted carries its own client order id."""
    ids = [o.client_order_id for o in everything(sim) if o.status.value != "CANCELED_BY_AMEND"]
    assert len(ids) == len(set(ids)), "an order was placed twice"


def assert_place_outcomes_are_true(sim: Simulator, outcomes: Sequence[object]) -> None:
    by_cid: dict[int | None, set[int]] = {}
    for order in everything(sim):
        by_cid.setdefault(order.client_order_id, set()).add(order.order_id)
    for outcome in outcomes:
        if isinstance(outcome, PlaceAck):
            assert outcome.order_id in by_cid.get(outcome.client_order_id, set())
        else:
            assert isinstance(outcome, OrderNotApplied), outcome


async def test_acknowledged_in_flight_and_unsent_requests_across_a_drop(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    results: dict[str, list[PlaceAck | FlexconnError]] = {}
    async with trading(sim) as conn:
        before = await conn.place(bid(0))
        # The next command's 20 orders are all processed; the socket dies after 5 frames
        # (reply 1, notice 1, reply 2, notice 2, reply 3), and reconnecting takes a while.
        sim.faults.drop_after(5)
        sim.faults.refuse_connections(0.5)

        async def in_flight() -> None:
            results["in_flight"] = await conn.place_many([bid(i) for i in range(1, 21)])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(in_flight)
            await conn.wait_state(ConnectionState.RECONNECTING)
            unsent = await conn.place_many([bid(i) for i in range(100, 103)])
            assert conn.state is ConnectionState.CONNECTED
        assert before.source is AckSource.REPLY
        sources = [o.source for o in results["in_flight"] if isinstance(o, PlaceAck)]
        assert len(sources) == 20
        assert sources[:3] == [AckSource.REPLY] * 3
        assert set(sources[3:]) <= {AckSource.REST, AckSource.ORDER_CHANNEL}
        assert [o.source for o in unsent if isinstance(o, PlaceAck)] == [AckSource.REPLY] * 3
        assert conn.outbox_stats().reconciled == 17
        assert_place_outcomes_are_true(sim, [*results["in_flight"], *unsent])
        assert_no_duplicates(sim)
        assert len(engine_orders(sim)) == 24
        await wait_until(lambda: tracked(conn) == engine_orders(sim))


async def reconnected(conn: Connection, count: int) -> None:
    await wait_until(
        lambda: conn.stats().reconnects == count and conn.state is ConnectionState.CONNECTED
    )


async def test_processed_but_unanswered_commands_are_found_over_rest(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        sim.faults.drop_after(1)  # the first reply gets out; nothing else, not even notices
        placed = await conn.place_many([bid(i, quantity="0.002") for i in range(5)])
        assert [o.source for o in placed if isinstance(o, PlaceAck)] == [AckSource.REPLY] + [
            AckSource.REST
        ] * 4
        ids = [o.order_id for o in placed if isinstance(o, PlaceAck)]
        assert len(ids) == 5

        await reconnected(conn, 1)  # lookups no longer wait for the reconnection
        sim.faults.drop_after(1)
        modified = await conn.modify_many([ModifyOrder(MARKET, i, price=D(31000)) for i in ids[:3]])
        assert [type(o) for o in modified] == [ModifyAck] * 3
        # The first reply got out, but not its confirmation: all three are looked up.
        assert [o.source for o in modified if isinstance(o, ModifyAck)] == [AckSource.REST] * 3
        for ack in modified:  # a replacing modify: the new order carries the same client order id
            assert isinstance(ack, ModifyAck) and ack.confirmed
            assert ack.replaced_by is not None and ack.replaced_by in engine_orders(sim)
            assert conn.orders.successor(ack.order_id) == ack.replaced_by

        await reconnected(conn, 2)
        sim.faults.drop_after(1)
        targets = [conn.orders.successor(i) for i in ids[:3]] + ids[3:]
        cancelled = await conn.cancel_many([CancelOrder(MARKET, i) for i in targets])
        assert [type(o) for o in cancelled] == [CancelAck] * 5
        assert [o.source for o in cancelled if isinstance(o, CancelAck)] == [AckSource.REST] * 5
        assert engine_orders(sim) == {}
        assert_no_duplicates(sim)
        await wait_until(lambda: not conn.orders)


async def test_an_overdue_reply_is_looked_up_and_the_late_reply_changes_nothing(
    sim: Simulator,
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = OutboxConfig(reply_timeout=0.2)
    async with trading(sim, outbox=config) as conn, conn.events() as events:
        sim.faults.delay_replies(0.6)
        ack = await conn.place(bid(1))
        assert ack.source in (AckSource.ORDER_CHANNEL, AckSource.REST)
        assert ack.order_id in engine_orders(sim)
        frames = conn.stats().frames_in
        await wait_until(lambda: conn.stats().frames_in > frames)  # the late reply
        sim.faults.delay_replies(0)
        again = await conn.place(bid(2))
        assert again.source is AckSource.REPLY
        seen: list[ConnectionEvent] = []
        while True:
            try:
                seen.append(events.receive_nowait())  # type: ignore[arg-type]
            except trio.WouldBlock:
                break
        assert not [e for e in seen if e.kind == "unsolicited_reply"]
        assert conn.outbox_stats().reconciled == 1


async def test_an_overdue_reply_without_a_trace_stays_unknown_until_the_order_shows(
    sim: Simulator,
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = OutboxConfig(reply_timeout=0.2)
    async with trading(sim, outbox=config) as conn:
        assert sim.faults.stall(1.0) == 1  # the command waits unprocessed, then goes through
        start = trio.current_time()
        # No trace at the first lookup proves nothing while the recvWindow is open: the outbox
        # keeps looking, and the order's notice settles it once the exchange reads the frame.
        ack = await conn.place(bid(1))
        elapsed = trio.current_time() - start
        assert 1.0 <= elapsed < 1.1  # settled the moment the exchange read the frame
        assert ack.source in (AckSource.REPLY, AckSource.ORDER_CHANNEL)  # whichever came first
        assert list(engine_orders(sim)) == [ack.order_id]
        await wait_until(lambda: tracked(conn) == engine_orders(sim))


async def test_unsent_requests_give_up_after_their_send_timeout(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        sim.faults.refuse_connections(1.0)
        sim.faults.drop_all()
        await conn.wait_state(ConnectionState.RECONNECTING)
        start = trio.current_time()
        with pytest.raises(OrderNotApplied) as info:
            await conn.place(bid(1), send_timeout=0.2)
        assert not info.value.sent
        elapsed = trio.current_time() - start
        assert 0.2 <= elapsed < 0.25  # at its send timeout, not at the reconnection
        outcomes = await conn.place_many([bid(2), bid(3)], send_timeout=0.1)
        assert all(isinstance(o, OrderNotApplied) and not o.sent for o in outcomes)
        await conn.wait_state(ConnectionState.CONNECTED)
        assert everything(sim) == []
        assert conn.outbox_stats().queued == 0


async def test_without_rest_only_the_order_channel_can_tell(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim, rest=False, heartbeat=QUICK_HEARTBEAT) as conn:
        assert not conn.orders.synced
        sim.faults.delay_replies(10)  # processed at once, answered much later
        result: list[PlaceAck | FlexconnError] = []

        async def place() -> None:
            result.extend(await conn.place_many([bid(i) for i in range(3)]))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(place)
            await wait_until(lambda: len(conn.orders) == 3)  # the notices are not delayed
            sim.faults.drop_all()
        assert [o.source for o in result if isinstance(o, PlaceAck)] == [
            AckSource.ORDER_CHANNEL
        ] * 3
        sim.faults.delay_replies(0)
        await wait_until(
            lambda: conn.stats().reconnects == 1 and conn.state is ConnectionState.CONNECTED
        )
        assert sim.faults.stall() == 1
        with pytest.raises(OrderOutcomeUnknown, match="no REST client"):
            await conn.place(bid(9))
        assert len(engine_orders(sim)) == 3


async def test_closing_the_connection_settles_waiting_callers(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    outcome: list[object] = []
    async with trio.open_nursery() as outer, trading(sim) as conn:
        sim.faults.refuse_connections(30)
        sim.faults.drop_all()
        await conn.wait_state(ConnectionState.RECONNECTING)

        async def waiting() -> None:
            try:
                outcome.append(await conn.place(bid(1), send_timeout=60))
            except FlexconnError as exc:
                outcome.append(exc)

        outer.start_soon(waiting)
        await wait_until(lambda: conn.outbox_stats().queued == 1)
    assert len(outcome) == 1
    error = outcome[0]
    assert isinstance(error, OrderNotApplied) and not error.sent
    with pytest.raises(ConnectionClosed):
        await conn.place(bid(2))


async def test_reconciliation_is_bounded_and_the_open_orders_resync_afterwards(
    sim: Simulator,
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = OutboxConfig(reconcile_timeout=0.2)
    async with trading(sim, outbox=config) as conn:
        # Replies held back (notices are not), the socket dies after one frame, and on the next
        # socket every reply, REST ones included, comes half a second late.
        sim.faults.delay_replies(0.5)
        sim.faults.drop_after(1)
        outcomes = await conn.place_many([bid(i) for i in range(3)])
        assert isinstance(outcomes[0], PlaceAck)
        assert outcomes[0].source is AckSource.ORDER_CHANNEL
        for outcome in outcomes[1:]:
            assert isinstance(outcome, OrderOutcomeUnknown) and "after 0.2 s" in str(outcome)
        await reconnected(conn, 1)  # the seed also gave up after 0.2 s
        assert not conn.orders.synced
        await wait_until(lambda: conn.orders.synced)  # re-seeded once the session runs
        assert tracked(conn) == engine_orders(sim) and len(engine_orders(sim)) == 3
        sim.faults.delay_replies(0)


async def test_failing_lookups_are_retried_then_resync_later(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        # Every retry of the seed and of the first lookup fails; the next lookup succeeds.
        sim.faults.fail_next("GET /v2/orders", "20001", times=6)
        sim.faults.drop_after(1)
        outcomes = await conn.place_many([bid(i) for i in range(3)])
        assert all(isinstance(o, PlaceAck) for o in outcomes)
        assert [o.source for o in outcomes if isinstance(o, PlaceAck)][1:] == [AckSource.REST] * 2
        assert_place_outcomes_are_true(sim, outcomes)
        await wait_until(lambda: conn.orders.synced)
        assert tracked(conn) == engine_orders(sim) and len(engine_orders(sim)) == 3


async def test_a_failing_rest_leaves_lost_replies_unknown(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim, outbox=OutboxConfig(reconcile_timeout=0.5)) as conn:
        sim.faults.fail_next("GET /v2/orders", "20001", times=1000)
        sim.faults.drop_after(1)
        outcomes = await conn.place_many([bid(i) for i in range(3)])
        assert isinstance(outcomes[0], PlaceAck)
        for outcome in outcomes[1:]:
            assert isinstance(outcome, OrderOutcomeUnknown), outcome
            assert "looking it up failed" in str(outcome)
        assert len(engine_orders(sim)) == 3
