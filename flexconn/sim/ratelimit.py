"""The simulator's documented rate limits, enforced with token buckets.

The exchange documents: 50 WebSocket messages per second on an authenticated socket, 1 per second
on an unauthenticated one, 200 new WebSocket connections per minute, and at most 50 orders per
second per account over WebSocket. A limit of ``rate`` per ``period`` is a token bucket holding
``rate`` tokens that refills continuously, the same model :class:`flexconn.ratelimit.TokenBucket`
gives clients, so a client pacing itself with that bucket is never refused. Buckets read time
only through the ``now`` their callers pass (trio time in the servers), so ``MockClock`` governs
them.
"""

from __future__ import annotations

from typing import Any

import attrs

from flexconn.ratelimit import TokenBucket

__all__ = ["DEFAULT_RATE_LIMITS", "Limiter", "RateLimits"]


def _positive_or_none(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be positive or None, got {value}")


@attrs.frozen(kw_only=True)
class RateLimits:
    """The limits one simulator enforces; ``None`` switches a limit off.

    Attributes:
        authenticated: messages per second on a logged-in socket (pings are never counted).
        unauthenticated: messages per second before login.
        connections_per_minute: new WebSocket connections per minute, all clients together.
        orders_per_account: orders (each order of a batch, and each modify) per second per
            account, across its sockets.
    """

    authenticated: float | None = attrs.field(default=50.0, validator=_positive_or_none)
    unauthenticated: float | None = attrs.field(default=1.0, validator=_positive_or_none)
    connections_per_minute: float | None = attrs.field(default=200.0, validator=_positive_or_none)
    orders_per_account: float | None = attrs.field(default=50.0, validator=_positive_or_none)

    @classmethod
    def unlimited(cls) -> RateLimits:
        """No limits at all (benchmarks, load tests)."""
        return cls(
            authenticated=None,
            unauthenticated=None,
            connections_per_minute=None,
            orders_per_account=None,
        )


DEFAULT_RATE_LIMITS = RateLimits()


class Limiter:
    """``rate`` events per ``period`` seconds, or no limit when ``rate`` is ``None``."""

    __slots__ = ("_bucket",)

    def __init__(self, rate: float | None, *, period: float = 1.0) -> None:
        self._bucket = None if rate is None else TokenBucket(rate, per=period)

    def allow(self, now: float, count: int = 1) -> bool:
        """Take ``count`` events at trio time ``now`` if the limit allows them all."""
        return self._bucket is None or self._bucket.try_take(now, count)
