"""The synthetic participants: deterministic, two-sided, trading, bounded and cheap."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from decimal import Decimal

import pytest

from flexconn.models.enums import OrderStatus, OrderType, Side
from flexconn.sim.engine import Engine, EngineEvent, OrderMatched, PublicTrade
from flexconn.sim.markets import MarketSpec
from flexconn.sim.participants import Participants

NOW = 1_700_000_000_000
D = Decimal


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        self.now += 5
        return self.now


def run(seed: int, steps: int) -> tuple[Engine, Participants, list[EngineEvent]]:
    engine = Engine(clock=Clock())
    participants = Participants(engine, seed=seed, depth=8)
    participants.step(steps)
    return engine, participants, engine.drain_events()


def test_same_seed_same_orders() -> None:
    _, _, first = run(seed=7, steps=600)
    _, _, second = run(seed=7, steps=600)
    assert first == second
    _, _, other = run(seed=8, steps=600)
    assert other != first


def test_books_are_two_sided_from_the_start() -> None:
    engine = Engine(clock=Clock())
    participants = Participants(engine, depth=5)
    for code in engine.markets:
        book = engine.book(code)
        assert len(book.bids) >= 3 and len(book.asks) >= 3, code
        assert book.bids[0][0] < participants.mid(code) < book.asks[0][0]


def test_markets_keep_trading_within_bounds() -> None:
    engine, participants, events = run(seed=1, steps=5000)
    trades = Counter(e.market_code for e in events if isinstance(e, PublicTrade))
    assert set(trades) == set(engine.markets)
    assert min(trades.values()) > 50
    for code, spec in engine.markets.items():
        bid, ask = engine.best_bid_ask(code)
        assert bid is not None and ask is not None and bid < ask
        assert spec.lower_price_bound < participants.mid(code) < spec.upper_price_bound
        ticker = engine.ticker(code)
        assert ticker.last is not None and ticker.volume24h > 0
        assert engine.candles(code, 60)


def test_the_book_stays_small_so_steps_stay_cheap() -> None:
    depth = 6
    engine = Engine(clock=Clock())
    participants = Participants(engine, seed=3, depth=depth)
    for _ in range(20):
        participants.step(250)
        per_market = Counter(o.market_code for o in engine.open_orders(participants.maker))
        assert max(per_market.values()) <= 2 * depth
        assert engine.open_orders(participants.taker) == []
        events = engine.drain_events()
        assert len(events) <= 250 * 12


def test_mid_takes_a_slow_random_walk() -> None:
    engine = Engine(clock=Clock())
    participants = Participants(engine, seed=5, markets=["BTC-USD"])
    mids = []
    for _ in range(200):
        participants.step(10)
        mids.append(participants.mid("BTC-USD"))
    assert len(set(mids)) > 20
    steps = [abs(b - a) for a, b in itertools.pairwise(mids)]
    assert max(steps) <= D(50)  # at most a few levels per ten steps


def test_participants_trade_only_their_markets_under_their_accounts() -> None:
    engine = Engine(clock=Clock())
    participants = Participants(engine, markets=["ETH-USD"], account_base=7001, depth=3)
    assert participants.accounts == ("7001", "7002")
    participants.step(300)
    events = engine.drain_events()
    owners = {e.order.account_id for e in events if not isinstance(e, PublicTrade)}
    assert owners <= {"7001", "7002"}
    assert {e.market_code for e in events if isinstance(e, PublicTrade)} == {"ETH-USD"}
    assert engine.book("BTC-USD").bids == ()


def test_a_client_can_trade_against_the_participants() -> None:
    engine = Engine(clock=Clock())
    Participants(engine, seed=2)
    engine.open_account("me", {"USD": D(1_000_000)})
    engine.drain_events()
    order = engine.place(
        "me",
        market_code="BTC-USD-SWAP-LIN",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity=D("0.01"),
    )
    assert order.status is OrderStatus.FILLED
    makers = {e.order.account_id for e in engine.drain_events() if isinstance(e, OrderMatched)}
    assert makers == {"me", "9001"}
    assert engine.positions("me")["BTC-USD-SWAP-LIN"].quantity == D("0.01")


def test_participant_reservations_are_released_by_cancel_all() -> None:
    engine, participants, _ = run(seed=4, steps=1000)
    for account in participants.accounts:
        engine.cancel_all(account)
        assert all(b.reserved == 0 for b in engine.balances(account).values())


def test_steps_due_carries_fractions() -> None:
    engine = Engine(clock=Clock())
    participants = Participants(engine, rate_per_s=10.0, depth=1)
    assert participants.steps_due(0.25) == 2
    assert participants.steps_due(0.25) == 3
    assert participants.steps_due(0.05) == 0
    assert participants.steps_due(0.05) == 1
    assert participants.steps_due(-1.0) == 0
    participants.rate_per_s = math.inf
    assert participants.steps_due(0.0) == Participants.FIREHOSE_BURST


def test_bad_arguments() -> None:
    engine = Engine(clock=Clock())
    with pytest.raises(ValueError, match="depth"):
        Participants(engine, depth=0)
    participants = Participants(engine, markets=[])
    participants.step(5)
    with pytest.raises(KeyError):
        participants.mid("BTC-USD")


def test_tight_bounds_pin_the_mid() -> None:
    tight = MarketSpec(
        market_code="TIGHT-USD",
        name="TIGHT/USD",
        type="SPOT",
        base="TIGHT",
        counter="USD",
        tick_size=D(1),
        qty_increment=D(1),
        lower_price_bound=D(95),
        upper_price_bound=D(105),
        reference_price=D(100),
    )
    engine = Engine([tight], clock=Clock())
    participants = Participants(engine, depth=2)
    participants.step(500)
    assert participants.mid("TIGHT-USD") == D(100)
