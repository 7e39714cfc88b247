"""The order outbox against the simulator over real loopback sockets: acknowledgements, batching,
correlation under reordering, every rejection as its exception, and rate limiting.

On trio's MockClock with the simulator on the shared wall clock (``helpers.wall_ms``), except the
two pacing tests against real limits, which run on the real clock (see their docstrings)."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import attrs
import orjson
import pytest
import trio
import trio.testing
from helpers import ACCOUNT, engine_orders, tracked, trading, wait_until, wall_ms

from flexconn import errors
from flexconn.auth import Credentials
from flexconn.connection import open_connection
from flexconn.errors import ExchangeError, FlexconnError, LocalProtocolError, ValidationError
from flexconn.models.enums import OrderType, Side, TimeInForce
from flexconn.models.orders import CancelOrder, LimitOrder, MarketOrder, ModifyOrder, StopLimitOrder
from flexconn.outbox import AckSource, CancelAck, ModifyAck, OutboxConfig, PlaceAck
from flexconn.sim import RateLimits, Simulator, serve
from flexconn.transport import Transport, open_trio_websocket

D = Decimal
MARKET = "BTC-USD-SWAP-LIN"


@pytest.fixture
def sim(wall_sim: Simulator) -> Simulator:
    return wall_sim


def bid(i: int = 0, quantity: str = "0.001", **kwargs: Any) -> LimitOrder:
    return LimitOrder(MARKET, Side.BUY, D(quantity), D(30000) + i, **kwargs)


def client_ids(sim: Simulator) -> list[int | None]:
    engine = sim.exchange.engine
    everything = [*engine.order_history(ACCOUNT), *engine.open_orders(ACCOUNT)]
    return [o.client_order_id for o in everything]


# -- the round trip ------------------------------------------------------------------------------


async def test_place_modify_cancel_round_trip_and_order_state(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        assert conn.orders.synced and len(conn.orders) == 0
        ack = await conn.place(bid(quantity="0.002", time_in_force=TimeInForce.GTC))
        assert isinstance(ack, PlaceAck) and ack.source is AckSource.REPLY
        first = ack.order_id
        assert first is not None and ack.client_order_id > 0
        order = sim.exchange.engine.get_order(first)
        assert order is not None and order.client_order_id == ack.client_order_id
        await wait_until(lambda: first in conn.orders)
        assert conn.orders[first].price == D(30000)

        reduced = await conn.modify(first, MARKET, quantity=D("0.001"))
        assert isinstance(reduced, ModifyAck) and reduced.order_id == first
        await wait_until(lambda: conn.orders[first].remaining_quantity == D("0.001"))
        assert conn.orders.successor(first) == first  # same id, same place
        moved = await conn.modify(first, MARKET, price=D(30100))
        assert moved.reply is not None and moved.reply.submitted
        await wait_until(lambda: conn.orders.successor(first) != first)
        new_id = conn.orders.successor(first)
        assert conn.orders[new_id].price == D(30100)
        assert conn.orders[new_id].client_order_id == ack.client_order_id
        assert tracked(conn) == engine_orders(sim)

        cancelled = await conn.cancel(MARKET, new_id)
        assert isinstance(cancelled, CancelAck) and cancelled.order_id == new_id
        assert cancelled.client_order_id == ack.client_order_id
        await wait_until(lambda: not conn.orders)
        assert engine_orders(sim) == {}
        stats = conn.outbox_stats()
        assert (stats.commands_sent, stats.orders_sent, stats.rate_limited) == (4, 4, 0)
        assert (stats.queued, stats.in_flight, stats.unknown) == (0, 0, 0)


async def test_market_and_stop_limit_orders(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        resting = await conn.place(LimitOrder(MARKET, Side.SELL, D("0.003"), D(50000)))
        taken = await conn.place(MarketOrder(MARKET, Side.BUY, D("0.001")))
        assert taken.order_id is not None and taken.order_id != resting.order_id
        assert resting.order_id is not None
        await wait_until(lambda: conn.orders.get(resting.order_id or 0) is not None)
        await wait_until(
            lambda: conn.orders[resting.order_id or 0].remaining_quantity == D("0.002")
        )
        stop = await conn.place(
            StopLimitOrder(MARKET, Side.BUY, D("0.001"), stop_price=D(60000), limit_price=D(60001))
        )
        assert stop.order_id is not None
        await wait_until(lambda: stop.order_id in conn.orders)
        assert conn.orders[stop.order_id].order_type is OrderType.STOP
        assert tracked(conn) == engine_orders(sim)
        with pytest.raises(errors.InvalidOrderError) as info:
            await conn.modify(stop.order_id, MARKET, price=D(60000))  # an untriggered stop
        assert info.value.code == "20017"


# -- batching ------------------------------------------------------------------------------------


async def test_place_many_leaves_in_commands_of_twenty(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        before = conn.stats().frames_out
        outcomes = await conn.place_many([bid(i) for i in range(45)])
        assert conn.stats().frames_out - before == 3
        assert all(isinstance(o, PlaceAck) for o in outcomes)
        acks = [o for o in outcomes if isinstance(o, PlaceAck)]
        assert [a.order for a in acks] == [
            bid(i, client_order_id=a.client_order_id) for i, a in enumerate(acks)
        ]
        for ack in acks:
            assert ack.order_id is not None
            engine_order = sim.exchange.engine.get_order(ack.order_id)
            assert engine_order is not None and engine_order.client_order_id == ack.client_order_id
        assert conn.outbox_stats().commands_sent == 3


async def test_long_orders_split_at_the_message_length_limit(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    # Exact decimals, written out in full: about 440 bytes per order with its timestamp and
    # recvWindow, so nine fit under the 4096-byte limit.
    orders = [
        LimitOrder(MARKET, Side.BUY, D("0.001" + "0" * 120), D(f"{30000 + i}.{'0' * 120}"))
        for i in range(20)
    ]
    async with trading(sim) as conn:
        before = conn.stats().frames_out
        outcomes = await conn.place_many(orders)
        assert conn.stats().frames_out - before == 3
        assert all(isinstance(o, PlaceAck) for o in outcomes)  # no 20027 refusal
        assert len(engine_orders(sim)) == 20


async def test_concurrent_lone_calls_coalesce_into_few_commands(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    acks: list[PlaceAck] = []

    async with trading(sim) as conn:

        async def one(i: int) -> None:
            acks.append(await conn.place(bid(i)))

        first = await conn.place(bid(99))  # idle: a lone request leaves at once, alone
        assert first.reply is not None and first.reply.tag is not None
        before = conn.stats().frames_out
        async with trio.open_nursery() as nursery:
            for i in range(30):
                nursery.start_soon(one, i)
        assert conn.stats().frames_out - before <= 3
        assert len({a.order_id for a in acks}) == 30
        assert len({a.client_order_id for a in acks}) == 30


# -- correlation ---------------------------------------------------------------------------------


class Reordering:
    """A transport that holds order replies back and hands them over in reverse, dropping the
    tag of failure replies, while every other frame (order notices...) passes at once."""

    def __init__(self, inner: Transport, hold: int) -> None:
        self.inner = inner
        self.hold = hold
        self.held: list[str] = []
        self.ready: deque[str] = deque()

    async def receive(self) -> str:
        while not self.ready:
            frame = await self.inner.receive()
            message = orjson.loads(frame) if frame.startswith("{") else None
            event = message.get("event") if isinstance(message, dict) else None
            if event not in ("placeorder", "cancelorder", "modifyorder"):
                return frame
            assert isinstance(message, dict)
            if not message.get("submitted"):
                message.pop("tag", None)
                frame = orjson.dumps(message).decode()
            self.held.append(frame)
            if len(self.held) >= self.hold:
                self.ready.extend(reversed(self.held))
                self.held.clear()
        return self.ready.popleft()

    async def send(self, text: str) -> None:
        await self.inner.send(text)

    async def ping(self) -> None:
        await self.inner.ping()

    async def aclose(self, reason: str = "") -> None:
        await self.inner.aclose(reason)


def reordering(hold: int) -> Any:
    @asynccontextmanager
    async def factory(url: str, **kwargs: Any) -> AsyncIterator[Transport]:
        async with open_trio_websocket(url, **kwargs) as inner:
            yield Reordering(inner, hold)

    return factory


async def test_replies_reversed_untagged_and_interleaved_reach_their_callers(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    orders: list[LimitOrder] = []
    expected: dict[int, type[FlexconnError] | None] = {}
    for i in range(20):
        if i % 5 == 1:
            orders.append(LimitOrder(MARKET, Side.BUY, D("0.001"), D(20000 + i)))
            expected[i] = errors.PriceBoundError
        elif i % 5 == 3:
            orders.append(bid(i, quantity="0.0001"))
            expected[i] = errors.InvalidOrderError
        else:
            orders.append(bid(i))
            expected[i] = None
    async with trading(sim, transport=reordering(hold=20)) as conn:
        outcomes = await conn.place_many(orders)
    for i, outcome in enumerate(outcomes):
        kind = expected[i]
        if kind is None:
            assert isinstance(outcome, PlaceAck), (i, outcome)
            assert outcome.order == attrs.evolve(orders[i], client_order_id=outcome.client_order_id)
            assert outcome.order_id is not None
            engine_order = sim.exchange.engine.get_order(outcome.order_id)
            assert engine_order is not None and engine_order.price == orders[i].price
        else:
            assert type(outcome) is kind, (i, outcome)
    resting = {o.price for o in sim.exchange.engine.open_orders(ACCOUNT)}
    assert resting == {orders[i].price for i in range(20) if expected[i] is None}


# -- rejections ----------------------------------------------------------------------------------

ENGINE_REJECTIONS = [
    ("710002", errors.PriceBoundError, LimitOrder(MARKET, Side.BUY, D("0.001"), D(20000))),
    ("710003", errors.PriceBoundError, LimitOrder(MARKET, Side.SELL, D("0.001"), D(200000))),
    ("710006", errors.InsufficientFundsError, LimitOrder("BTC-USD", Side.BUY, D(100), D(50000))),
    ("20006", errors.InvalidOrderError, bid(quantity="0.0001")),
    ("20021", errors.InvalidOrderError, LimitOrder(MARKET, Side.BUY, D("0.001"), D("30000.25"))),
    ("20015", errors.InvalidOrderError, LimitOrder("NOPE-USD", Side.BUY, D(1), D(1))),
    ("710005", errors.InsufficientFundsError, bid(quantity="400")),
]


@pytest.mark.parametrize(("code", "cls", "order"), ENGINE_REJECTIONS)
async def test_engine_rejections_raise_their_exception(
    sim: Simulator,
    code: str,
    cls: type[ExchangeError],
    order: LimitOrder,
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trading(sim) as conn:
        with pytest.raises(cls) as info:
            await conn.place(order)
        assert type(info.value) is cls
        assert info.value.code == code and info.value.message
        assert engine_orders(sim) == {}


INJECTED = [
    ("placeorder", "20031", errors.MarketUnavailableError),
    ("placeorder", "20032", errors.ServerError),
    ("placeorder", "05001", errors.PermissionDenied),
    ("placeorder", "300011", errors.MarketUnavailableError),
    ("cancelorder", "100006", errors.OrderNotFoundError),
    ("cancelorder", "20001", errors.ServerError),
    ("modifyorder", "710004", errors.InsufficientFundsError),
    ("modifyorder", "710003", errors.PriceBoundError),
]


@pytest.mark.parametrize(("op", "code", "cls"), INJECTED)
async def test_injected_failures_raise_their_exception_with_code_and_message(
    sim: Simulator,
    op: str,
    code: str,
    cls: type[ExchangeError],
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trading(sim) as conn:
        ack = await conn.place(bid())
        assert ack.order_id is not None
        sim.faults.fail_next(op, code, "injected refusal")
        with pytest.raises(cls) as info:
            if op == "placeorder":
                await conn.place(bid(1))
            elif op == "cancelorder":
                await conn.cancel(MARKET, ack.order_id)
            else:
                await conn.modify(ack.order_id, MARKET, price=D(30001))
        assert type(info.value) is cls
        assert (info.value.code, info.value.message) == (code, "injected refusal")
        assert engine_orders(sim) == {ack.order_id: D("0.001")}


async def test_cancel_and_modify_of_unknown_orders_raise_order_not_found(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        with pytest.raises(errors.OrderNotFoundError) as cancel_info:
            await conn.cancel(MARKET, 123456)
        assert cancel_info.value.code == "100005"
        outcomes = await conn.modify_many(
            [ModifyOrder(MARKET, 123456, price=D(30000)), ModifyOrder(MARKET, 654321, price=D(1))]
        )
        assert [type(o) for o in outcomes] == [errors.OrderNotFoundError] * 2


async def test_a_partly_refused_batch_keeps_every_ack(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        placed = await conn.place_many([bid(1), bid(2)])
        ids = [o.order_id for o in placed if isinstance(o, PlaceAck) and o.order_id is not None]
        assert len(ids) == 2
        cancels = [
            CancelOrder(MARKET, ids[0]),
            CancelOrder(MARKET, 999),
            CancelOrder(MARKET, ids[1]),
        ]
        outcomes = await conn.cancel_many(cancels)
        assert isinstance(outcomes[0], CancelAck) and isinstance(outcomes[2], CancelAck)
        assert isinstance(outcomes[1], errors.OrderNotFoundError)
        assert engine_orders(sim) == {}


async def test_local_misuse_raises_before_anything_is_sent(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        before = conn.stats().frames_out
        with pytest.raises(ValidationError):
            await conn.place(LimitOrder(MARKET, Side.BUY, D(0), D(30000)))
        with pytest.raises(ValidationError, match="already used"):
            await conn.place_many([bid(1, client_order_id=7), bid(2, client_order_id=7)])
        await conn.place(bid(3, client_order_id=8))
        with pytest.raises(ValidationError, match="already used"):
            await conn.place(bid(4, client_order_id=8))
        assert conn.stats().frames_out - before == 1
        assert await conn.place_many([]) == []
    async with open_connection(sim.ws_url) as anonymous:
        with pytest.raises(LocalProtocolError, match="credentials"):
            await anonymous.place(bid())
        assert len(anonymous.orders) == 0


async def test_a_read_only_key_gets_permission_denied(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    key = sim.read_only_key
    async with open_connection(
        sim.ws_url, credentials=Credentials(key.api_key, key.api_secret), wall_ms=wall_ms
    ) as conn:
        with pytest.raises(errors.PermissionDenied) as info:
            await conn.place(bid())
        assert info.value.code == "05001"


async def test_acks_carry_what_the_exchange_answered_not_what_was_asked(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with trading(sim) as conn:
        await trio.sleep(5)  # the exchange's clock has moved on since the session began
        ack = await conn.place(bid(7))  # no order id, no client order id: the exchange's own
        (order,) = sim.exchange.engine.open_orders(ACCOUNT)
        assert ack.order_id == order.order_id
        assert ack.client_order_id == order.client_order_id
        assert ack.reply is not None and ack.reply.data is not None
        assert ack.reply.data.order_id == order.order_id
        assert ack.reply.timestamp == order.timestamp == wall_ms()  # the exchange's clock
        await trio.sleep(1)
        # A cancel names the order id only: the client order id comes from the exchange.
        cancel = await conn.cancel(MARKET, ack.order_id)
        assert cancel.client_order_id == order.client_order_id
        assert cancel.reply is not None and cancel.reply.timestamp == wall_ms()
        assert cancel.reply.timestamp != ack.reply.timestamp
        (closed,) = sim.exchange.engine.order_history(ACCOUNT)
        assert (closed.order_id, closed.status.value) == (order.order_id, "CANCELED_BY_USER")


# -- rate limits ---------------------------------------------------------------------------------


async def test_normal_operation_never_provokes_20007() -> None:
    """Default limits on both sides: 120 orders at once exceed the 50 orders/s allowance.

    On the real clock: on MockClock the sender's pacing spins (the order bucket's delay can be
    ~1e-17 s, which a mock clock never passes). Its bound is a lower one, so load cannot fail it.
    """
    async with (
        serve(participants_rate=None) as sim,
        trading(sim, shared_clock=False) as conn,
    ):
        start = trio.current_time()
        outcomes = await conn.place_many([bid(i) for i in range(120)])
        elapsed = trio.current_time() - start
        assert all(isinstance(o, PlaceAck) for o in outcomes)
        assert conn.outbox_stats().rate_limited == 0
        assert elapsed >= 70 / 50  # paced: beyond the first 50, at most 50 orders a second
        assert len(engine_orders(sim)) == 120


async def test_injected_20007_is_retried_without_loss_or_duplicates(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    config = OutboxConfig(rate_limit_backoff=0.05)
    async with trading(sim, outbox=config) as conn:
        sim.faults.fail_next("placeorder", "20007", times=3)
        outcomes = await conn.place_many([bid(i) for i in range(5)])
        assert all(isinstance(o, PlaceAck) for o in outcomes)
        assert conn.outbox_stats().rate_limited == 3
        ids = client_ids(sim)
        assert len(ids) == 5 and len(set(ids)) == 5


async def test_real_20007_from_the_per_account_limit_is_retried_until_placed() -> None:
    """The client believes the account may send 50 orders/s; the simulator allows 10.

    On the real clock (the simulator's per-account limit is charged against real time)."""
    config = OutboxConfig(orders_per_second=None, rate_limit_backoff=0.2, max_rate_limit_retries=20)
    limits = RateLimits(orders_per_account=10)
    async with (
        serve(participants_rate=None, rate_limits=limits) as sim,
        trading(sim, outbox=config, shared_clock=False) as conn,
    ):
        outcomes = await conn.place_many([bid(i) for i in range(30)])
        assert all(isinstance(o, PlaceAck) for o in outcomes), outcomes
        assert conn.outbox_stats().rate_limited >= 20
        ids = client_ids(sim)
        assert len(ids) == 30 and len(set(ids)) == 30
        await wait_until(lambda: len(conn.orders) == 30)
        assert tracked(conn) == engine_orders(sim)


async def test_retries_are_bounded_then_the_rate_limit_error_is_the_outcome(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    config = OutboxConfig(rate_limit_backoff=0.01, max_rate_limit_retries=2)
    async with trading(sim, outbox=config) as conn:
        sim.faults.fail_next("placeorder", "20007", times=3)
        with pytest.raises(errors.RateLimitError) as info:
            await conn.place(bid())
        assert info.value.code == "20007"
        assert client_ids(sim) == []
