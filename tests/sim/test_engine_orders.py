"""Order types, time in force, stops, modify and the exact event sequences of the engine."""

from __future__ import annotations

from decimal import Decimal

import pytest

from flexconn.models.enums import MatchType, OrderStatus, OrderType, Side, TimeInForce
from flexconn.sim.engine import (
    Engine,
    EngineEvent,
    Order,
    OrderClosed,
    OrderMatched,
    OrderModified,
    OrderOpened,
    PublicTrade,
)

NOW = 1_700_000_000_000
BTC = "BTC-USD"
PERP = "BTC-USD-SWAP-LIN"
BUY = Side.BUY
SELL = Side.SELL
D = Decimal


@pytest.fixture
def engine() -> Engine:
    engine = Engine(clock=lambda: NOW)
    for name in ("alice", "bob", "carol"):
        engine.open_account(name, {"USD": D(10_000_000), "BTC": D(100)})
    return engine


def limit(
    engine: Engine,
    account: str,
    side: Side,
    qty: str,
    price: str,
    *,
    market: str = BTC,
    tif: TimeInForce = TimeInForce.GTC,
    client_order_id: int | None = None,
) -> Order:
    return engine.place(
        account,
        market_code=market,
        side=side,
        order_type=OrderType.LIMIT,
        quantity=D(qty),
        price=D(price),
        time_in_force=tif,
        client_order_id=client_order_id,
    )


def market(
    engine: Engine, account: str, side: Side, qty: str, tif: TimeInForce = TimeInForce.GTC
) -> Order:
    return engine.place(
        account,
        market_code=BTC,
        side=side,
        order_type=OrderType.MARKET,
        quantity=D(qty),
        time_in_force=tif,
    )


def stop(engine: Engine, account: str, side: Side, qty: str, stop_px: str, limit_px: str) -> Order:
    return engine.place(
        account,
        market_code=BTC,
        side=side,
        order_type=OrderType.STOP,
        quantity=D(qty),
        stop_price=D(stop_px),
        limit_price=D(limit_px),
    )


def describe(events: list[EngineEvent]) -> list[tuple[object, ...]]:
    """A compact, comparable rendering of an event list."""
    out: list[tuple[object, ...]] = []
    for event in events:
        if isinstance(event, OrderOpened):
            out.append(("opened", event.order.order_id, event.order.triggered))
        elif isinstance(event, OrderModified):
            out.append(("modified", event.order.order_id, str(event.order.remaining)))
        elif isinstance(event, OrderClosed):
            out.append(("closed", event.order.order_id, event.status))
        elif isinstance(event, OrderMatched):
            out.append(
                (
                    "matched",
                    event.order.order_id,
                    event.match_type,
                    str(event.match_quantity),
                    str(event.match_price),
                    event.order.status,
                )
            )
        else:
            assert isinstance(event, PublicTrade)
            out.append(("trade", event.side, str(event.quantity), str(event.price)))
    return out


def levels(engine: Engine, code: str = BTC) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    book = engine.book(code)
    return (
        [(str(p), str(q)) for p, q in book.bids],
        [(str(p), str(q)) for p, q in book.asks],
    )


def test_resting_limit_order_opens_and_joins_the_book(engine: Engine) -> None:
    order = limit(engine, "alice", BUY, "0.5", "49000", client_order_id=7)
    assert order.status is OrderStatus.OPEN
    assert (order.quantity, order.remaining, order.price) == (D("0.5"), D("0.5"), D("49000"))
    assert order.client_order_id == 7
    assert order.created == NOW == order.timestamp
    assert describe(engine.drain_events()) == [("opened", order.order_id, False)]
    assert engine.drain_events() == []
    assert levels(engine) == ([("49000.0", "0.500")], [])


def test_crossing_limit_order_event_sequence(engine: Engine) -> None:
    maker = limit(engine, "alice", SELL, "1", "50000")
    engine.drain_events()
    taker = limit(engine, "bob", BUY, "1.5", "50010")
    events = engine.drain_events()
    assert describe(events) == [
        ("opened", taker.order_id, False),
        ("matched", taker.order_id, MatchType.TAKER, "1.000", "50000.0", OrderStatus.PARTIAL_FILL),
        ("matched", maker.order_id, MatchType.MAKER, "1.000", "50000.0", OrderStatus.FILLED),
        ("trade", BUY, "1.000", "50000.0"),
    ]
    taker_match, maker_match, trade = events[1], events[2], events[3]
    assert isinstance(taker_match, OrderMatched) and isinstance(maker_match, OrderMatched)
    assert isinstance(trade, PublicTrade)
    assert taker_match.match_id == maker_match.match_id == trade.trade_id
    assert taker.status is OrderStatus.PARTIAL_FILL
    assert (taker.remaining, taker.filled, taker.avg_fill_price) == (D("0.5"), D(1), D(50000))
    assert levels(engine) == ([("50010.0", "0.500")], [])


def test_price_then_time_priority_and_maker_price(engine: Engine) -> None:
    first = limit(engine, "alice", SELL, "1", "50001")
    second = limit(engine, "carol", SELL, "1", "50001")
    better = limit(engine, "carol", SELL, "1", "50000.5")
    engine.drain_events()
    taker = limit(engine, "bob", BUY, "2.5", "50001")
    fills = [e for e in engine.drain_events() if isinstance(e, OrderMatched)]
    makers = [(e.order.order_id, str(e.match_price), str(e.match_quantity)) for e in fills[1::2]]
    assert makers == [
        (better.order_id, "50000.5", "1.000"),
        (first.order_id, "50001.0", "1.000"),
        (second.order_id, "50001.0", "0.500"),
    ]
    assert taker.status is OrderStatus.FILLED
    assert taker.avg_fill_price == D("50000.8")  # (50000.5 * 1 + 50001 * 1.5) / 2.5
    assert levels(engine) == ([], [("50001.0", "0.500")])


def test_market_order_sweeps_the_book(engine: Engine) -> None:
    limit(engine, "alice", SELL, "1", "50000")
    limit(engine, "alice", SELL, "1", "51000")
    engine.drain_events()
    order = market(engine, "bob", BUY, "1.5")
    assert order.status is OrderStatus.FILLED
    assert order.time_in_force is TimeInForce.IOC
    assert order.price is None
    trades = [e for e in engine.drain_events() if isinstance(e, PublicTrade)]
    assert [(str(t.price), str(t.quantity)) for t in trades] == [
        ("50000.0", "1.000"),
        ("51000.0", "0.500"),
    ]


def test_market_order_without_liquidity_closes_like_ioc(engine: Engine) -> None:
    order = market(engine, "bob", SELL, "1")
    assert order.status is OrderStatus.CANCELED_ALL_BY_IOC
    assert describe(engine.drain_events()) == [
        ("opened", order.order_id, False),
        ("closed", order.order_id, OrderStatus.CANCELED_ALL_BY_IOC),
    ]
    assert engine.open_orders("bob") == []


def test_market_order_partly_filled_closes_the_rest(engine: Engine) -> None:
    limit(engine, "alice", BUY, "0.4", "49000")
    engine.drain_events()
    order = market(engine, "bob", SELL, "1")
    assert order.status is OrderStatus.CANCELED_PARTIAL_BY_IOC
    assert (order.filled, order.remaining) == (D("0.4"), D("0.6"))
    assert describe(engine.drain_events())[-1] == (
        "closed",
        order.order_id,
        OrderStatus.CANCELED_PARTIAL_BY_IOC,
    )


def test_market_fok_order_fills_completely_or_not_at_all(engine: Engine) -> None:
    limit(engine, "alice", BUY, "0.4", "49000")
    killed = market(engine, "bob", SELL, "1", tif=TimeInForce.FOK)
    assert killed.status is OrderStatus.CANCELED_BY_FOK
    assert killed.time_in_force is TimeInForce.FOK
    filled = market(engine, "bob", SELL, "0.4", tif=TimeInForce.FOK)
    assert filled.status is OrderStatus.FILLED


@pytest.mark.parametrize(
    ("qty", "status", "left"),
    [
        ("0.5", OrderStatus.FILLED, []),
        ("2", OrderStatus.CANCELED_PARTIAL_BY_IOC, []),
    ],
)
def test_ioc_takes_what_it_can(
    engine: Engine, qty: str, status: OrderStatus, left: list[tuple[str, str]]
) -> None:
    limit(engine, "alice", SELL, "1", "50000")
    limit(engine, "alice", SELL, "1", "50100")
    order = limit(engine, "bob", BUY, qty, "50050", tif=TimeInForce.IOC)
    assert order.status is status
    assert levels(engine)[0] == left


def test_ioc_with_nothing_to_take_is_canceled_all(engine: Engine) -> None:
    limit(engine, "alice", SELL, "1", "50100")
    engine.drain_events()
    order = limit(engine, "bob", BUY, "1", "50000", tif=TimeInForce.IOC)
    assert order.status is OrderStatus.CANCELED_ALL_BY_IOC
    assert describe(engine.drain_events()) == [
        ("opened", order.order_id, False),
        ("closed", order.order_id, OrderStatus.CANCELED_ALL_BY_IOC),
    ]
    assert levels(engine) == ([], [("50100.0", "1.000")])


def test_fok_that_cannot_fill_fully_is_killed_without_trading(engine: Engine) -> None:
    limit(engine, "alice", SELL, "1", "50000")
    limit(engine, "alice", SELL, "1", "50200")
    engine.drain_events()
    version = engine.book_version(BTC)
    order = limit(engine, "bob", BUY, "1.5", "50100", tif=TimeInForce.FOK)
    assert order.status is OrderStatus.CANCELED_BY_FOK
    assert (order.filled, order.remaining) == (D(0), D("1.5"))
    assert describe(engine.drain_events()) == [
        ("opened", order.order_id, False),
        ("closed", order.order_id, OrderStatus.CANCELED_BY_FOK),
    ]
    assert engine.book_version(BTC) == version


def test_fok_that_can_fill_sweeps_several_levels(engine: Engine) -> None:
    limit(engine, "alice", SELL, "1", "50000")
    limit(engine, "alice", SELL, "1", "50200")
    order = limit(engine, "bob", BUY, "1.5", "50200", tif=TimeInForce.FOK)
    assert order.status is OrderStatus.FILLED
    assert levels(engine) == ([], [("50200.0", "0.500")])


def test_maker_only_never_takes(engine: Engine) -> None:
    limit(engine, "alice", SELL, "1", "50000")
    engine.drain_events()
    crossing = limit(engine, "bob", BUY, "1", "50000", tif=TimeInForce.MAKER_ONLY)
    assert crossing.status is OrderStatus.CANCELED_BY_MAKER_ONLY
    assert describe(engine.drain_events()) == [
        ("opened", crossing.order_id, False),
        ("closed", crossing.order_id, OrderStatus.CANCELED_BY_MAKER_ONLY),
    ]
    resting = limit(engine, "bob", BUY, "1", "49999.9", tif=TimeInForce.MAKER_ONLY)
    assert resting.status is OrderStatus.OPEN
    assert levels(engine) == ([("49999.9", "1.000")], [("50000.0", "1.000")])


@pytest.mark.parametrize(
    ("side", "price", "expected"),
    [
        (BUY, "50500", "49999.9"),  # would take the 50000 ask: one tick below it
        (SELL, "49000", "49900.1"),  # would take the 49900 bid: one tick above it
        (BUY, "49950", "49950.0"),  # does not cross: unchanged
    ],
)
def test_maker_only_reprice_rests_one_tick_behind_the_opposite_best(
    engine: Engine, side: Side, price: str, expected: str
) -> None:
    limit(engine, "alice", SELL, "1", "50000")
    limit(engine, "alice", BUY, "1", "49900")
    engine.drain_events()
    order = limit(engine, "bob", side, "1", price, tif=TimeInForce.MAKER_ONLY_REPRICE)
    assert order.status is OrderStatus.OPEN
    assert str(order.price) == expected
    events = engine.drain_events()
    assert describe(events) == [("opened", order.order_id, False)]
    assert isinstance(events[0], OrderOpened) and str(events[0].order.price) == expected


def test_buy_stop_triggers_on_the_best_ask(engine: Engine) -> None:
    limit(engine, "alice", SELL, "1", "50000")
    limit(engine, "alice", SELL, "1", "50150")
    waiting = stop(engine, "bob", BUY, "1", "50100", "50200")
    assert waiting.status is OrderStatus.OPEN and not waiting.triggered
    assert (waiting.price, waiting.stop_price, waiting.limit_price) == (None, D(50100), D(50200))
    assert levels(engine)[0] == []  # a waiting stop is not in the book
    engine.drain_events()
    lifter = limit(engine, "carol", BUY, "1", "50000")  # best ask moves 50000 -> 50150
    events = describe(engine.drain_events())
    assert events == [
        ("opened", lifter.order_id, False),
        ("matched", lifter.order_id, MatchType.TAKER, "1.000", "50000.0", OrderStatus.FILLED),
        ("matched", events[2][1], MatchType.MAKER, "1.000", "50000.0", OrderStatus.FILLED),
        ("trade", BUY, "1.000", "50000.0"),
        ("opened", waiting.order_id, True),
        ("matched", waiting.order_id, MatchType.TAKER, "1.000", "50150.0", OrderStatus.FILLED),
        ("matched", events[6][1], MatchType.MAKER, "1.000", "50150.0", OrderStatus.FILLED),
        ("trade", BUY, "1.000", "50150.0"),
    ]


def test_sell_stop_triggers_on_the_best_bid_and_rests_at_its_limit(engine: Engine) -> None:
    limit(engine, "alice", BUY, "1", "50000")
    limit(engine, "alice", BUY, "1", "49800")
    waiting = stop(engine, "bob", SELL, "2", "49900", "49850")
    engine.drain_events()
    market(engine, "carol", SELL, "1")  # best bid moves 50000 -> 49800 <= 49900
    events = engine.drain_events()
    opened = [e for e in events if isinstance(e, OrderOpened) and e.order.triggered]
    assert [e.order.order_id for e in opened] == [waiting.order_id]
    assert opened[0].order.price == D(49850)
    # Limit 49850 is above the 49800 bid, so it rests as a maker at its limit price.
    assert levels(engine) == ([("49800.0", "1.000")], [("49850.0", "2.000")])
    (resting,) = engine.open_orders("bob")
    assert resting.triggered and resting.status is OrderStatus.OPEN


def test_stop_whose_condition_already_holds_triggers_on_placement(engine: Engine) -> None:
    limit(engine, "alice", SELL, "1", "50000")
    engine.drain_events()
    order = stop(engine, "bob", BUY, "1", "49000", "50000")
    assert order.status is OrderStatus.FILLED and order.triggered
    assert describe(engine.drain_events())[:2] == [
        ("opened", order.order_id, False),
        ("opened", order.order_id, True),
    ]


def test_stop_with_no_opposite_side_waits(engine: Engine) -> None:
    order = stop(engine, "bob", BUY, "1", "49000", "50000")
    assert not order.triggered
    assert [o.order_id for o in engine.open_orders("bob")] == [order.order_id]


def test_cancelling_the_best_ask_can_trigger_a_buy_stop(engine: Engine) -> None:
    best = limit(engine, "alice", SELL, "1", "50000")
    limit(engine, "alice", SELL, "1", "50300")
    waiting = stop(engine, "bob", BUY, "1", "50200", "50250")
    engine.drain_events()
    engine.cancel("alice", BTC, best.order_id)
    assert describe(engine.drain_events()) == [
        ("closed", best.order_id, OrderStatus.CANCELED_BY_USER),
        ("opened", waiting.order_id, True),
    ]
    assert levels(engine) == ([("50250.0", "1.000")], [("50300.0", "1.000")])


def test_cancelling_a_waiting_stop(engine: Engine) -> None:
    order = stop(engine, "bob", SELL, "1", "40000", "39000")
    closed = engine.cancel("bob", BTC, order.order_id)
    assert closed.status is OrderStatus.CANCELED_BY_USER and not closed.triggered
    limit(engine, "alice", BUY, "1", "30000")  # would have triggered it
    assert all(
        not isinstance(e, OrderOpened) or not e.order.triggered for e in engine.drain_events()
    )


def test_reducing_quantity_keeps_the_id_and_queue_position(engine: Engine) -> None:
    first = limit(engine, "alice", SELL, "1", "50000")
    second = limit(engine, "bob", SELL, "1", "50000")
    engine.drain_events()
    reduced = engine.modify("alice", BTC, first.order_id, quantity=D("0.4"))
    assert reduced.order_id == first.order_id
    assert (reduced.quantity, reduced.remaining) == (D("0.4"), D("0.4"))
    assert describe(engine.drain_events()) == [("modified", first.order_id, "0.400")]
    assert levels(engine) == ([], [("50000.0", "1.400")])
    limit(engine, "carol", BUY, "0.4", "50000")
    makers = [e.order.order_id for e in engine.drain_events() if isinstance(e, OrderMatched)][1::2]
    assert makers == [first.order_id]
    assert engine.get_order(second.order_id) is not None


def test_reducing_a_partly_filled_order_counts_the_fill(engine: Engine) -> None:
    order = limit(engine, "alice", SELL, "1", "50000")
    limit(engine, "bob", BUY, "0.3", "50000")
    reduced = engine.modify("alice", BTC, order.order_id, quantity=D("0.5"))
    assert (reduced.quantity, reduced.filled, reduced.remaining) == (D("0.8"), D("0.3"), D("0.5"))
    assert reduced.status is OrderStatus.PARTIAL_FILL


def test_unchanged_modify_is_an_in_place_modify(engine: Engine) -> None:
    order = limit(engine, "alice", SELL, "1", "50000")
    engine.drain_events()
    same = engine.modify("alice", BTC, order.order_id, price=D(50000), quantity=D(1), side=SELL)
    assert same.order_id == order.order_id
    assert describe(engine.drain_events()) == [("modified", order.order_id, "1.000")]


@pytest.mark.parametrize(
    ("side", "price", "quantity"),
    [(None, None, D(2)), (None, D("50000.1"), None), (BUY, D(49000), None)],
    ids=["more-quantity", "new-price", "new-side"],
)
def test_other_changes_close_and_reopen_at_the_back(
    engine: Engine, side: Side | None, price: Decimal | None, quantity: Decimal | None
) -> None:
    first = limit(engine, "alice", SELL, "1", "50000", client_order_id=11)
    engine.drain_events()
    replacement = engine.modify(
        "alice", BTC, first.order_id, side=side, price=price, quantity=quantity
    )
    assert replacement.order_id > first.order_id
    assert replacement.client_order_id == 11
    assert replacement.order_type is OrderType.LIMIT
    assert describe(engine.drain_events()) == [
        ("closed", first.order_id, OrderStatus.CANCELED_BY_AMEND),
        ("opened", replacement.order_id, False),
    ]
    assert engine.get_order(first.order_id) is None
    assert [o.order_id for o in engine.open_orders("alice")] == [replacement.order_id]


def test_amended_order_goes_behind_orders_already_queued(engine: Engine) -> None:
    first = limit(engine, "alice", SELL, "1", "50000")
    second = limit(engine, "bob", SELL, "1", "50000")
    moved = engine.modify("alice", BTC, first.order_id, quantity=D("1.5"))
    engine.drain_events()
    limit(engine, "carol", BUY, "1", "50000")
    makers = [e.order.order_id for e in engine.drain_events() if isinstance(e, OrderMatched)][1::2]
    assert makers == [second.order_id]
    assert engine.get_order(moved.order_id) is not None


def test_side_change_that_crosses_trades_immediately(engine: Engine) -> None:
    bid = limit(engine, "alice", BUY, "1", "49000")
    ask = limit(engine, "bob", SELL, "1", "50000")
    engine.drain_events()
    replacement = engine.modify("bob", BTC, ask.order_id, side=BUY, price=D(50000))
    # It crosses nothing (bids only), so it rests; now flip alice's bid into a crossing sell.
    assert replacement.status is OrderStatus.OPEN
    flipped = engine.modify("alice", BTC, bid.order_id, side=SELL)
    assert flipped.status is OrderStatus.FILLED
    assert describe(engine.drain_events())[-5:] == [
        ("closed", bid.order_id, OrderStatus.CANCELED_BY_AMEND),
        ("opened", flipped.order_id, False),
        ("matched", flipped.order_id, MatchType.TAKER, "1.000", "50000.0", OrderStatus.FILLED),
        ("matched", replacement.order_id, MatchType.MAKER, "1.000", "50000.0", OrderStatus.FILLED),
        ("trade", SELL, "1.000", "50000.0"),
    ]


def test_amend_of_a_maker_only_order_into_the_spread_is_cancelled(engine: Engine) -> None:
    limit(engine, "alice", SELL, "1", "50000")
    order = limit(engine, "bob", BUY, "1", "49000", tif=TimeInForce.MAKER_ONLY)
    engine.drain_events()
    replacement = engine.modify("bob", BTC, order.order_id, price=D(50000))
    assert replacement.status is OrderStatus.CANCELED_BY_MAKER_ONLY
    assert describe(engine.drain_events()) == [
        ("closed", order.order_id, OrderStatus.CANCELED_BY_AMEND),
        ("opened", replacement.order_id, False),
        ("closed", replacement.order_id, OrderStatus.CANCELED_BY_MAKER_ONLY),
    ]


def test_amend_of_a_reprice_order_reprices_ignoring_itself(engine: Engine) -> None:
    limit(engine, "alice", BUY, "1", "49000")
    order = limit(engine, "bob", SELL, "1", "50000", tif=TimeInForce.MAKER_ONLY_REPRICE)
    # Turned into a bid at 50000: the only ask is itself, so the price stands.
    replacement = engine.modify("bob", BTC, order.order_id, side=BUY)
    assert replacement.price == D(50000) and replacement.status is OrderStatus.OPEN


def test_modify_of_a_triggered_stop_resting_in_the_book(engine: Engine) -> None:
    limit(engine, "alice", SELL, "1", "50000")
    order = stop(engine, "bob", BUY, "1", "49000", "49500")  # triggers at once, rests at 49500
    assert order.triggered and order.status is OrderStatus.OPEN
    reduced = engine.modify("bob", BTC, order.order_id, quantity=D("0.5"))
    assert reduced.order_id == order.order_id and reduced.order_type is OrderType.STOP


def test_cancel_all_closes_in_id_order_and_respects_the_market_filter(engine: Engine) -> None:
    a = limit(engine, "alice", BUY, "1", "49000")
    b = limit(engine, "alice", SELL, "1", "50000", market=PERP)
    c = stop(engine, "alice", SELL, "1", "40000", "39000")
    limit(engine, "bob", BUY, "1", "48000")
    engine.drain_events()
    closed = engine.cancel_all("alice", BTC)
    assert [o.order_id for o in closed] == [a.order_id, c.order_id]
    assert all(o.status is OrderStatus.CANCELED_BY_USER for o in closed)
    assert describe(engine.drain_events()) == [
        ("closed", a.order_id, OrderStatus.CANCELED_BY_USER),
        ("closed", c.order_id, OrderStatus.CANCELED_BY_USER),
    ]
    assert [o.order_id for o in engine.cancel_all("alice")] == [b.order_id]
    assert engine.open_orders("alice") == []
    assert engine.cancel_all("alice") == []
    assert len(engine.open_orders("bob")) == 1


def test_self_trade_is_allowed_and_charged_like_any_match(engine: Engine) -> None:
    limit(engine, "alice", SELL, "1", "50000")
    order = limit(engine, "alice", BUY, "1", "50000")
    assert order.status is OrderStatus.FILLED
    balances = engine.balances("alice")
    fees = D(50000) * (engine.maker_fee + engine.taker_fee)
    assert balances["USD"].total == D(10_000_000) - fees
    assert balances["BTC"].total == D(100)
    assert [t.match_type for t in engine.account_trades("alice")] == [
        MatchType.TAKER,
        MatchType.MAKER,
    ]


def test_book_version_moves_with_the_book_only(engine: Engine) -> None:
    start = engine.book_version(BTC)
    order = limit(engine, "alice", BUY, "1", "49000")
    after_add = engine.book_version(BTC)
    assert after_add > start
    engine.book(BTC)
    stop(engine, "bob", SELL, "1", "40000", "39000")
    engine.cancel("bob", BTC, engine.open_orders("bob")[0].order_id)
    assert engine.book_version(BTC) == after_add
    engine.modify("alice", BTC, order.order_id, quantity=D("0.5"))
    after_modify = engine.book_version(BTC)
    assert after_modify > after_add
    engine.cancel("alice", BTC, order.order_id)
    assert engine.book(BTC).version > after_modify
    assert engine.book_version(PERP) == 0


def test_book_depth_is_best_first_and_aggregated(engine: Engine) -> None:
    for price in ("49000", "49500", "49500", "48000"):
        limit(engine, "alice", BUY, "1", price)
    for price in ("50500", "50000"):
        limit(engine, "bob", SELL, "1", price)
    book = engine.book(BTC, depth=2)
    assert book.bids == ((D("49500.0"), D("2.000")), (D("49000.0"), D("1.000")))
    assert book.asks == ((D("50000.0"), D("1.000")), (D("50500.0"), D("1.000")))
    assert engine.best_bid_ask(BTC) == (D("49500.0"), D("50000.0"))
    assert engine.mark_price(BTC) == D("49750.0")
