"""Trade backfill: after a reconnect, the trades missed during the drop, fetched over REST.

A ``trade`` subscription opened with ``backfill=rest_client`` remembers the newest trade time and
the recent trade ids it delivered (:class:`TradeHistory`). After a reconnect the connection holds
the live updates back (``Subscription.held``) while :func:`backfill_trades` fetches the trades
since the last one seen, delivers them without duplicates, then releases the held ones: delivery
stays in trade order and every trade arrives once.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import attrs

from flexconn.errors import FlexconnError
from flexconn.models.market import Trade, TradeUpdate
from flexconn.models.rest import PublicTrade as RestPublicTrade

if TYPE_CHECKING:
    from flexconn._subscriptions import Subscription

__all__ = ["TradeBackfill", "TradeHistory", "backfill_trades"]

log = logging.getLogger("flexconn.connection")


class TradeBackfill(Protocol):
    """What trade backfill needs: :class:`flexconn.rest.RestClient` provides it."""

    def iter_public_trades(
        self, market_code: str, *, start_time: int, end_time: int
    ) -> AsyncIterator[RestPublicTrade]: ...


class TradeHistory:
    """The trades a subscription delivered: the newest time, and recent ids for de-duplication."""

    __slots__ = ("last_trade_time", "seen_trade_ids")

    def __init__(self) -> None:
        self.last_trade_time: int | None = None
        self.seen_trade_ids: deque[int] = deque(maxlen=4096)

    def remember(self, update: TradeUpdate) -> TradeUpdate | None:
        """Record ``update``'s trades; return it without already-seen trades (None if empty)."""
        seen = set(self.seen_trade_ids)
        fresh = tuple(t for t in update.data if t.trade_id not in seen)
        for trade in fresh:
            self.seen_trade_ids.append(trade.trade_id)
            if self.last_trade_time is None or trade.timestamp > self.last_trade_time:
                self.last_trade_time = trade.timestamp
        if not fresh:
            return None
        return update if len(fresh) == len(update.data) else attrs.evolve(update, data=fresh)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def backfill_trades(
    sub: Subscription,
    *,
    deliver: Callable[[Subscription, object], Awaitable[None]],
    failed: Callable[[str], None],
) -> None:
    """Deliver the trades missed while disconnected, then the live ones held meanwhile.

    ``failed`` is told (market and error) when REST fails; the held updates are released anyway.
    """
    assert sub.backfill is not None and sub.held is not None
    market = sub.channel.selector
    start = sub.trades.last_trade_time
    try:
        if start is not None:
            missed: list[Trade] = []
            async for trade in sub.backfill.iter_public_trades(
                market, start_time=start, end_time=_now_ms()
            ):
                missed.append(
                    Trade(
                        market_code=market,
                        trade_id=trade.match_id,
                        price=trade.match_price,
                        quantity=trade.match_quantity,
                        side=trade.side,
                        timestamp=trade.match_timestamp,
                    )
                )
            update = sub.trades.remember(TradeUpdate(data=tuple(missed)))
            if update is not None:
                await deliver(sub, update)
    except FlexconnError as exc:
        log.warning("trade backfill for %s failed: %s", market, exc)
        failed(f"{market}: {exc}")
    finally:
        held, sub.held = sub.held, None
        for item in held:
            fresh = sub.trades.remember(item)
            if fresh is not None:
                await deliver(sub, fresh)
