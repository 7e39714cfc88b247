"""The simulator's rate limits: what the exchange documents, enforced the way a server counts.

The numbers come from the "Rate Limit" table of the later API introduction (the 2020-12
introduction already gives REST its 100 per second); who is counted together is the simulator's
choice, since the documents do not say:

- REST requests: 100 per second and 2500 per 5 minutes, per API key (per client address for
  unsigned requests);
- REST ``POST /v2.1/delivery/orders``: 2 per 10 seconds, per API key, on top of the above;
- new WebSocket connections: 200 per minute, for the whole server;
- WebSocket messages: 50 per second on a logged-in socket (pings never count), 1 per second
  before login, per socket;
- orders over WebSocket: 50 per second per account, across its sockets (the WebSocket
  documents' order commands).

A refusal is error ``20007`` (the documents' error table; HTTP status 429 on REST).

How a limit of ``count`` per ``period`` counts. The documents do not say, so the simulator takes
the reading that lets a steady client run at the documented rate and lets an idle one burst up to
``count`` at once: the generic cell rate algorithm. Each request is due ``period / count`` after
the previous one's due time (its *theoretical arrival time*); a request is admitted while the
due time it would leave stays within ``period`` of now. Requests spaced ``period / count`` apart
are therefore always admitted, ``count`` requests at once are admitted after a quiet ``period``,
and no interval of length ``t`` ever admits more than ``count * (1 + t / period)``. Limiters read
time only through the ``now`` their callers pass (trio time in the servers), so ``MockClock``
governs them; nothing here reads a clock or imports the client's pacing code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "DEFAULT_REST_LIMITS",
    "DELIVERY_ORDERS_ROUTE",
    "Limiter",
    "Rate",
    "RateLimits",
    "RestLimiter",
    "RestLimits",
]

#: Slack on every comparison so that float rounding never refuses a client pacing exactly at
#: the documented rate (far below any clock's resolution).
_SLACK: Final = 1e-9


def _positive_or_none(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be positive or None, got {value}")


@attrs.frozen(kw_only=True)
class RateLimits:
    """The WebSocket limits one simulator enforces; ``None`` switches a limit off.

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


DEFAULT_RATE_LIMITS: Final = RateLimits()


@attrs.frozen(kw_only=True)
class Rate:
    """At most ``count`` requests per ``period`` seconds."""

    count: int = attrs.field(validator=attrs.validators.gt(0))
    period: float = attrs.field(validator=attrs.validators.gt(0))


#: The one REST route with a limit of its own, as the limits key routes: ``"<VERB> <template>"``.
DELIVERY_ORDERS_ROUTE: Final = "POST /v2.1/delivery/orders"


@attrs.frozen(kw_only=True)
class RestLimits:
    """The REST limits one simulator enforces, per API key (or client address).

    Attributes:
        overall: the rates every request counts against.
        routes: extra rates for one route, keyed ``"<VERB> <path template>"``.
    """

    overall: tuple[Rate, ...] = (Rate(count=100, period=1.0), Rate(count=2500, period=300.0))
    routes: Mapping[str, tuple[Rate, ...]] = attrs.field(
        factory=lambda: {DELIVERY_ORDERS_ROUTE: (Rate(count=2, period=10.0),)}
    )

    @classmethod
    def unlimited(cls) -> RestLimits:
        """No limits at all (benchmarks)."""
        return cls(overall=(), routes={})


DEFAULT_REST_LIMITS: Final = RestLimits()


class Limiter:
    """``rate`` events per ``period`` seconds, or no limit when ``rate`` is ``None``.

    Keeps one number, the theoretical arrival time of the next event (see the module notes).
    """

    __slots__ = ("_due", "_interval", "_period")

    def __init__(self, rate: float | None, *, period: float = 1.0) -> None:
        if rate is not None and not (rate > 0 and period > 0):
            raise ValueError("rate and period must be positive")
        self._period = period
        self._interval = None if rate is None else period / rate
        self._due = float("-inf")

    def _next_due(self, now: float, count: int) -> float | None:
        """The due time ``count`` more events would leave, or ``None`` if they do not fit."""
        assert self._interval is not None
        due = max(self._due, now) + count * self._interval
        return due if due - now <= self._period + _SLACK else None

    def allow(self, now: float, count: int = 1) -> bool:
        """Admit ``count`` events at trio time ``now`` if the limit allows them all."""
        if self._interval is None:
            return True
        due = self._next_due(now, count)
        if due is None:
            return False
        self._due = due
        return True

    def would_allow(self, now: float, count: int = 1) -> bool:
        """Whether :meth:`allow` would admit ``count`` events now; admits nothing."""
        return self._interval is None or self._next_due(now, count) is not None


class RestLimiter:
    """One caller's REST allowance under :class:`RestLimits`.

    A request is admitted only if every rate that applies to it (the overall ones and its
    route's) has room, and then counts against all of them; a refused request counts against
    none.
    """

    __slots__ = ("_overall", "_routes")

    def __init__(self, limits: RestLimits = DEFAULT_REST_LIMITS) -> None:
        self._overall = [Limiter(r.count, period=r.period) for r in limits.overall]
        self._routes = {
            route: [Limiter(r.count, period=r.period) for r in rates]
            for route, rates in limits.routes.items()
        }

    def allow(self, now: float, route: str) -> bool:
        """Admit one request on ``route`` (``"<VERB> <path template>"``) at trio time ``now``."""
        limiters = [*self._overall, *self._routes.get(route, ())]
        if not all(limiter.would_allow(now) for limiter in limiters):
            return False
        for limiter in limiters:
            limiter.allow(now)
        return True
