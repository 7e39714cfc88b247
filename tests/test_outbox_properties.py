"""Hypothesis drives random interleavings of places (some crossing, so orders fill), cancels,
modifies and connection faults through a real connection to the simulator; every caller gets
exactly one outcome per request, each outcome is the truth, the exchange never holds a
duplicate order, and ``conn.orders`` ends equal to the exchange's open orders."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
import trio
import trio.lowlevel
from hypothesis import HealthCheck, given, settings

from flexconn.auth import Credentials
from flexconn.config import Heartbeat, ReconnectPolicy
from flexconn.connection import Connection, ConnectionState, open_connection
from flexconn.errors import (
    ExchangeError,
    FlexconnError,
    OrderAlreadyClosed,
    OrderNotApplied,
    OrderOutcomeUnknown,
)
from flexconn.models.enums import OrderStatus, Side
from flexconn.models.orders import CancelOrder, LimitOrder
from flexconn.outbox import CancelAck, ModifyAck, OutboxConfig, PlaceAck
from flexconn.rest import RestClient
from flexconn.sim import Simulator, serve

D = Decimal
MARKET = "ETH-USD-SWAP-LIN"
ACCOUNT = "1001"
FAST_RETRY = ReconnectPolicy(initial_delay=0.02, max_delay=0.1)
# Re-arming drop_after can leave a server connection that reads but never writes again: a
# quick heartbeat notices that as a dead socket long before a reply deadline.
QUICK_HEARTBEAT = Heartbeat(interval=0.3, timeout=0.3)
# Short windows keep the run quick: "not applied" is proved 0.35 s after a command is written.
SHORT_WINDOWS = OutboxConfig(recv_window_ms=300, clock_skew_margin_ms=50)

Op = tuple[Any, ...]
places = st.tuples(
    st.just("place"),
    st.integers(1, 25),
    st.sampled_from([Side.BUY, Side.SELL]),
    st.integers(0, 8),  # price offset: buys 3000.00+, sells 3000.20-: some cross
)
cancels = st.tuples(st.just("cancel"), st.integers(0, 50), st.integers(1, 4))
modifies = st.tuples(st.just("modify"), st.integers(0, 50), st.booleans())
faults = st.one_of(
    st.tuples(st.just("drop")),
    st.tuples(st.just("drop_after"), st.integers(0, 40)),
)
programs = st.lists(
    st.tuples(st.one_of(places, places, cancels, modifies, faults), st.integers(0, 3)),
    min_size=3,
    max_size=9,
)


def order_for(side: Side, offset: int, n: int) -> LimitOrder:
    if side is Side.BUY:
        price = D("3000.00") + D("0.05") * ((offset + n) % 5)
    else:
        price = D("3000.20") - D("0.05") * ((offset + n) % 5)
    return LimitOrder(MARKET, side, D("0.01"), price)


async def wait_until(predicate: Callable[[], bool], seconds: float = 10) -> None:
    with trio.fail_after(seconds):
        while not predicate():  # noqa: ASYNC110 - state owned by other tasks
            await trio.sleep(0.01)


class Run:
    """Executes one program and records every request's outcome."""

    def __init__(self, sim: Simulator, conn: Connection) -> None:
        self.sim = sim
        self.conn = conn
        self.expected: dict[int, int] = {}  # op index -> requests it made
        self.outcomes: dict[int, list[object]] = {}
        #: (request, outcome) pairs of every cancel and modify.
        self.changes: list[tuple[object, object]] = []

    def targets(self, start: int, count: int) -> list[int]:
        known = sorted(self.conn.orders) or [424242]
        return [known[(start + i) % len(known)] for i in range(count)]

    async def op(self, index: int, op: Op) -> None:
        conn = self.conn
        kind = op[0]
        results: list[object]
        if kind == "place":
            _, count, side, offset = op
            self.expected[index] = count
            if count == 1:
                results = [await _single(conn.place(order_for(side, offset, 0)))]
            else:
                results = list(
                    await conn.place_many([order_for(side, offset, n) for n in range(count)])
                )
        elif kind == "cancel":
            _, start, count = op
            self.expected[index] = count
            requests = [CancelOrder(MARKET, i) for i in self.targets(start, count)]
            results = list(await conn.cancel_many(requests))
            self.changes += zip(requests, results, strict=True)
        else:
            _, start, by_price = op
            self.expected[index] = 1
            (target,) = self.targets(start, 1)
            change: dict[str, Any] = (
                {"price": D("2999.50")} if by_price else {"quantity": D("0.01")}
            )
            results = [await _single(conn.modify(target, MARKET, **change))]
            self.changes.append((target, results[0]))
        self.outcomes.setdefault(index, []).extend(results)


async def _single(call: Any) -> object:
    try:
        result: object = await call
    except FlexconnError as exc:
        return exc
    return result


def everything(sim: Simulator) -> list[Any]:
    engine = sim.exchange.engine
    return [*engine.order_history(ACCOUNT), *engine.open_orders(ACCOUNT)]


def check_truth(run: Run) -> None:
    sim = run.sim
    assert run.outcomes.keys() == run.expected.keys()
    for index, count in run.expected.items():
        assert len(run.outcomes[index]) == count, "a caller got no outcome, or several"
    by_cid: dict[int | None, set[int]] = {}
    for order in everything(sim):
        by_cid.setdefault(order.client_order_id, set()).add(order.order_id)
    originals = [
        o.client_order_id for o in everything(sim) if o.status.value != "CANCELED_BY_AMEND"
    ]
    assert len(originals) == len(set(originals)), "an order was placed twice"
    statuses = {o.order_id: o.status for o in everything(sim)}
    for results in run.outcomes.values():
        for outcome in results:
            assert isinstance(
                outcome,
                PlaceAck | CancelAck | ModifyAck | ExchangeError | OrderNotApplied,
            ) or (
                # Honest doubt: a cancel of a still-open order (no recvWindow), or a modify of
                # an order that closed before REST could tell whether the modify touched it.
                isinstance(outcome, OrderOutcomeUnknown)
                and ("cancel" in str(outcome) or "modify may have changed" in str(outcome))
            ), outcome
            if isinstance(outcome, PlaceAck):
                assert outcome.order_id in by_cid.get(outcome.client_order_id, set())
            if isinstance(outcome, OrderNotApplied) and outcome.sent:
                assert outcome.args
    for _request, outcome in run.changes:
        # Every confirmed change is the exchange's truth.
        if isinstance(outcome, CancelAck):
            assert outcome.confirmed
            assert statuses.get(outcome.order_id) is OrderStatus.CANCELED_BY_USER
        elif isinstance(outcome, ModifyAck):
            assert outcome.confirmed
            if outcome.replaced_by is not None:
                assert statuses.get(outcome.order_id) is OrderStatus.CANCELED_BY_AMEND
                assert outcome.replaced_by in statuses
        elif isinstance(outcome, OrderAlreadyClosed):
            assert statuses.get(outcome.order_id) not in (None, OrderStatus.OPEN)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(program=programs)
async def test_random_interleavings_with_faults_settle_every_request_truthfully(
    program: list[tuple[Op, int]],
) -> None:
    async with serve(participants_rate=None) as sim:
        assert sim.rest_url is not None
        key = Credentials(sim.demo_key.api_key, sim.demo_key.api_secret)
        async with (
            RestClient(sim.rest_url, key) as rest,
            open_connection(
                sim.ws_url,
                credentials=key,
                rest=rest,
                reconnect=FAST_RETRY,
                heartbeat=QUICK_HEARTBEAT,
                outbox=SHORT_WINDOWS,
            ) as conn,
        ):
            run = Run(sim, conn)
            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    for index, (op, pause) in enumerate(program):
                        if op[0] == "drop":
                            sim.faults.drop_all()
                        elif op[0] == "drop_after":
                            sim.faults.drop_after(op[1])
                        else:
                            nursery.start_soon(run.op, index, op)
                        for _ in range(pause):
                            await trio.lowlevel.checkpoint()
            check_truth(run)
            sim.faults.drop_after(10**9)  # disarm a pending countdown

            def settled() -> bool:
                # connected on the one socket the server has open, the newest it accepted
                accepted = sim.ws_server.statistics().connections_accepted
                return (
                    conn.state is ConnectionState.CONNECTED
                    and sim.faults.connection_count == 1
                    and conn.stats().reconnects == accepted - 1
                )

            await wait_until(settled)
            truth = {o.order_id: o.remaining for o in sim.exchange.engine.open_orders(ACCOUNT)}
            await wait_until(
                lambda: {i: o.remaining_quantity for i, o in conn.orders.items()} == truth
            )
