"""Balances, reservations, fees, positions and the market data the engine serves."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, localcontext

import pytest

from flexconn.models.enums import MatchType, OrderStatus, OrderType, Side, TimeInForce
from flexconn.sim.engine import Engine, Order

BTC = "BTC-USD"
PERP = "BTC-USD-SWAP-LIN"
ETH_PERP = "ETH-USD-SWAP-LIN"
D = Decimal
START = 1_700_000_040_000  # 40 s into a minute


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(clock: Clock) -> Engine:
    engine = Engine(clock=clock, maker_fee=D("0.0002"), taker_fee=D("0.0005"))
    for name in ("alice", "bob"):
        engine.open_account(name, {"USD": D(1_000_000), "BTC": D(10)})
    return engine


def limit(
    engine: Engine, account: str, side: Side, qty: str, price: str, market: str = BTC
) -> Order:
    return engine.place(
        account,
        market_code=market,
        side=side,
        order_type=OrderType.LIMIT,
        quantity=D(qty),
        price=D(price),
    )


def usd(engine: Engine, account: str) -> tuple[Decimal, Decimal, Decimal]:
    balance = engine.balances(account)["USD"]
    return balance.total, balance.reserved, balance.available


def test_spot_buy_reserves_counter_with_fee_headroom_and_cancel_releases_it(
    engine: Engine,
) -> None:
    order = limit(engine, "alice", Side.BUY, "2", "40000")
    assert usd(engine, "alice") == (D(1_000_000), D(80040), D(919960))
    engine.cancel("alice", BTC, order.order_id)
    assert usd(engine, "alice") == (D(1_000_000), D(0), D(1_000_000))


def test_spot_sell_reserves_base(engine: Engine) -> None:
    order = limit(engine, "alice", Side.SELL, "2.5", "60000")
    btc = engine.balances("alice")["BTC"]
    assert (btc.total, btc.reserved, btc.available) == (D(10), D("2.5"), D("7.5"))
    assert engine.balances("alice")["USD"].reserved == 0
    engine.cancel("alice", BTC, order.order_id)
    assert engine.balances("alice")["BTC"].reserved == 0


def test_spot_fill_moves_money_and_fees_exactly(engine: Engine) -> None:
    maker = limit(engine, "alice", Side.SELL, "2", "50000")
    limit(engine, "bob", Side.BUY, "0.5", "50100")  # taker, price-improved to 50000
    notional = D(25000)
    taker_fee = notional * D("0.0005")
    maker_fee = notional * D("0.0002")
    alice, bob = engine.balances("alice"), engine.balances("bob")
    assert (alice["BTC"].total, alice["BTC"].reserved) == (D("9.5"), D("1.5"))
    assert alice["USD"].total == D(1_000_000) + notional - maker_fee
    assert bob["BTC"].total == D("10.5")
    assert (bob["USD"].total, bob["USD"].reserved) == (D(1_000_000) - notional - taker_fee, D(0))
    assert engine.fees_collected() == {"USD": taker_fee + maker_fee}
    (bob_trade,) = engine.account_trades("bob")
    assert (bob_trade.fees, bob_trade.fee_instrument, bob_trade.match_type) == (
        taker_fee,
        "USD",
        MatchType.TAKER,
    )
    (alice_trade,) = engine.account_trades("alice", BTC)
    assert alice_trade.order_id == maker.order_id and alice_trade.fees == maker_fee
    assert alice_trade.match_id == bob_trade.match_id == alice_trade.trade_id


def test_partial_fill_releases_the_filled_part_of_a_buy(engine: Engine) -> None:
    order = limit(engine, "alice", Side.BUY, "2", "40000")
    limit(engine, "bob", Side.SELL, "0.5", "40000")
    assert usd(engine, "alice")[1] == D(60030)  # 1.5 * 40000 * 1.0005
    engine.cancel("alice", BTC, order.order_id)
    assert usd(engine, "alice")[1] == 0


def test_fees_are_rounded_down_to_1e_8() -> None:
    engine = Engine(clock=lambda: START, maker_fee=D("0.00033"), taker_fee=D("0.00077"))
    engine.open_account("a", {"USD": D(10**6), "BTC": D(10)})
    limit(engine, "a", Side.SELL, "0.001", "33333.3")
    limit(engine, "a", Side.BUY, "0.001", "33333.3")
    fees = [t.fees for t in engine.account_trades("a")]
    assert fees == [D("0.02566664"), D("0.01099998")]  # 33.3333 * rate, truncated


def test_market_buy_reserves_only_what_the_book_can_fill(engine: Engine) -> None:
    poor = "carol"
    engine.open_account(poor, {"USD": D(10_100)})
    limit(engine, "alice", Side.SELL, "0.2", "50000")
    order = engine.place(
        poor, market_code=BTC, side=Side.BUY, order_type=OrderType.MARKET, quantity=D(5)
    )
    assert order.status is OrderStatus.CANCELED_PARTIAL_BY_IOC
    assert order.filled == D("0.2")
    balance = engine.balances(poor)["USD"]
    assert (balance.total, balance.reserved) == (D(10_100) - D(10_000) - D(5), D(0))


def test_derivative_order_reserves_initial_margin(engine: Engine) -> None:
    order = limit(engine, "alice", Side.SELL, "1", "50000", PERP)
    assert usd(engine, "alice")[1] == D(5000)
    assert engine.balances("alice")["BTC"].reserved == 0
    engine.cancel("alice", PERP, order.order_id)
    assert usd(engine, "alice")[1] == 0


def test_positions_entry_price_and_realized_pnl(engine: Engine, clock: Clock) -> None:
    limit(engine, "alice", Side.SELL, "1", "50000", PERP)
    limit(engine, "bob", Side.BUY, "1", "50000", PERP)
    limit(engine, "alice", Side.SELL, "1", "51000", PERP)
    clock.now += 1000
    limit(engine, "bob", Side.BUY, "1", "51000", PERP)
    bob = engine.positions("bob")[PERP]
    assert (bob.quantity, bob.entry_price, bob.realized_pnl) == (D(2), D(50500), D(0))
    assert bob.updated == START + 1000
    assert bob.contract_val_currency == "BTC" and bob.margin_currency == "USD"
    # Bob sells 1.5 at 52000: realizes 1.5 * (52000 - 50500) = 2250.
    limit(engine, "alice", Side.BUY, "1.5", "52000", PERP)
    before = engine.balances("bob")["USD"].total
    limit(engine, "bob", Side.SELL, "1.5", "52000", PERP)
    bob = engine.positions("bob")[PERP]
    assert (bob.quantity, bob.entry_price, bob.realized_pnl) == (D("0.5"), D(50500), D(2250))
    taker_fee = D(78000) * D("0.0005")
    assert engine.balances("bob")["USD"].total == before + D(2250) - taker_fee
    alice = engine.positions("alice")[PERP]
    assert alice.quantity == D("-0.5")
    assert alice.realized_pnl == D(-2250)


def test_position_flip_opens_at_the_fill_price(engine: Engine) -> None:
    limit(engine, "alice", Side.SELL, "1", "50000", PERP)
    limit(engine, "bob", Side.BUY, "1", "50000", PERP)
    limit(engine, "alice", Side.BUY, "3", "49000", PERP)
    limit(engine, "bob", Side.SELL, "3", "49000", PERP)
    bob = engine.positions("bob")[PERP]
    assert (bob.quantity, bob.entry_price, bob.realized_pnl) == (D(-2), D(49000), D(-1000))


def test_flat_positions_stay_listed(engine: Engine) -> None:
    limit(engine, "alice", Side.SELL, "1", "50000", PERP)
    limit(engine, "bob", Side.BUY, "1", "50000", PERP)
    limit(engine, "alice", Side.BUY, "1", "50000", PERP)
    limit(engine, "bob", Side.SELL, "1", "50000", PERP)
    position = engine.positions("bob")[PERP]
    assert (position.quantity, position.entry_price, position.position_pnl) == (D(0), D(0), D(0))
    assert engine.positions("bob").keys() == {PERP}
    assert engine.net_position("bob", PERP) == 0
    assert engine.net_position("bob", ETH_PERP) == 0


def test_unrealized_pnl_follows_the_mark_and_liquidation_estimate(engine: Engine) -> None:
    limit(engine, "alice", Side.SELL, "2", "50000", PERP)
    limit(engine, "bob", Side.BUY, "2", "50000", PERP)
    limit(engine, "alice", Side.BUY, "1", "51000", PERP)
    limit(engine, "alice", Side.SELL, "1", "53000", PERP)
    assert engine.mark_price(PERP) == D(52000)
    bob = engine.positions("bob")[PERP]
    assert bob.position_pnl == D(4000)
    alice = engine.positions("alice")[PERP]
    assert alice.position_pnl == D(-4000)
    # Long 2 with equity E: liquidation where E + 2 (P - 52000) = 0.05 * 2 * P.
    equity = engine.balances("bob")["USD"].total + D(4000)
    expected = (2 * D(52000) - equity) / (2 * D("0.95"))
    assert bob.est_liquidation_price == max(D(0), expected.quantize(D("0.5")))
    assert alice.est_liquidation_price > D(52000)


def test_open_interest_counts_long_positions(engine: Engine) -> None:
    limit(engine, "alice", Side.SELL, "3", "50000", PERP)
    limit(engine, "bob", Side.BUY, "3", "50000", PERP)
    assert engine.ticker(PERP).open_interest == D(3)
    limit(engine, "alice", Side.BUY, "1", "50000", PERP)
    limit(engine, "bob", Side.SELL, "1", "50000", PERP)
    assert engine.ticker(PERP).open_interest == D(2)
    assert engine.ticker(BTC).open_interest == 0


def test_account_info_values_balances_and_margin(engine: Engine) -> None:
    limit(engine, "bob", Side.BUY, "1", "50000")  # BTC-USD mark: only a bid -> reference
    limit(engine, "alice", Side.SELL, "1", "50000", PERP)
    info = engine.account_info("alice")
    assert info.total_balance == D(1_000_000) + 10 * D(50000)
    assert info.portfolio_var_margin == D(5000)
    assert info.risk_ratio == (info.collateral_balance / D(5000)).quantize(D("0.0001"))
    assert engine.account_info("bob").risk_ratio is None


def test_reservation_returns_to_zero_after_a_mixed_session(engine: Engine) -> None:
    a = limit(engine, "alice", Side.BUY, "1", "49000")
    limit(engine, "alice", Side.SELL, "1", "51000")
    limit(engine, "alice", Side.SELL, "1", "50000", PERP)
    engine.modify("alice", BTC, a.order_id, price=D(49500))
    limit(engine, "bob", Side.SELL, "0.3", "49000")
    limit(engine, "bob", Side.BUY, "0.3", "52000", PERP)
    engine.cancel_all("alice")
    assert all(b.reserved == 0 for b in engine.balances("alice").values())


def test_public_trades_and_account_trades_filter_by_time_and_limit(
    engine: Engine, clock: Clock
) -> None:
    for i in range(5):
        clock.now = START + i * 1000
        limit(engine, "alice", Side.SELL, "0.1", "50000")
        limit(engine, "bob", Side.BUY, "0.1", "50000")
    trades = engine.public_trades(BTC)
    assert [t.timestamp for t in trades] == [START + i * 1000 for i in range(5)]
    assert [t.side for t in trades] == [Side.BUY] * 5
    assert [t.timestamp for t in engine.public_trades(BTC, limit=2)] == [
        START + 3000,
        START + 4000,
    ]
    window = engine.public_trades(BTC, start_ms=START + 1000, end_ms=START + 3000)
    assert [t.timestamp for t in window] == [START + 1000, START + 2000, START + 3000]
    assert len(engine.account_trades("bob", BTC, limit=3, end_ms=START + 3000)) == 3
    assert engine.account_trades("bob", PERP) == []
    assert len(engine.public_trades(PERP)) == 0


def test_history_is_bounded() -> None:
    engine = Engine(clock=lambda: START, max_public_trades=3, max_account_history=2)
    engine.open_account("a", {"USD": D(10**6), "BTC": D(10)})
    for _ in range(4):
        limit(engine, "a", Side.SELL, "0.1", "50000")
        limit(engine, "a", Side.BUY, "0.1", "50000")
    assert len(engine.public_trades(BTC)) == 3
    assert len(engine.account_trades("a")) == 2
    assert len(engine.order_history("a")) == 2


def test_order_history_find_order_and_get_order(engine: Engine) -> None:
    first = engine.place(
        "alice",
        market_code=BTC,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D(1),
        price=D(40000),
        client_order_id=5,
    )
    second = engine.place(
        "alice",
        market_code=BTC,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D(1),
        price=D(41000),
        client_order_id=5,
    )
    found = engine.find_order("alice", BTC, 5)
    assert found is not None and found.order_id == second.order_id
    assert engine.find_order("alice", PERP, 5) is None
    assert engine.is_open(first.order_id)
    engine.cancel("alice", BTC, second.order_id)
    filler = limit(engine, "bob", Side.SELL, "1", "40000")
    assert not engine.is_open(first.order_id) and engine.get_order(first.order_id) is None
    history = engine.order_history("alice")
    assert [(o.order_id, o.status) for o in history] == [
        (second.order_id, OrderStatus.CANCELED_BY_USER),
        (first.order_id, OrderStatus.FILLED),
    ]
    assert engine.order_history("alice", PERP) == []
    assert engine.order_history("alice", limit=1)[0].order_id == first.order_id
    assert engine.order_history("alice", limit=0) == []
    assert engine.order_history("bob")[0].order_id == filler.order_id


def test_ticker_rolls_over_24_hours(engine: Engine, clock: Clock) -> None:
    assert engine.ticker(BTC).last is None and engine.ticker(BTC).open24h is None
    for offset, price in ((0, "50000"), (3_600_000, "52000"), (7_200_000, "49000")):
        clock.now = START + offset
        limit(engine, "alice", Side.SELL, "0.5", price)
        limit(engine, "bob", Side.BUY, "0.5", price)
    ticker = engine.ticker(BTC)
    assert (ticker.last, ticker.last_qty) == (D(49000), D("0.5"))
    assert (ticker.open24h, ticker.high24h, ticker.low24h) == (D(50000), D(52000), D(49000))
    assert ticker.volume24h == D("75500")
    assert ticker.currency_volume24h == D("1.5")
    assert ticker.timestamp == clock.now
    clock.now = START + 86_400_000 + 60_000  # the first trade has left the window
    ticker = engine.ticker(BTC)
    assert (ticker.open24h, ticker.high24h, ticker.volume24h) == (D(52000), D(52000), D(50500))
    clock.now += 86_400_000
    ticker = engine.ticker(BTC)
    assert ticker.open24h is None and ticker.volume24h == 0 and ticker.last == D(49000)


def test_candles_at_several_granularities(engine: Engine, clock: Clock) -> None:
    minute = START - START % 60_000
    prices = [("0", "50000"), ("10000", "50500"), ("30000", "49500"), ("70000", "51000")]
    for offset, price in prices:
        clock.now = minute + int(offset)
        limit(engine, "alice", Side.SELL, "1", price)
        limit(engine, "bob", Side.BUY, "1", price)
    one_minute = engine.candles(BTC, 60)
    assert [(c.start_ms, c.open, c.high, c.low, c.close) for c in one_minute] == [
        (minute, D(50000), D(50500), D(49500), D(49500)),
        (minute + 60_000, D(51000), D(51000), D(51000), D(51000)),
    ]
    assert one_minute[0].volume == D(150000) and one_minute[0].currency_volume == D(3)
    day = engine.candles(BTC, 86400)
    assert len(day) == 1 and day[0].start_ms % 86_400_000 == 0
    assert (day[0].open, day[0].close, day[0].high) == (D(50000), D(51000), D(51000))
    assert day[0].currency_volume == D(4)
    assert engine.candles(BTC, 60, limit=1)[0].start_ms == minute + 60_000
    assert engine.candles(BTC, 60, end_ms=minute + 59_999)[0].start_ms == minute
    assert engine.candles(BTC, 60, start_ms=minute + 60_000)[0].close == D(51000)
    assert engine.candles(PERP, 3600) == []
    with pytest.raises(ValueError, match="granularity"):
        engine.candles(BTC, 120)


def test_mark_price_falls_back_to_last_trade_then_reference(engine: Engine) -> None:
    assert engine.mark_price(PERP) == D(50000)  # reference price
    limit(engine, "alice", Side.SELL, "1", "50500", PERP)
    engine.place(
        "bob",
        market_code=PERP,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D(1),
        price=D(50500),
        time_in_force=TimeInForce.IOC,
    )
    assert engine.mark_price(PERP) == D(50500)  # last trade, book empty


def test_arithmetic_ignores_the_callers_decimal_context() -> None:
    engine = Engine(clock=lambda: START)
    engine.open_account("a", {"USD": D("123456789012.12345678"), "BTC": D(10)})
    with localcontext() as context:
        context.prec = 4
        limit(engine, "a", Side.SELL, "0.123", "54321.1")
        limit(engine, "a", Side.BUY, "0.123", "54321.1")
        total = engine.balances("a")["USD"].total
    fees = D("6681.4953") * (engine.maker_fee + engine.taker_fee)
    assert total == D("123456789012.12345678") - fees.quantize(D("1e-8"), ROUND_DOWN)
