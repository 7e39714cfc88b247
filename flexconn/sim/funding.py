"""Funding of the simulated perpetual swaps: one rate per perpetual per hour.

The engine settles no funding, so the exchange only records rates, as the funding endpoints
report them. A record is taken for each hour when it is first asked about (the first query after
the hour boundary), for every perpetual at once: the premium of the perpetual's mark price over
its spot market's (``BTC-USD`` for ``BTC-USD-SWAP-LIN``; the perpetual's own mark when there is
no spot market), capped at +/-0.3 % and rounded to 1e-8. Hours in which nobody asked have no
record.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

import attrs

from flexconn.sim.engine import Engine

__all__ = ["HOUR_MS", "Funding", "FundingRecord", "hour_of"]

#: One hour in milliseconds: funding records and delivery auctions are hourly.
HOUR_MS: Final = 3_600_000
_CAP: Final = Decimal("0.003")
_QUANTUM: Final = Decimal("1e-8")


def hour_of(now_ms: int) -> int:
    """The start of the hour holding ``now_ms`` (epoch milliseconds)."""
    return now_ms - now_ms % HOUR_MS


@attrs.frozen(kw_only=True)
class FundingRecord:
    """The funding rate of one perpetual for the hour starting at ``timestamp``."""

    market_code: str
    rate: Decimal
    index: Decimal
    mark_price: Decimal
    timestamp: int


class Funding:
    """The funding records of every perpetual of ``engine``, oldest first."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._records: list[FundingRecord] = []
        self._hour: int | None = None

    def _catch_up(self, now_ms: int) -> None:
        hour = hour_of(now_ms)
        if self._hour == hour:
            return
        self._hour = hour
        engine = self._engine
        for spec in engine.markets.values():
            if not spec.is_perpetual:
                continue
            mark = engine.mark_price(spec.market_code)
            spot_code = f"{spec.base}-{spec.counter}"
            index = engine.mark_price(spot_code) if spot_code in engine.markets else mark
            premium = (mark - index) / index if index else Decimal(0)
            rate = max(-_CAP, min(_CAP, premium)).quantize(_QUANTUM)
            self._records.append(
                FundingRecord(
                    market_code=spec.market_code,
                    rate=rate,
                    index=index,
                    mark_price=mark,
                    timestamp=hour,
                )
            )

    def history(
        self, now_ms: int, market_code: str | None, start_ms: int, end_ms: int
    ) -> list[FundingRecord]:
        """Records within ``[start_ms, end_ms]``, of one perpetual or all, newest first."""
        self._catch_up(now_ms)
        return [
            r
            for r in reversed(self._records)
            if (market_code is None or r.market_code == market_code)
            and start_ms <= r.timestamp <= end_ms
        ]

    def latest(self, now_ms: int, market_code: str) -> FundingRecord | None:
        """The newest record of one perpetual, if any."""
        self._catch_up(now_ms)
        return next((r for r in reversed(self._records) if r.market_code == market_code), None)
