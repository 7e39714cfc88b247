"""Chaos: every order outcome the client reports, checked against the exchange's own truth.

Three seeded scenarios, each on trio's ``MockClock`` with the simulator in-process (and a wall
clock that jumps with it, so command timestamps and the exchange's recvWindow check run on
virtual time), each over both transports and every seed of ``FLEXCONN_CHAOS_SEEDS``:

* **modify storm**: several modifies of one order id in flight at once, some in place (a lower
  quantity), some re-pricing (a replacement), while the simulator loses replies (a drop after a
  few frames, a drop at once, late replies, a short stall);
* **cancels racing fills**: a second account takes the resting order (fully or partly) before,
  while and after its cancel is in flight, sometimes with the cancel held in a stalled socket,
  sometimes cancelled twice, with replies lost the same ways;
* **half-open stalls**: the simulator stops reading the trading connection (or the chaos proxy,
  through which every run's WebSocket passes, holds its bytes); places, modifies and cancels are
  written into it; the client's heartbeat declares it dead and reconnects; the
  simulator resumes the old connection at a seeded moment (before the client notices, inside
  the commands' recvWindow, around its end, long after) and executes what was buffered.
  A place or modify that ended ``OrderNotApplied`` is then sent again, as a caller would.

At the end the exchange is made quiet (stalls lifted, every recvWindow long past, abandoned
connections drained) and :func:`chaos.helpers.check_outcomes` holds every outcome against the
engine's record of the commands it ran: no duplicate order, every ack earned by the engine
command it names, every ``OrderNotApplied`` and refusal true, every ``OrderAlreadyClosed``
naming an order the engine closed, one outcome per request.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import partial
from urllib.parse import urlsplit

import attrs
import trio
import trio.testing
from helpers import all_tasks

from chaos.helpers import (
    ExchangeLedger,
    OutcomeSummary,
    Requests,
    VirtualWallClock,
    channel_ids,
    check_outcomes,
    open_channels,
    quiesce,
)
from flexconn.auth import Credentials
from flexconn.config import Heartbeat, ReconnectPolicy
from flexconn.connection import Connection, ConnectionState, open_connection
from flexconn.errors import OrderNotApplied
from flexconn.models.enums import OrderType, Side, TimeInForce
from flexconn.models.orders import LimitOrder
from flexconn.outbox import PlaceAck
from flexconn.rest import RestClient
from flexconn.sim import DEFAULT_MARKETS, Simulator, serve
from flexconn.sim.chaos import ChaosProxy, open_chaos_proxy
from flexconn.sim.ws_server import WsOptions
from flexconn.transport import TransportFactory

MARKET = "BTC-USD-SWAP-LIN"
SPEC = next(m for m in DEFAULT_MARKETS if m.market_code == MARKET)
TICK = SPEC.tick_size
LOT = SPEC.qty_increment
#: The trader's orders are BUYs resting around here (the book is otherwise empty: the engine's
#: reference price is 50000), so they never trade with each other.
BASE_PRICE = Decimal(49_000)
#: A second account that takes the trader's orders (in-process, as a participant would).
TAKER = "2002"
HEARTBEAT = Heartbeat(interval=1.0, timeout=1.0)
RETRY = ReconnectPolicy(initial_delay=0.1, max_delay=1.0, connect_timeout=5.0)
#: Rounds per scenario run.
ROUNDS = 6
#: Virtual seconds a round's requests have to end: reply timeout plus reconcile timeout, with
#: room. A request cut off by it has no outcome, which the check reports.
OUTCOME_BOUND = 120.0
#: Past every command's recvWindow (3 s by default) plus the clock-skew margin (1 s), with room.
PAST_WINDOW = 10.0
#: The client's login is signed with the real clock while the exchange's runs virtual.
WS_OPTIONS = WsOptions(login_window_ms=24 * 3600 * 1000)


@attrs.define
class Bench:
    """One run's simulator, connection and records."""

    sim: Simulator
    proxy: ChaosProxy  # every WebSocket byte passes it (it breaks nothing unless told)
    conn: Connection
    ledger: ExchangeLedger
    requests: Requests
    rng: random.Random
    cids: Iterator[int]

    @property
    def account(self) -> str:
        return self.sim.demo_key.account_id

    def limit(self, price: Decimal, lots: int) -> LimitOrder:
        return LimitOrder(MARKET, Side.BUY, LOT * lots, price, client_order_id=next(self.cids))

    def price(self, offset_ticks: int) -> Decimal:
        return BASE_PRICE + TICK * offset_ticks

    async def connected(self) -> None:
        with trio.fail_after(60):
            await self.conn.wait_state(ConnectionState.CONNECTED)

    async def resting(self, label: str, *, lots: int, price: Decimal) -> int | None:
        """Place a resting BUY; its order id, if it was placed (a fault armed in the round
        before, a drop after N more frames, may still take its reply: it is checked too)."""
        await self.connected()
        outcome = await self.requests.place(self.conn, self.limit(price, lots), label)
        return outcome.order_id if isinstance(outcome, PlaceAck) else None

    def take(self, price: Decimal, quantity: Decimal) -> None:
        """The second account sells ``quantity`` IOC at ``price`` into the trader's bids."""
        self.sim.exchange.engine.place(
            TAKER,
            market_code=MARKET,
            side=Side.SELL,
            order_type=OrderType.LIMIT,
            quantity=quantity,
            price=price,
            time_in_force=TimeInForce.IOC,
        )
        self.sim.exchange.flush()

    async def together(self, *calls: Callable[[], Awaitable[object]]) -> None:
        """Run the calls at once; each must reach its outcome within the bound."""
        with trio.move_on_after(OUTCOME_BOUND):
            async with trio.open_nursery() as nursery:
                for call in calls:
                    nursery.start_soon(call)


@asynccontextmanager
async def bench(
    transport: TransportFactory, seed: int, wall: VirtualWallClock
) -> AsyncIterator[Bench]:
    tasks_before = all_tasks()
    channels_before = channel_ids()
    async with serve(participants_rate=None, seed=seed, ws_options=WS_OPTIONS) as sim:
        assert sim.rest_url is not None
        ledger = ExchangeLedger.attach(sim)
        sim.exchange.open_account(TAKER, {"USD": Decimal(10**9), "BTC": Decimal(10**4)})
        creds = Credentials(sim.demo_key.api_key, sim.demo_key.api_secret)
        target = urlsplit(sim.ws_url)
        assert target.hostname is not None and target.port is not None
        async with (
            RestClient(sim.rest_url, creds, clock=wall.time) as rest,
            open_chaos_proxy(target.hostname, target.port, seed=seed) as proxy,
            open_connection(
                proxy.url(sim.ws_url),
                credentials=creds,
                heartbeat=HEARTBEAT,
                reconnect=RETRY,
                transport=transport,
                seed=seed,
                rest=rest,
            ) as conn,
        ):
            yield Bench(
                sim=sim,
                proxy=proxy,
                conn=conn,
                ledger=ledger,
                requests=Requests(MARKET),
                rng=random.Random(seed),
                cids=itertools.count(seed % 1_000_000 * 1_000 + 1),
            )
            proxy.resume()
            await quiesce(sim, past=PAST_WINDOW)
    assert all_tasks() == tasks_before, "a task outlived the connection"
    assert open_channels(channels_before) == []


def verdict(b: Bench) -> OutcomeSummary:
    summary = check_outcomes(b.requests.all, b.ledger)
    print(summary)  # shown with -rP: what the seed exercised
    return summary


def lose_replies(b: Bench, requests: int) -> Callable[[], object] | None:
    """Arm a seeded way to lose replies; returns a fault to apply once the requests are out."""
    kind = b.rng.choice(("none", "drop_after", "drop_now", "late", "stall"))
    faults = b.sim.faults
    if kind == "drop_after":
        faults.drop_after(b.rng.randint(0, 2 * requests), account_id=b.account)
    elif kind == "late":
        faults.delay_replies(b.rng.uniform(2.0, 15.0))
    elif kind == "stall":
        faults.stall(b.rng.uniform(0.2, 4.0), account_id=b.account)
    elif kind == "drop_now":
        return partial(faults.drop_all, account_id=b.account)
    return None


async def after(delay: float, action: Callable[[], object]) -> None:
    await trio.sleep(delay)
    action()


# --- modify storm ----------------------------------------------------------------------------


async def test_modify_storm_outcomes_are_the_exchange_s(
    transport: TransportFactory,
    chaos_seed: int,
    autojump_clock: trio.testing.MockClock,
    virtual_wall: VirtualWallClock,
) -> None:
    async with bench(transport, chaos_seed, virtual_wall) as b:
        for round_ in range(ROUNDS):
            rng = b.rng
            lots = rng.randint(4, 8)
            offset = rng.randint(-400, 400)
            target = await b.resting(f"storm {round_} order", lots=lots, price=b.price(offset))
            if target is None:
                continue
            calls = []
            shifts = rng.sample([s for s in range(-20, 21) if s], 6)
            lower = rng.sample(range(1, lots), lots - 1)  # distinct lower quantities, in lots
            for i in range(rng.randint(2, 5)):
                roll = rng.random()
                label = f"storm {round_} modify {i}"
                price = b.price(offset + shifts[i])
                if roll < 0.4 and lower:  # in place: a lower quantity
                    change = {"quantity": LOT * lower.pop()}
                elif roll < 0.8:  # a new price: a replacement
                    change = {"price": price}
                else:  # a new price and a larger quantity
                    change = {"price": price, "quantity": LOT * (lots + 1 + i)}
                calls.append(_modify_call(b, target, label, change))
            fault = lose_replies(b, len(calls))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(b.together, *calls)
                if fault is not None:
                    nursery.start_soon(after, rng.choice((0.0, 0.001, 0.01, 0.1)), fault)
            b.sim.faults.clear()
    summary = verdict(b)
    assert summary.counts.get("modify:ModifyAck", 0) >= 1, summary


def _modify_call(
    b: Bench, target: int, label: str, change: dict[str, Decimal], origin: str | None = None
) -> Callable[[], Awaitable[object]]:
    return lambda: b.requests.modify(
        b.conn,
        target,
        label,
        price=change.get("price"),
        quantity=change.get("quantity"),
        origin=origin,
    )


# --- cancels racing fills ----------------------------------------------------------------------


async def test_cancels_racing_fills_outcomes_are_the_exchange_s(
    transport: TransportFactory,
    chaos_seed: int,
    autojump_clock: trio.testing.MockClock,
    virtual_wall: VirtualWallClock,
) -> None:
    async with bench(transport, chaos_seed, virtual_wall) as b:
        # every timing in every run, the rest at random; full and partial fills alternate
        timings = ["before", "racing", "held", "held_long"]
        b.rng.shuffle(timings)
        timings += b.rng.choices(timings, k=ROUNDS - len(timings))
        for round_, timing in enumerate(timings):
            rng = b.rng
            lots = rng.randint(2, 6)
            price = b.price(rng.randint(-400, 400))
            target = await b.resting(f"race {round_} order", lots=lots, price=price)
            if target is None:
                continue
            fill = LOT * (lots if round_ % 2 else rng.randint(1, lots - 1))
            cancels = 2 if rng.random() < 0.25 else 1
            calls = [_cancel_call(b, target, f"race {round_} cancel {i}") for i in range(cancels)]
            if timing == "before":  # filled before the cancel leaves
                b.take(price, fill)
                fault = lose_replies(b, cancels)
                await _run(b, calls, fault)
            elif timing == "racing":  # filled a few scheduler passes after the cancel leaves
                fault = lose_replies(b, cancels)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_run, b, calls, fault)
                    nursery.start_soon(_fill_soon, b, rng.randint(0, 30), price, fill)
            else:  # the cancel waits in a stalled socket while the order fills
                b.sim.faults.stall(None, account_id=b.account)
                hold = 0.05 if timing == "held" else rng.uniform(2.5, 8.0)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_run, b, calls, None)
                    nursery.start_soon(_fill_then_resume, b, price, fill, hold)
            b.sim.faults.clear()
    summary = verdict(b)
    settled = summary.counts.get("cancel:CancelAck", 0)
    settled += summary.counts.get("cancel:OrderAlreadyClosed", 0)
    assert settled >= 1, summary
    assert b.sim.exchange.engine.account_trades(b.account), "no fill raced a cancel"


async def _fill_soon(b: Bench, passes: int, price: Decimal, fill: Decimal) -> None:
    """Fill after ``passes`` scheduler passes: the cancel is somewhere on its way."""
    for _ in range(passes):
        await trio.lowlevel.checkpoint()
    b.take(price, fill)


async def _fill_then_resume(b: Bench, price: Decimal, fill: Decimal, hold: float) -> None:
    """With the cancel held in the stalled socket: fill, then let the exchange read it."""
    await trio.sleep(0.01)
    b.take(price, fill)
    await trio.sleep(hold)
    b.sim.faults.resume()


def _cancel_call(b: Bench, target: int, label: str) -> Callable[[], Awaitable[object]]:
    return lambda: b.requests.cancel(b.conn, target, label)


async def _run(
    b: Bench, calls: list[Callable[[], Awaitable[object]]], fault: Callable[[], object] | None
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(b.together, *calls)
        if fault is not None:
            nursery.start_soon(after, b.rng.choice((0.0, 0.001, 0.01, 0.1)), fault)


# --- half-open stalls --------------------------------------------------------------------------

#: When the simulator resumes the stalled connection, in virtual seconds after the stall: before
#: the heartbeat notices, after the reconnect but inside the recvWindow, around its end (3 s
#: plus the skew margin), long after everything settled.
RESUME_AFTER = (0.3, 1.5, 2.5, 3.5, 4.5, 6.0, 15.0)


async def test_half_open_stall_buffered_frames_outcomes_are_the_exchange_s(
    transport: TransportFactory,
    chaos_seed: int,
    autojump_clock: trio.testing.MockClock,
    virtual_wall: VirtualWallClock,
) -> None:
    async with bench(transport, chaos_seed, virtual_wall) as b:
        for round_ in range(ROUNDS):
            rng = b.rng
            resting = []
            for i in range(rng.randint(1, 3)):
                lots = rng.randint(3, 6)
                offset = rng.randint(-400, 400)
                price = b.price(offset)
                order_id = await b.resting(f"stall {round_} order {i}", lots=lots, price=price)
                if order_id is not None:
                    resting.append((order_id, lots, offset))
            await b.connected()
            # half-open in the simulator (it stops reading the socket) or in the network (the
            # proxy holds the bytes); either way the frames reach the engine when it resumes
            if rng.random() < 0.5:
                b.sim.faults.stall(None, account_id=b.account)
                resume: Callable[[], object] = b.sim.faults.resume
            else:
                b.proxy.stall()
                resume = b.proxy.resume
            # each request as a maker of its call under a label, so it can be sent again
            makers: dict[str, Maker] = {}
            for i in range(rng.randint(1, 3)):
                price = b.price(rng.randint(-400, 400))
                makers[f"stall {round_} place {i}"] = _place_maker(b, price, rng.randint(1, 4))
            if resting:
                order_id, lots, offset = resting[0]
                if rng.random() < 0.5:
                    change = {"quantity": LOT * (lots - 1)}
                else:
                    change = {"price": b.price(offset + rng.choice((-3, -2, -1, 1, 2, 3)))}
                makers[f"stall {round_} modify"] = _modify_maker(b, order_id, change)
            if len(resting) > 1 and rng.random() < 0.7:
                makers[f"stall {round_} cancel"] = _cancel_maker(b, resting[-1][0])
            resume_after = rng.choice(RESUME_AFTER)
            calls = [make(label, None) for label, make in makers.items()]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(b.together, *calls)
                nursery.start_soon(after, resume_after, resume)
            # what was "not applied" is sent again, as a caller would: a duplicate shows a lie
            resends = [
                makers[r.label](f"{r.label} again", r.label)
                for r in b.requests.all
                if r.label in makers
                and r.kind != "cancel"
                and r.outcomes
                and isinstance(r.outcomes[0], OrderNotApplied)
            ]
            if resends:
                await b.connected()
                await b.together(*resends)
            b.sim.faults.clear()
            b.proxy.resume()
    summary = verdict(b)
    assert summary.requests >= ROUNDS * 2, summary
    # the scenario did what it is for: the exchange executed frames it read late
    assert summary.late_commands >= 1, summary


#: Makes a request's call under a label, with the label of the request it repeats (if any).
Maker = Callable[[str, str | None], Callable[[], Awaitable[object]]]


def _place_maker(b: Bench, price: Decimal, lots: int) -> Maker:
    """Each call is a new order (a new client order id) at the same price and size."""

    def make(label: str, origin: str | None) -> Callable[[], Awaitable[object]]:
        order = b.limit(price, lots)
        return lambda: b.requests.place(b.conn, order, label, origin=origin)

    return make


def _cancel_maker(b: Bench, target: int) -> Maker:
    return lambda label, _origin: _cancel_call(b, target, label)


def _modify_maker(b: Bench, target: int, change: dict[str, Decimal]) -> Maker:
    return lambda label, origin: _modify_call(b, target, label, change, origin)
