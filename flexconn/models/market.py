"""Public channel updates: order book depth, trades, tickers, candles and market data.

Depth design note. A depth snapshot is the largest and most frequent frame (every 50 ms, up to the
whole book). Converting every level to ``Decimal`` while decoding would cost more than parsing the
JSON, although many consumers read only the top of the book or only ``seq_num``. So decoding checks
the levels' shape and types eagerly (a malformed frame still fails at decode time) and keeps them
as parsed; :attr:`DepthSnapshot.asks` and :attr:`DepthSnapshot.bids` convert them to typed
:class:`PriceLevel` tuples on first access and cache the result. The raw levels stay available as
``raw_asks``/``raw_bids`` (e.g. for checksum verification). 2020-12 ``futures/depth`` frames carry
levels as strings; those are converted while decoding, which is also how they are validated.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property, partial
from operator import itemgetter
from typing import Any, ClassVar, NamedTuple

import attrs
import orjson

from flexconn._codec import (
    converter,
    decimals_as_strings,
    ms_to_datetime,
    structure_int,
    wire,
)
from flexconn.models.base import ChannelUpdate
from flexconn.models.enums import CandleGranularity, DepthLevel, Side

__all__ = [
    "Candle",
    "CandleUpdate",
    "DepthSnapshot",
    "DepthUpdate",
    "MarketInfo",
    "MarketUpdate",
    "PriceLevel",
    "Ticker",
    "TickerUpdate",
    "Trade",
    "TradeUpdate",
    "parse_depth_timestamp",
]

#: A raw level as parsed: ``[price, quantity, 0, 0]`` with numbers (later) or strings (2020-12).
RawLevel = Sequence[float | int | str]


class PriceLevel(NamedTuple):
    """One order book level: a price and the total quantity resting there."""

    price: Decimal
    quantity: Decimal


_NUMBERS = (float, int)


def _number(value: float | int | str) -> Decimal:
    # Floats go through their shortest repr, never their binary value.
    if type(value) is float:
        return Decimal(repr(value))
    if type(value) is int or type(value) is str:
        result = Decimal(value)
        if result.is_finite():
            return result
    raise ValueError(f"not a finite decimal number: {value!r}")


_PRICE = itemgetter(0)
_QUANTITY = itemgetter(1)
_LEVEL = partial(tuple.__new__, PriceLevel)


def _decimals(values: list[float | int | str]) -> list[Decimal]:
    # One orjson call writes every number in its shortest round-trip form (what repr() gives, in
    # C); Decimal then reads each token. A string among the numbers breaks the fast path (its
    # token is quoted), so the slow per-value path takes over and validates.
    if type(values[0]) is not str:
        try:
            return list(map(Decimal, orjson.dumps(values)[1:-1].decode().split(",")))
        except (InvalidOperation, ValueError, TypeError):
            pass
    return list(map(_number, values))


def _convert(raw: Sequence[RawLevel], *, descending: bool) -> tuple[PriceLevel, ...]:
    """Typed levels, best first (the wire order unless it is not sorted)."""
    if not raw:
        return ()
    raw_prices = list(map(_PRICE, raw))
    prices = _decimals(raw_prices)
    levels = tuple(map(_LEVEL, zip(prices, _decimals(list(map(_QUANTITY, raw))), strict=True)))
    # Numbers compare faster than Decimals; strings must be compared as the Decimals they mean.
    in_order = raw_prices if type(raw_prices[0]) is not str else prices
    try:
        if in_order == sorted(in_order, reverse=descending):
            return levels
    except TypeError:  # numbers mixed with strings
        if prices == sorted(prices, reverse=descending):
            return levels
    return tuple(sorted(levels, key=_PRICE, reverse=descending))


def check_raw_levels(raw: object) -> bool:
    """Check that ``raw`` is a list of ``[price, quantity, ...]`` levels.

    Returns:
        ``True`` when every price and quantity is already a number (so conversion can wait),
        ``False`` when some are strings (the caller converts now, which validates them).

    Raises:
        TypeError: the levels are not shaped as the exchange documents them.
    """
    if type(raw) is not list:
        raise TypeError("depth levels must be a list")
    numeric = True
    for level in raw:
        if type(level) is not list or len(level) < 2:
            raise TypeError(f"a depth level must be a list of at least 2 numbers, got {level!r}")
        price = level[0]
        quantity = level[1]
        if type(price) not in _NUMBERS or type(quantity) not in _NUMBERS:
            if type(price) is bool or type(quantity) is bool:
                raise TypeError(f"a depth level must hold numbers, got {level!r}")
            if not isinstance(price, (str, float, int)) or not isinstance(
                quantity, (str, float, int)
            ):
                raise TypeError(f"a depth level must hold numbers, got {level!r}")
            numeric = False
    return numeric


def parse_depth_timestamp(value: object) -> int:
    """Millisecond epoch time from a depth ``timestamp``: ms digits, or ISO-8601 (2020-12)."""
    if isinstance(value, str) and not value.isdigit():
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError(f"depth timestamp without a time zone: {value!r}")
        return round(moment.timestamp() * 1000)
    return structure_int(value)


@attrs.frozen(kw_only=True, eq=False)
class DepthSnapshot:
    """A snapshot of one market's order book from a depth channel.

    Attributes:
        market_code: the market (wire ``instrumentId``).
        level: the channel variant it came from (``depth``, ``depthL5``... or ``futures/depth``).
        timestamp: exchange time in epoch milliseconds (see :attr:`time`).
        seq_num: the snapshot's sequence number (later era; ``None`` for ``futures/depth``).
        checksum: the book checksum the exchange sent (later era; ``None`` otherwise).
        raw_asks: the ask levels as parsed from the wire, in wire order.
        raw_bids: the bid levels as parsed from the wire, in wire order.
    """

    market_code: str
    level: DepthLevel
    timestamp: int
    seq_num: int | None = None
    checksum: int | None = None
    raw_asks: Sequence[RawLevel] = attrs.field(repr=False)
    raw_bids: Sequence[RawLevel] = attrs.field(repr=False)

    @classmethod
    def from_levels(
        cls,
        *,
        market_code: str,
        level: DepthLevel,
        timestamp: int,
        asks: Sequence[tuple[Decimal, Decimal]],
        bids: Sequence[tuple[Decimal, Decimal]],
        seq_num: int | None = None,
        checksum: int | None = None,
    ) -> DepthSnapshot:
        """Build a snapshot from typed levels (for the simulator and tests)."""
        return cls(
            market_code=market_code,
            level=level,
            timestamp=timestamp,
            seq_num=seq_num,
            checksum=checksum,
            raw_asks=[[str(p), str(q), 0, 0] for p, q in asks],
            raw_bids=[[str(p), str(q), 0, 0] for p, q in bids],
        )

    @cached_property
    def asks(self) -> tuple[PriceLevel, ...]:
        """Ask levels, best (lowest price) first, typed; converted on first access."""
        return _convert(self.raw_asks, descending=False)

    @cached_property
    def bids(self) -> tuple[PriceLevel, ...]:
        """Bid levels, best (highest price) first, typed; converted on first access."""
        return _convert(self.raw_bids, descending=True)

    @property
    def best_ask(self) -> PriceLevel | None:
        """The lowest ask, or ``None`` when that side is empty."""
        asks = self.asks
        return asks[0] if asks else None

    @property
    def best_bid(self) -> PriceLevel | None:
        """The highest bid, or ``None`` when that side is empty."""
        bids = self.bids
        return bids[0] if bids else None

    @property
    def time(self) -> datetime:
        """:attr:`timestamp` as an aware UTC datetime."""
        return ms_to_datetime(self.timestamp)

    def _key(self) -> tuple[Any, ...]:
        return (
            self.market_code,
            self.level,
            self.timestamp,
            self.seq_num,
            self.checksum,
            self.asks,
            self.bids,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DepthSnapshot):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]


@attrs.frozen(kw_only=True)
class DepthUpdate(ChannelUpdate[DepthSnapshot]):
    """A frame from a depth channel: ``futures/depth``, ``depth``, ``depthL5/L10/L25``."""

    level: DepthLevel
    data: tuple[DepthSnapshot, ...]

    @property
    def channel(self) -> str:
        return self.level.value

    def selector(self, item: DepthSnapshot) -> str:
        return item.market_code


@decimals_as_strings
@attrs.frozen(kw_only=True)
class Trade:
    """One public trade."""

    market_code: str
    trade_id: int
    price: Decimal
    quantity: Decimal
    #: The taker's side (the wire sends it lower-case in examples: ``"buy"``).
    side: Side
    timestamp: int

    @property
    def time(self) -> datetime:
        return ms_to_datetime(self.timestamp)


@decimals_as_strings
@attrs.frozen(kw_only=True)
class TradeUpdate(ChannelUpdate[Trade]):
    """A ``trade`` channel frame."""

    data: tuple[Trade, ...]
    table: str = attrs.field(default="trade", init=False)

    @property
    def channel(self) -> str:
        return "trade"

    def selector(self, item: Trade) -> str:
        return item.market_code


@decimals_as_strings
@attrs.frozen(kw_only=True)
class Ticker:
    """24-hour statistics and prices of one market."""

    market_code: str
    last: Decimal
    mark_price: Decimal
    open_24h: Decimal
    high_24h: Decimal
    low_24h: Decimal
    #: Volume in the counter currency.
    volume_24h: Decimal
    #: Volume in the base currency.
    currency_volume_24h: Decimal
    open_interest: Decimal
    last_qty: Decimal
    timestamp: int
    last_mark_price: Decimal | None = None

    @property
    def time(self) -> datetime:
        return ms_to_datetime(self.timestamp)


@decimals_as_strings
@attrs.frozen(kw_only=True)
class TickerUpdate(ChannelUpdate[Ticker]):
    """A ``ticker`` channel frame (``ticker:all`` sends every market in one frame)."""

    WILDCARD: ClassVar[bool] = True

    data: tuple[Ticker, ...]
    table: str = attrs.field(default="ticker", init=False)

    @property
    def channel(self) -> str:
        return "ticker"

    def selector(self, item: Ticker) -> str:
        return item.market_code


@attrs.frozen(kw_only=True)
class Candle:
    """One candlestick of the current period (wire: a 7-element ``candle`` array)."""

    market_code: str
    #: Start of the candle, epoch milliseconds.
    timestamp: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    #: Volume in the counter currency.
    volume: Decimal
    #: Volume in the base currency.
    currency_volume: Decimal

    @property
    def time(self) -> datetime:
        return ms_to_datetime(self.timestamp)


_CANDLE_DECIMALS = ("open", "high", "low", "close", "volume", "currency_volume")


def _structure_candle(obj: Any, _: object) -> Candle:
    values = obj["candle"]
    if type(values) is not list or len(values) != 7:
        raise TypeError("candle must be a list of 7 values")
    fields: dict[str, Any] = {
        name: converter.structure(value, Decimal)
        for name, value in zip(_CANDLE_DECIMALS, values[1:], strict=True)
    }
    return Candle(
        market_code=converter.structure(obj["marketCode"], str),
        timestamp=structure_int(values[0]),
        **fields,
    )


def _unstructure_candle(candle: Candle) -> dict[str, Any]:
    return {
        "marketCode": candle.market_code,
        "candle": [str(candle.timestamp)]
        + [str(getattr(candle, name)) for name in _CANDLE_DECIMALS],
    }


converter.register_structure_hook(Candle, _structure_candle)
converter.register_unstructure_hook(Candle, _unstructure_candle)


@attrs.frozen(kw_only=True)
class CandleUpdate(ChannelUpdate[Candle]):
    """A candles channel frame; its table is ``candle<granularity>`` (``candle60s``)."""

    granularity: CandleGranularity
    data: tuple[Candle, ...]

    @property
    def table(self) -> str:
        return f"candle{self.granularity.value}"

    @property
    def channel(self) -> str:
        return f"candles{self.granularity.value}"

    def selector(self, item: Candle) -> str:
        return item.market_code


@decimals_as_strings
@attrs.frozen(kw_only=True)
class MarketInfo:
    """Reference data and live price bounds of one market (the ``market`` channel)."""

    market_code: str
    market_id: int
    name: str
    market_type: str = attrs.field(metadata=wire("type"))
    base: str
    counter: str
    reference_pair: str | None = None
    contract_val_currency: str | None = None
    margin_currency: str | None = None
    tick_size: Decimal
    qty_increment: Decimal
    market_price: Decimal
    upper_price_bound: Decimal
    lower_price_bound: Decimal
    market_price_last_updated: int | None = None
    listing_date: int | None = None


@attrs.frozen(kw_only=True)
class MarketUpdate(ChannelUpdate[MarketInfo]):
    """A ``market`` channel frame (``market:all`` sends every market in one frame)."""

    WILDCARD: ClassVar[bool] = True

    data: tuple[MarketInfo, ...]
    table: str = attrs.field(default="market", init=False)

    @property
    def channel(self) -> str:
        return "market"

    def selector(self, item: MarketInfo) -> str:
        return item.market_code


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso_ms(ms: int) -> str:
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _unstructure_snapshot(snapshot: DepthSnapshot) -> dict[str, Any]:
    if snapshot.level is DepthLevel.FUTURES:
        # The 2020-12 form: string levels and an ISO-8601 timestamp, no seqNum or checksum.
        return {
            "asks": [[str(p), str(q), "0", "0"] for p, q in snapshot.asks],
            "bids": [[str(p), str(q), "0", "0"] for p, q in snapshot.bids],
            "instrumentId": snapshot.market_code,
            "timestamp": _iso_ms(snapshot.timestamp),
        }
    number = converter.unstructure
    wire_form: dict[str, Any] = {"instrumentId": snapshot.market_code}
    if snapshot.seq_num is not None:
        wire_form["seqNum"] = snapshot.seq_num
    wire_form["timestamp"] = str(snapshot.timestamp)
    if snapshot.checksum is not None:
        wire_form["checksum"] = snapshot.checksum
    wire_form["asks"] = [[number(p), number(q), 0, 0] for p, q in snapshot.asks]
    wire_form["bids"] = [[number(p), number(q), 0, 0] for p, q in snapshot.bids]
    return wire_form


def _unstructure_depth_update(update: DepthUpdate) -> dict[str, Any]:
    return {"table": update.level.value, "data": [_unstructure_snapshot(s) for s in update.data]}


def _unstructure_candle_update(update: CandleUpdate) -> dict[str, Any]:
    return {"table": update.table, "data": [_unstructure_candle(c) for c in update.data]}


converter.register_unstructure_hook(DepthSnapshot, _unstructure_snapshot)
converter.register_unstructure_hook(DepthUpdate, _unstructure_depth_update)
converter.register_unstructure_hook(CandleUpdate, _unstructure_candle_update)
