"""Public market data built from a market's trades: recent trades, candles and 24h statistics.

Design note: every trade updates one one-minute bucket (integer ticks and lots); candles of any
granularity (all are whole minutes) and the rolling 24-hour ticker figures are aggregated from
those buckets when asked for, so recording a trade costs O(1) whatever is being served. Buckets
are aligned to the Unix epoch, so a day candle starts at 00:00 UTC. The 24-hour window has
one-minute resolution: it covers the current minute and the 1,439 before it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable, Reversible
from decimal import Decimal
from typing import Final, Protocol, TypeVar

import attrs

from flexconn.models.enums import CandleGranularity
from flexconn.sim.markets import MarketSpec
from flexconn.sim.orders import PublicTrade

__all__ = ["GRANULARITIES", "Candle", "Tape", "Ticker", "newest_within"]

_MINUTE_MS: Final = 60_000
_DAY_MS: Final = 86_400_000
_ZERO = Decimal(0)

#: Candle widths in seconds that :meth:`Tape.candles` accepts.
GRANULARITIES: Final[frozenset[int]] = frozenset(g.seconds for g in CandleGranularity)


class _Stamped(Protocol):
    @property
    def timestamp(self) -> int: ...


_T = TypeVar("_T", bound=_Stamped)


def newest_within(
    records: Reversible[_T],
    limit: int | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    keep: Callable[[_T], bool] | None = None,
) -> list[_T]:
    """Of ``records`` (in time order), the newest ``limit`` stamped within ``[start_ms, end_ms]``
    and passing ``keep``, oldest first."""
    picked: list[_T] = []
    if limit is not None and limit <= 0:
        return picked
    for record in reversed(records):
        if keep is not None and not keep(record):
            continue
        if end_ms is not None and record.timestamp > end_ms:
            continue
        if start_ms is not None and record.timestamp < start_ms:
            break
        picked.append(record)
        if limit is not None and len(picked) >= limit:
            break
    picked.reverse()
    return picked


@attrs.frozen(kw_only=True)
class Candle:
    """One candle: ``volume`` is in the counter currency, ``currency_volume`` in the base."""

    start_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    currency_volume: Decimal


@attrs.frozen(kw_only=True)
class Ticker:
    """Rolling 24-hour statistics of one market.

    ``last``/``last_qty`` are ``None`` before the first trade; ``open24h``/``high24h``/``low24h``
    are ``None`` when nothing traded in the window. ``volume24h`` is in the counter currency and
    ``currency_volume24h`` in the base, as the exchange reports them.
    """

    market_code: str
    last: Decimal | None
    last_qty: Decimal | None
    mark_price: Decimal
    open24h: Decimal | None
    high24h: Decimal | None
    low24h: Decimal | None
    volume24h: Decimal
    currency_volume24h: Decimal
    open_interest: Decimal
    timestamp: int


class _Bucket:
    """One minute of trades: OHLC in ticks, value in ``tick * lot`` units, size in lots."""

    __slots__ = ("close", "high", "lots", "low", "open", "units")

    def __init__(self, price: int) -> None:
        self.open = self.high = self.low = self.close = price
        self.units = 0
        self.lots = 0


class Tape:
    """The trade record of one market."""

    __slots__ = ("_buckets", "_keys", "_lot", "_tick", "last_lots", "last_price", "spec", "trades")

    def __init__(self, spec: MarketSpec, *, max_trades: int) -> None:
        self.spec = spec
        self._tick = spec.tick_size
        self._lot = spec.qty_increment
        #: recent public trades, oldest first
        self.trades: deque[PublicTrade] = deque(maxlen=max_trades)
        self.last_price: int | None = None
        self.last_lots = 0
        self._buckets: dict[int, _Bucket] = {}
        self._keys: list[int] = []

    def record(self, trade: PublicTrade, price: int, lots: int) -> None:
        """Add a trade (``price`` in ticks and ``lots`` mirror its Decimal fields)."""
        self.trades.append(trade)
        self.last_price = price
        self.last_lots = lots
        start = trade.timestamp - trade.timestamp % _MINUTE_MS
        bucket = self._buckets.get(start)
        if bucket is None:
            bucket = self._buckets[start] = _Bucket(price)
            keys = self._keys
            if not keys or keys[-1] < start:
                keys.append(start)
            else:
                insort(keys, start)
        elif price > bucket.high:
            bucket.high = price
        elif price < bucket.low:
            bucket.low = price
        bucket.close = price
        bucket.units += price * lots
        bucket.lots += lots

    def recent(
        self, limit: int | None = None, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[PublicTrade]:
        """Recent trades within ``[start_ms, end_ms]``, the newest ``limit`` of them, oldest
        first."""
        return newest_within(self.trades, limit, start_ms, end_ms)

    def candles(
        self,
        granularity_s: int,
        limit: int = 500,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[Candle]:
        """Candles of ``granularity_s`` seconds covering ``[start_ms, end_ms]``, the newest
        ``limit``, oldest first. Periods without trades have no candle.

        Raises:
            ValueError: the granularity is not one the exchange offers.
        """
        if granularity_s not in GRANULARITIES:
            raise ValueError(f"unsupported candle granularity {granularity_s}s")
        width = granularity_s * 1000
        keys = self._keys
        hi = len(keys) if end_ms is None else bisect_right(keys, end_ms)
        lo = 0 if start_ms is None else bisect_left(keys, start_ms - start_ms % width)
        groups: list[tuple[int, list[_Bucket]]] = []
        for i in range(hi - 1, lo - 1, -1):
            key = keys[i]
            start = key - key % width
            if groups and groups[-1][0] == start:
                groups[-1][1].append(self._buckets[key])
            elif len(groups) >= limit:
                break
            else:
                groups.append((start, [self._buckets[key]]))
        return [self._candle(start, buckets[::-1]) for start, buckets in reversed(groups)]

    def _candle(self, start: int, buckets: list[_Bucket]) -> Candle:
        tick = self._tick
        return Candle(
            start_ms=start,
            open=buckets[0].open * tick,
            high=max(b.high for b in buckets) * tick,
            low=min(b.low for b in buckets) * tick,
            close=buckets[-1].close * tick,
            volume=sum(b.units for b in buckets) * tick * self._lot,
            currency_volume=sum(b.lots for b in buckets) * self._lot,
        )

    def ticker(self, now: int, mark: Decimal, open_interest_lots: int) -> Ticker:
        """The 24-hour figures as of ``now``."""
        tick = self._tick
        lot = self._lot
        window_start = now - now % _MINUTE_MS - _DAY_MS + _MINUTE_MS
        keys = self._keys
        lo = bisect_left(keys, window_start)
        hi = bisect_right(keys, now)
        buckets = [self._buckets[key] for key in keys[lo:hi]]
        last = self.last_price
        return Ticker(
            market_code=self.spec.market_code,
            last=None if last is None else last * tick,
            last_qty=None if last is None else self.last_lots * lot,
            mark_price=mark,
            open24h=buckets[0].open * tick if buckets else None,
            high24h=max(b.high for b in buckets) * tick if buckets else None,
            low24h=min(b.low for b in buckets) * tick if buckets else None,
            volume24h=sum(b.units for b in buckets) * tick * lot if buckets else _ZERO,
            currency_volume24h=sum(b.lots for b in buckets) * lot if buckets else _ZERO,
            open_interest=open_interest_lots * lot,
            timestamp=now,
        )
