"""Market definitions for the simulator: tick sizes, quantity increments and sanity bounds.

A :class:`MarketSpec` carries everything the engine needs to validate and match orders in one
market, plus the reference data the ``/v2/all/markets`` endpoint and the ``market`` channel
publish. :data:`DEFAULT_MARKETS` is the set the simulator starts with; :func:`markets_from_config`
builds specs from the exchange's own camelCase market records (e.g. a JSON file).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import attrs

__all__ = ["DEFAULT_MARKETS", "MarketSpec", "markets_from_config"]

SPOT: Final = "SPOT"
FUTURE: Final = "FUTURE"


def _positive(instance: object, attribute: attrs.Attribute[Decimal], value: Decimal) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


@attrs.frozen(kw_only=True)
class MarketSpec:
    """One tradable market and its trading rules.

    Perpetual swaps are ``FUTURE`` markets whose code contains ``SWAP``; dated futures carry an
    ``expiry_ms`` after which the engine refuses new orders (``200050``).
    """

    market_code: str
    name: str
    type: str = attrs.field(validator=attrs.validators.in_((SPOT, FUTURE)))
    base: str
    counter: str
    tick_size: Decimal = attrs.field(validator=_positive)
    qty_increment: Decimal = attrs.field(validator=_positive)
    lower_price_bound: Decimal
    upper_price_bound: Decimal
    reference_price: Decimal
    expiry_ms: int | None = None
    margin_currency: str = "USD"
    #: Initial-margin rate for derivatives: an order or position needs this fraction of its
    #: notional as collateral (0.1 is 10x leverage). Unused for spot markets.
    initial_margin: Decimal = Decimal("0.1")
    #: Largest absolute net position (base units) an account may build, counting its open orders
    #: on the same side (``710004`` beyond it); ``None`` is unlimited. Unused for spot markets.
    position_limit: Decimal | None = None
    market_id: str = "0"
    listing_date_ms: int = 0

    def __attrs_post_init__(self) -> None:
        if not self.lower_price_bound < self.reference_price < self.upper_price_bound:
            raise ValueError(
                f"{self.market_code}: need lower bound < reference price < upper bound, got "
                f"{self.lower_price_bound} / {self.reference_price} / {self.upper_price_bound}"
            )
        if not self.initial_margin > 0:
            raise ValueError(f"{self.market_code}: initial_margin must be positive")

    @property
    def is_derivative(self) -> bool:
        """True for perpetuals and dated futures (positions and margin rather than balances)."""
        return self.type == FUTURE

    @property
    def is_perpetual(self) -> bool:
        return self.type == FUTURE and "SWAP" in self.market_code

    @property
    def contract_val_currency(self) -> str:
        """The asset one unit of quantity is denominated in (the base)."""
        return self.base

    @property
    def reference_pair(self) -> str:
        return f"{self.base}/{self.counter}"

    @property
    def fee_instrument(self) -> str:
        """Fees are charged in the counter currency for spot, the margin currency otherwise."""
        return self.margin_currency if self.is_derivative else self.counter


def _spot(
    code: str, base: str, tick: str, qty: str, ref: str, lo: str, hi: str, mid: str
) -> MarketSpec:
    return MarketSpec(
        market_code=code,
        name=f"{base}/USD",
        type=SPOT,
        base=base,
        counter="USD",
        tick_size=Decimal(tick),
        qty_increment=Decimal(qty),
        lower_price_bound=Decimal(lo),
        upper_price_bound=Decimal(hi),
        reference_price=Decimal(ref),
        market_id=mid,
    )


def _future(
    code: str,
    name: str,
    base: str,
    tick: str,
    qty: str,
    ref: str,
    lo: str,
    hi: str,
    limit: str,
    mid: str,
    expiry_ms: int | None = None,
) -> MarketSpec:
    return MarketSpec(
        market_code=code,
        name=name,
        type=FUTURE,
        base=base,
        counter="USD",
        tick_size=Decimal(tick),
        qty_increment=Decimal(qty),
        lower_price_bound=Decimal(lo),
        upper_price_bound=Decimal(hi),
        reference_price=Decimal(ref),
        expiry_ms=expiry_ms,
        position_limit=Decimal(limit),
        market_id=mid,
    )


#: Spot BTC-USD and ETH-USD, the two linear perpetuals, and a quarterly BTC future expiring on
#: Friday 2030-12-27 08:00 UTC.
DEFAULT_MARKETS: Final[tuple[MarketSpec, ...]] = (
    _spot("BTC-USD", "BTC", "0.1", "0.001", "50000", "25000", "100000", "2001000000000"),
    _spot("ETH-USD", "ETH", "0.01", "0.01", "3000", "1500", "6000", "2002000000000"),
    _future(
        "BTC-USD-SWAP-LIN",
        "BTC/USD Perpetual (Linear)",
        "BTC",
        "0.5",
        "0.001",
        "50000",
        "25000",
        "100000",
        "1000",
        "3001000000000",
    ),
    _future(
        "ETH-USD-SWAP-LIN",
        "ETH/USD Perpetual (Linear)",
        "ETH",
        "0.05",
        "0.01",
        "3000",
        "1500",
        "6000",
        "10000",
        "3002000000000",
    ),
    _future(
        "BTC-USD-301227-LIN",
        "BTC/USD 30-12-27 Future (Linear)",
        "BTC",
        "0.5",
        "0.001",
        "50500",
        "25000",
        "100000",
        "1000",
        "3003000000000",
        expiry_ms=1924588800000,
    ),
)

_REQUIRED = (
    "marketCode",
    "base",
    "counter",
    "type",
    "tickSize",
    "qtyIncrement",
    "lowerPriceBound",
    "upperPriceBound",
)


def _decimal(record: Mapping[str, Any], key: str) -> Decimal:
    try:
        return Decimal(str(record[key]))
    except InvalidOperation:
        raise ValueError(f"{key} is not a number: {record[key]!r}") from None


def markets_from_config(records: Iterable[Mapping[str, Any]]) -> tuple[MarketSpec, ...]:
    """Build market specs from exchange-style market records.

    Each record uses the ``/v2/all/markets`` field names (``marketCode``, ``base``, ``counter``,
    ``type``, ``tickSize``, ``qtyIncrement``, ``lowerPriceBound``, ``upperPriceBound``; optional
    ``name``, ``marginCurrency``, ``marketId``, ``listingDate``, ``endDate``) plus the simulator's
    own optional ``referencePrice`` (default: ``marketPrice``, else the bounds' midpoint),
    ``initialMargin`` and ``positionLimit``.

    Raises:
        ValueError: a required field is missing, a number is malformed, or the rules conflict.
    """
    specs: list[MarketSpec] = []
    for record in records:
        missing = [key for key in _REQUIRED if key not in record]
        if missing:
            raise ValueError(f"market record lacks {', '.join(missing)}: {dict(record)!r}")
        lower = _decimal(record, "lowerPriceBound")
        upper = _decimal(record, "upperPriceBound")
        if "referencePrice" in record:
            reference = _decimal(record, "referencePrice")
        elif "marketPrice" in record:
            reference = _decimal(record, "marketPrice")
        else:
            reference = (lower + upper) / 2
        end_date = int(record.get("endDate") or 0)
        limit = record.get("positionLimit")
        specs.append(
            MarketSpec(
                market_code=str(record["marketCode"]),
                name=str(record.get("name") or f"{record['base']}/{record['counter']}"),
                type=str(record["type"]),
                base=str(record["base"]),
                counter=str(record["counter"]),
                tick_size=_decimal(record, "tickSize"),
                qty_increment=_decimal(record, "qtyIncrement"),
                lower_price_bound=lower,
                upper_price_bound=upper,
                reference_price=reference,
                expiry_ms=end_date or None,
                margin_currency=str(record.get("marginCurrency") or record["counter"]),
                initial_margin=Decimal(str(record.get("initialMargin", "0.1"))),
                position_limit=None if limit is None else Decimal(str(limit)),
                market_id=str(record.get("marketId", "0")),
                listing_date_ms=int(record.get("listingDate") or 0),
            )
        )
    codes = [spec.market_code for spec in specs]
    if len(set(codes)) != len(codes):
        raise ValueError(f"duplicate market codes in {codes}")
    return tuple(specs)
