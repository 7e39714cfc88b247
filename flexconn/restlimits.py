"""The REST API's documented request limits, shared by the client's pacing and the simulator.

The exchange documents 100 requests per second and 2500 per 5 minutes for the REST API, and 2 per
10 seconds for ``POST /v2.1/delivery/orders``. Each limit is a token bucket
(:class:`flexconn.ratelimit.TokenBucket`) of ``count`` tokens refilled over ``period``: the client
paces itself with the same model the simulator enforces, so a paced client is never refused. The
limiter never reads a clock; callers pass ``now`` (trio time), which keeps it pure and lets
``MockClock`` drive it.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from flexconn.ratelimit import TokenBucket

__all__ = ["DEFAULT_REST_RATE_LIMITS", "RestLimiter", "RestRateLimits", "Window"]


@attrs.frozen(kw_only=True)
class Window:
    """At most ``count`` requests per ``period`` seconds."""

    count: int = attrs.field(validator=attrs.validators.gt(0))
    period: float = attrs.field(validator=attrs.validators.gt(0))


@attrs.frozen(kw_only=True)
class RestRateLimits:
    """The REST limits: ``overall`` apply to every request, ``routes`` add per-route ones.

    Attributes:
        overall: windows every request counts against.
        routes: extra windows for one route, keyed ``"<VERB> <path template>"``.
    """

    overall: tuple[Window, ...] = (Window(count=100, period=1.0), Window(count=2500, period=300.0))
    routes: Mapping[str, tuple[Window, ...]] = attrs.field(
        factory=lambda: {"POST /v2.1/delivery/orders": (Window(count=2, period=10.0),)}
    )

    @classmethod
    def unlimited(cls) -> RestRateLimits:
        """No limits at all (benchmarks)."""
        return cls(overall=(), routes={})


DEFAULT_REST_RATE_LIMITS = RestRateLimits()


def _buckets(windows: tuple[Window, ...]) -> list[TokenBucket]:
    return [TokenBucket(w.count, per=w.period) for w in windows]


class RestLimiter:
    """Charges requests to the windows of :class:`RestRateLimits` (one instance per caller)."""

    def __init__(self, limits: RestRateLimits = DEFAULT_REST_RATE_LIMITS) -> None:
        self.limits = limits
        self._overall = _buckets(limits.overall)
        self._routes = {route: _buckets(windows) for route, windows in limits.routes.items()}

    def _applicable(self, route: str) -> list[TokenBucket]:
        return self._overall + self._routes.get(route, [])

    def delay(self, now: float, route: str = "") -> float:
        """Seconds until a request on ``route`` would be allowed (0: now); charges nothing."""
        return max((b.delay(now) for b in self._applicable(route)), default=0.0)

    def try_acquire(self, now: float, route: str = "") -> bool:
        """Charge one request on ``route`` if every applicable window allows it."""
        buckets = self._applicable(route)
        if any(b.delay(now) > 0 for b in buckets):
            return False
        for bucket in buckets:
            bucket.try_take(now)
        return True
