"""The REST limiter: documented defaults and the token-bucket bound on any interval."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flexconn.restlimits import DEFAULT_REST_RATE_LIMITS, RestLimiter, RestRateLimits, Window


def test_documented_defaults() -> None:
    assert DEFAULT_REST_RATE_LIMITS.overall == (
        Window(count=100, period=1.0),
        Window(count=2500, period=300.0),
    )
    assert DEFAULT_REST_RATE_LIMITS.routes == {
        "POST /v2.1/delivery/orders": (Window(count=2, period=10.0),)
    }


def test_burst_then_refill_and_route_windows() -> None:
    limiter = RestLimiter()
    assert all(limiter.try_acquire(0.0, "GET /v2/ticker") for _ in range(100))
    assert not limiter.try_acquire(0.0, "GET /v2/ticker")
    assert limiter.delay(0.0) == 0.01
    assert limiter.try_acquire(0.01)
    route = "POST /v2.1/delivery/orders"
    fresh = RestLimiter()
    assert fresh.try_acquire(0.0, route) and fresh.try_acquire(0.0, route)
    assert not fresh.try_acquire(0.0, route)
    assert fresh.delay(0.0, route) == 5.0
    assert fresh.try_acquire(0.0, "GET /v2/ping")  # other routes are unaffected


def test_refused_request_charges_nothing() -> None:
    limiter = RestLimiter(
        RestRateLimits(
            overall=(Window(count=1, period=1.0),), routes={"X": (Window(count=5, period=1.0),)}
        )
    )
    assert limiter.try_acquire(0.0, "X")
    assert not limiter.try_acquire(0.5, "X")
    assert limiter.try_acquire(1.0, "X")  # the refusal at 0.5 took no route token either


def test_unlimited() -> None:
    limiter = RestLimiter(RestRateLimits.unlimited())
    assert all(limiter.try_acquire(0.0) for _ in range(10_000))
    assert limiter.delay(0.0) == 0.0


@given(st.lists(st.floats(min_value=0, max_value=1.0), min_size=1, max_size=200))
def test_no_interval_exceeds_the_bucket_bound(gaps: list[float]) -> None:
    count, period = 5, 2.0
    limiter = RestLimiter(RestRateLimits(overall=(Window(count=count, period=period),), routes={}))
    now = 0.0
    accepted: list[float] = []
    for gap in gaps:
        now += gap
        if limiter.try_acquire(now):
            accepted.append(now)
    for i, first in enumerate(accepted):
        for j in range(i, len(accepted)):
            span = accepted[j] - first
            assert j - i + 1 <= count + span * count / period + 1e-9
