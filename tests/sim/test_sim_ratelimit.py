"""The simulator's own rate limits, against the numbers of the documents' "Rate Limit" table.

REST: 100 requests per second and 2500 per 5 minutes, 2 per 10 seconds for
``POST /v2.1/delivery/orders``; refusals are ``20007`` with HTTP 429. Where time matters the REST
app runs in-process on trio's MockClock (time moves only when the test jumps it); the counting
per caller is checked over real HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import httpx
import orjson
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from flexconn.sim.exchange import SimExchange
from flexconn.sim.ratelimit import (
    DELIVERY_ORDERS_ROUTE,
    Limiter,
    Rate,
    RestLimiter,
    RestLimits,
)
from flexconn.sim.rest import make_rest_app, serve_rest

REFUSED = (429, "20007", "You are accessing server too rapidly")


async def request(
    app: Any, verb: str, path: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> tuple[int, dict[str, Any]]:
    """One request straight into the ASGI app: ``(status, body)``."""
    scope = {
        "type": "http",
        "method": verb,
        "path": path,
        "query_string": b"",
        "headers": [(b"host", b"sim.test"), *headers],
        "client": ("127.0.0.1", 50000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], orjson.loads(sent[1]["body"])


def refusal(reply: tuple[int, dict[str, Any]]) -> tuple[int, str, str] | None:
    status, body = reply
    if status != 429:
        return None
    return status, body["code"], body["message"]


async def test_rest_allows_100_per_second(mock_clock: trio.testing.MockClock) -> None:
    app = make_rest_app(SimExchange())
    for _ in range(100):
        assert (await request(app, "GET", "/v2/ping"))[0] == 200
    assert refusal(await request(app, "GET", "/v2/ticker")) == REFUSED
    mock_clock.jump(0.01)
    assert (await request(app, "GET", "/v2/ping"))[0] == 200
    assert refusal(await request(app, "GET", "/v2/ping")) == REFUSED
    # A caller paced at exactly 100 per second is never refused.
    for _ in range(300):
        mock_clock.jump(0.01)
        assert (await request(app, "GET", "/v2/ping"))[0] == 200


async def test_delivery_orders_allow_2_per_10_seconds(mock_clock: trio.testing.MockClock) -> None:
    app = make_rest_app(SimExchange())
    key = [(b"accesskey", b"some-key")]
    path = "/v2.1/delivery/orders"
    # Unknown key: refused by the signature check, which comes after the limit.
    assert [(await request(app, "POST", path, key))[0] for _ in range(3)] == [401, 401, 429]
    assert (await request(app, "GET", path, key))[0] == 401  # the route's own limit only
    mock_clock.jump(4.9)
    assert (await request(app, "POST", path, key))[0] == 429
    mock_clock.jump(0.1)
    assert (await request(app, "POST", path, key))[0] == 401
    assert (await request(app, "POST", path, key))[0] == 429


def test_rest_allows_2500_per_5_minutes() -> None:
    # Steady at 2500 per 300 s (one every 0.12 s): never refused, for ten minutes.
    steady = RestLimiter()
    assert all(steady.allow(i * 0.12, "GET /v2/ping") for i in range(5000))
    # Twice as fast (still within 100 per second): the allowance of 2500 runs out after 5
    # minutes; the 5000th request, 299.94 s in, would leave 5000 * 0.12 - 299.94 > 300 s owed.
    fast = RestLimiter()
    admitted = [fast.allow(i * 0.06, "GET /v2/ping") for i in range(5001)]
    assert admitted.index(False) == 4999


def test_refused_requests_count_against_nothing() -> None:
    limiter = RestLimiter(
        RestLimits(
            overall=(Rate(count=3, period=60.0),),
            routes={DELIVERY_ORDERS_ROUTE: (Rate(count=1, period=60.0),)},
        )
    )
    assert limiter.allow(0.0, DELIVERY_ORDERS_ROUTE)
    assert not limiter.allow(0.0, DELIVERY_ORDERS_ROUTE)
    assert not limiter.allow(0.0, DELIVERY_ORDERS_ROUTE)
    assert [limiter.allow(0.0, "GET /v2/ping") for _ in range(3)] == [True, True, False]


def test_unlimited_allows_everything() -> None:
    limiter = RestLimiter(RestLimits.unlimited())
    assert all(limiter.allow(0.0, DELIVERY_ORDERS_ROUTE) for _ in range(10_000))
    assert Limiter(None).allow(0.0, 10**9)


async def test_callers_are_counted_apart(nursery: trio.Nursery) -> None:
    limits = RestLimits(overall=(Rate(count=2, period=60.0),), routes={})
    url = await nursery.start(partial(serve_rest, SimExchange(), rate_limits=limits))
    async with httpx.AsyncClient(base_url=url) as http:
        a, b = {"AccessKey": "key-a"}, {"AccessKey": "key-b"}
        assert [(await http.get("/v2/ping", headers=a)).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        # Another key, and unsigned requests (counted by client address), have their own.
        assert [(await http.get("/v2/ping", headers=b)).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        assert [(await http.get("/v2/ping")).status_code for _ in range(3)] == [200, 200, 429]


# --- the counting rule --------------------------------------------------------------------


@given(
    count=st.integers(min_value=1, max_value=20),
    period=st.sampled_from([0.5, 1.0, 10.0, 60.0]),
    gaps=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=200),
)
def test_no_interval_admits_more_than_its_share(
    count: int, period: float, gaps: list[float]
) -> None:
    """Over any interval of length t, at most ``count * (1 + t / period)`` are admitted."""
    limiter = Limiter(count, period=period)
    now = 0.0
    admitted: list[float] = []
    for gap in gaps:
        now += gap
        if limiter.allow(now):
            admitted.append(now)
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            span = admitted[j] - start
            assert j - i + 1 <= count * (1 + span / period) + 1e-6


@given(
    count=st.integers(min_value=1, max_value=200),
    period=st.sampled_from([1.0, 10.0, 60.0, 300.0]),
    extra=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=300),
)
def test_paced_callers_are_never_refused(count: int, period: float, extra: list[float]) -> None:
    """Events at least ``period / count`` apart always pass."""
    limiter = Limiter(count, period=period)
    now = 0.0
    for gap in extra:
        assert limiter.allow(now)
        now += period / count + gap


@given(
    count=st.integers(min_value=1, max_value=100),
    quiet=st.floats(min_value=1.0, max_value=10.0),
    batch=st.integers(min_value=1, max_value=100),
)
def test_a_quiet_caller_may_burst_up_to_the_count(count: int, quiet: float, batch: int) -> None:
    limiter = Limiter(count, period=1.0)
    assert limiter.allow(0.0, count)
    assert limiter.allow(quiet, batch) is (batch <= count)
