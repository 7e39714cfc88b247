"""Market specs: the default set and building markets from configuration."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from flexconn.models.enums import OrderType, Side
from flexconn.sim.engine import Engine
from flexconn.sim.markets import DEFAULT_MARKETS, MarketSpec, markets_from_config

D = Decimal


def test_default_markets() -> None:
    codes = [m.market_code for m in DEFAULT_MARKETS]
    assert codes == [
        "BTC-USD",
        "ETH-USD",
        "BTC-USD-SWAP-LIN",
        "ETH-USD-SWAP-LIN",
        "BTC-USD-301227-LIN",
    ]
    by_code = {m.market_code: m for m in DEFAULT_MARKETS}
    spot, perp, future = by_code["BTC-USD"], by_code["BTC-USD-SWAP-LIN"], by_code[codes[-1]]
    assert (spot.type, spot.is_derivative, spot.fee_instrument) == ("SPOT", False, "USD")
    assert (perp.type, perp.is_derivative, perp.is_perpetual) == ("FUTURE", True, True)
    assert (future.is_perpetual, future.expiry_ms) == (False, 1_924_588_800_000)
    assert perp.contract_val_currency == "BTC" and perp.reference_pair == "BTC/USD"
    assert len({m.market_id for m in DEFAULT_MARKETS}) == len(DEFAULT_MARKETS)
    for market in DEFAULT_MARKETS:
        assert market.lower_price_bound < market.reference_price < market.upper_price_bound
        assert market.reference_price % market.tick_size == 0
    assert list(Engine().markets) == codes


def record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "marketCode": "SOL-USD-SWAP-LIN",
        "name": "SOL/USD Perpetual",
        "base": "SOL",
        "counter": "USD",
        "type": "FUTURE",
        "tickSize": "0.01",
        "qtyIncrement": "0.1",
        "lowerPriceBound": "50",
        "upperPriceBound": 150,
        "marketPrice": "100.5",
        "marketId": "3005000000000",
        "listingDate": 1_600_000_000_000,
        "endDate": 0,
        "positionLimit": "5000",
    }
    base.update(overrides)
    return base


def test_markets_from_config_reads_exchange_records() -> None:
    (spec,) = markets_from_config([record()])
    assert spec == MarketSpec(
        market_code="SOL-USD-SWAP-LIN",
        name="SOL/USD Perpetual",
        type="FUTURE",
        base="SOL",
        counter="USD",
        tick_size=D("0.01"),
        qty_increment=D("0.1"),
        lower_price_bound=D(50),
        upper_price_bound=D(150),
        reference_price=D("100.5"),
        expiry_ms=None,
        margin_currency="USD",
        initial_margin=D("0.1"),
        position_limit=D(5000),
        market_id="3005000000000",
        listing_date_ms=1_600_000_000_000,
    )


def test_markets_from_config_defaults() -> None:
    minimal = {
        key: value
        for key, value in record(type="SPOT").items()
        if key not in ("name", "marketPrice", "marketId", "listingDate", "endDate", "positionLimit")
    }
    (spec,) = markets_from_config([{**minimal, "referencePrice": "99", "endDate": 5}])
    assert (spec.name, spec.reference_price, spec.expiry_ms) == ("SOL/USD", D(99), 5)
    (spec,) = markets_from_config([minimal])
    assert spec.reference_price == D(100)  # the bounds' midpoint
    assert spec.position_limit is None


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"marketCode": "X"}], "lacks base"),
        ([record(tickSize="abc")], "tickSize is not a number"),
        ([record(tickSize="0")], "tick_size must be positive"),
        ([record(type="OPTION")], "type"),
        ([record(marketPrice="10")], "lower bound < reference price < upper bound"),
        ([record(initialMargin="0")], "initial_margin"),
        ([record(), record()], "duplicate"),
    ],
)
def test_markets_from_config_rejects_bad_records(
    records: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        markets_from_config(records)


def test_an_engine_on_configured_markets_trades_them() -> None:
    engine = Engine(markets_from_config([record()]), clock=lambda: 0)
    engine.open_account("a", {"USD": D(10_000)})
    order = engine.place(
        "a",
        market_code="SOL-USD-SWAP-LIN",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D("0.1"),
        price=D("100.01"),
    )
    assert order.price == D("100.01")
    assert list(engine.markets) == ["SOL-USD-SWAP-LIN"]
