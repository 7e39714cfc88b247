"""Every error code the engine produces, with the exchange-style messages."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from flexconn.errors import ERROR_CODES
from flexconn.models.enums import OrderType, Side, TimeInForce
from flexconn.sim.engine import Engine, EngineReject, Order
from flexconn.sim.markets import DEFAULT_MARKETS

NOW = 1_700_000_000_000
BTC = "BTC-USD"
PERP = "BTC-USD-SWAP-LIN"
FUTURE = "BTC-USD-301227-LIN"
D = Decimal


@pytest.fixture
def engine() -> Engine:
    engine = Engine(clock=lambda: NOW)
    engine.open_account("alice", {"USD": D(1_000_000), "BTC": D(10)})
    engine.open_account("bob", {"USD": D(1_000_000), "BTC": D(10)})
    return engine


def place(engine: Engine, account: str = "alice", **overrides: Any) -> Order:
    order: dict[str, Any] = {
        "market_code": BTC,
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "quantity": D(1),
        "price": D(50000),
    }
    order.update(overrides)
    return engine.place(account, **order)


def rejected(call: Any, *args: Any, **kwargs: Any) -> EngineReject:
    with pytest.raises(EngineReject) as info:
        call(*args, **kwargs)
    return info.value


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"market_code": "DOGE-USD"}, "20015"),
        ({"quantity": D(0)}, "20006"),
        ({"quantity": D(-1)}, "20006"),
        ({"quantity": D("NaN")}, "20006"),
        ({"quantity": D("1E+40")}, "20006"),
        ({"client_order_id": 0}, "20008"),
        ({"client_order_id": 9_223_372_036_854_775_808}, "20014"),
        ({"price": None}, "20022"),
        ({"price": D(0)}, "20028"),
        ({"price": D("-5")}, "20028"),
        ({"price": D("Infinity")}, "20021"),
        ({"order_type": OrderType.MARKET, "time_in_force": TimeInForce.MAKER_ONLY}, "20018"),
        (
            {"order_type": OrderType.MARKET, "time_in_force": TimeInForce.MAKER_ONLY_REPRICE},
            "20018",
        ),
        ({"order_type": OrderType.STOP, "stop_price": D(50000)}, "20020"),
        ({"order_type": OrderType.STOP, "limit_price": D(50000)}, "20020"),
        (
            {"order_type": OrderType.STOP, "stop_price": D("50000.05"), "limit_price": D(50001)},
            "20020",
        ),
        ({"order_type": OrderType.STOP, "stop_price": D(0), "limit_price": D(50001)}, "20028"),
        ({"order_type": OrderType.STOP, "stop_price": D(50001), "limit_price": D(50000)}, "20029"),
        (
            {
                "order_type": OrderType.STOP,
                "side": Side.SELL,
                "stop_price": D(50000),
                "limit_price": D(50001),
            },
            "20030",
        ),
    ],
)
def test_invalid_orders_are_refused_with_the_documented_code(
    engine: Engine, overrides: dict[str, Any], code: str
) -> None:
    error = rejected(place, engine, **overrides)
    assert error.code == code
    assert code in ERROR_CODES


def test_default_messages_come_from_the_error_table(engine: Engine) -> None:
    error = rejected(place, engine, price=None)
    assert error.message == "price is required for LIMIT order"
    assert str(error) == "[20022] price is required for LIMIT order"


def test_off_tick_price_is_20021_and_says_why(engine: Engine) -> None:
    error = rejected(place, engine, price=D("50000.05"))
    assert error.code == "20021"
    assert error.message == "price (50000.05) is not a multiple of tickSize (0.1)"


def test_off_increment_quantity_is_20006_and_says_why(engine: Engine) -> None:
    error = rejected(place, engine, quantity=D("0.0015"))
    assert error.code == "20006"
    assert error.message == "quantity (0.0015) is not a multiple of qtyIncrement (0.001)"
    assert rejected(place, engine, quantity=D("0.0005")).code == "20006"


@pytest.mark.parametrize(
    ("field", "price", "code", "message"),
    [
        (
            "price",
            "24999.9",
            "710002",
            "FAILED sanity bound check as price (24999.9) < lower bound (25000)",
        ),
        (
            "price",
            "100000.1",
            "710003",
            "FAILED sanity bound check as price (100000.1) > upper bound (100000)",
        ),
        (
            "limit_price",
            "100000.1",
            "710003",
            "FAILED sanity bound check as price (100000.1) > upper bound (100000)",
        ),
    ],
)
def test_sanity_bounds(engine: Engine, field: str, price: str, code: str, message: str) -> None:
    overrides: dict[str, Any] = {field: D(price)}
    if field == "limit_price":
        overrides.update(order_type=OrderType.STOP, stop_price=D(60000), price=None)
    error = rejected(place, engine, **overrides)
    assert (error.code, error.message) == (code, message)


def test_bounds_are_inclusive(engine: Engine) -> None:
    place(engine, price=D(25000), quantity=D("0.1"))
    place(engine, side=Side.SELL, price=D(100000), quantity=D("0.1"))


def test_expired_future_refuses_new_orders(engine: Engine) -> None:
    expiry = next(m.expiry_ms for m in DEFAULT_MARKETS if m.market_code == FUTURE)
    assert expiry is not None
    clock = [expiry - 1]
    late = Engine(clock=lambda: clock[0])
    late.open_account("alice", {"USD": D(1_000_000)})
    order = late.place(
        "alice",
        market_code=FUTURE,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D(1),
        price=D(50000),
    )
    clock[0] = expiry
    assert rejected(place, late, market_code=FUTURE).code == "200050"
    error = rejected(late.modify, "alice", FUTURE, order.order_id, quantity=D("0.5"))
    assert error.code == "200050"
    late.cancel("alice", FUTURE, order.order_id)  # cancelling is still allowed


def test_spot_buy_beyond_the_counter_balance_is_710006(engine: Engine) -> None:
    # 1,000,000 USD covers 19.99 BTC at 50000 including the 0.05% fee reserve, not 20.
    place(engine, quantity=D("19.99"))
    error = rejected(place, engine, quantity=D("0.01"))
    assert error.code == "710006"
    assert error.message == "FAILED balance check as balance (0.25) < value (500.25)"


def test_spot_sell_beyond_the_base_balance_is_710006(engine: Engine) -> None:
    error = rejected(place, engine, side=Side.SELL, quantity=D("10.001"))
    assert (error.code, error.message) == (
        "710006",
        "FAILED balance check as balance (10) < value (10.001)",
    )


def test_derivative_beyond_the_position_limit_is_710004(engine: Engine) -> None:
    rich = Engine(clock=lambda: NOW)
    rich.open_account("whale", {"USD": D(10) ** 10})
    place(rich, "whale", market_code=PERP, quantity=D(600), price=D(40000))
    error = rejected(place, rich, "whale", market_code=PERP, quantity=D("400.001"), price=D(40000))
    assert (error.code, error.message) == (
        "710004",
        "FAILED net position check as position (1000.001) > threshold (1000)",
    )
    # The other side reduces exposure, so it is fine.
    place(rich, "whale", market_code=PERP, side=Side.SELL, quantity=D(1000), price=D(60000))


def test_derivative_without_margin_is_710005(engine: Engine) -> None:
    # 10% initial margin: 1,000,000 USD carries 200 BTC at 50000.
    place(engine, market_code=PERP, quantity=D(200))
    error = rejected(place, engine, market_code=PERP, quantity=D("0.002"))
    assert (error.code, error.message) == (
        "710005",
        "FAILED margin check as collateral (0) < var (10)",
    )


@pytest.mark.parametrize("op", ["cancel", "modify"])
def test_unknown_or_foreign_orders(engine: Engine, op: str) -> None:
    order_id = place(engine).order_id
    call = engine.cancel if op == "cancel" else engine.modify
    assert rejected(call, "alice", BTC, 1).code == "100005"
    assert rejected(call, "alice", PERP, order_id).code == "100005"
    foreign = rejected(call, "bob", BTC, order_id)
    assert (foreign.code, foreign.message) == (
        "100006",
        "Open order does not match to the given account",
    )
    assert rejected(call, "alice", "NOPE", order_id).code == "20015"
    engine.cancel("alice", BTC, order_id)
    gone = rejected(call, "alice", BTC, order_id)
    assert (gone.code, gone.message) == ("100005", "Open order not found with id")


def test_modify_validates_the_new_values(engine: Engine) -> None:
    order = place(engine, quantity=D("0.1"))
    order_id = order.order_id
    assert rejected(engine.modify, "alice", BTC, order_id, quantity=D(0)).code == "20006"
    assert rejected(engine.modify, "alice", BTC, order_id, price=D("50000.01")).code == "20021"
    assert rejected(engine.modify, "alice", BTC, order_id, price=D(0)).code == "20028"
    assert rejected(engine.modify, "alice", BTC, order_id, price=D(1)).code == "710002"
    assert rejected(engine.modify, "alice", BTC, order_id, price=D(10**6)).code == "710003"
    assert rejected(engine.modify, "alice", BTC, order_id, quantity=D(100)).code == "710006"


def test_refused_modify_leaves_the_order_alone(engine: Engine) -> None:
    order = place(engine, quantity=D(10))
    order_id = order.order_id
    engine.drain_events()
    before = (engine.open_orders("alice"), engine.balances("alice"), engine.book(BTC))
    assert rejected(engine.modify, "alice", BTC, order_id, quantity=D(30)).code == "710006"
    assert (engine.open_orders("alice"), engine.balances("alice"), engine.book(BTC)) == before
    assert engine.drain_events() == []


def test_modify_of_a_waiting_stop_is_20017(engine: Engine) -> None:
    order = place(engine, order_type=OrderType.STOP, stop_price=D(60000), limit_price=D(60001))
    order_id = order.order_id
    assert rejected(engine.modify, "alice", BTC, order_id, quantity=D("0.5")).code == "20017"


def test_rejections_change_nothing_and_consume_no_id(engine: Engine) -> None:
    first = place(engine, quantity=D("0.1"))
    engine.drain_events()
    before = (engine.balances("alice"), engine.book(BTC), engine.open_orders("alice"))
    for overrides in ({"price": D(1)}, {"quantity": D(1000)}, {"market_code": "X"}):
        rejected(place, engine, **overrides)
    assert engine.drain_events() == []
    assert (engine.balances("alice"), engine.book(BTC), engine.open_orders("alice")) == before
    second = place(engine, quantity=D("0.1"))
    assert second.order_id == first.order_id + 1


def test_cancel_all_in_an_unknown_market_is_20015(engine: Engine) -> None:
    assert rejected(engine.cancel_all, "alice", "NOPE").code == "20015"


def test_unknown_accounts_and_markets_in_queries_are_key_errors(engine: Engine) -> None:
    with pytest.raises(KeyError):
        place(engine, "mallory")
    with pytest.raises(KeyError):
        engine.cancel("mallory", BTC, 1)
    with pytest.raises(KeyError):
        engine.balances("mallory")
    with pytest.raises(KeyError):
        engine.book("NOPE")
    with pytest.raises(ValueError, match="already exists"):
        engine.open_account("alice", {})
