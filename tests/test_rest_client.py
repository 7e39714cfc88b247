"""The REST client against the real simulator over loopback, and its timing under MockClock."""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from functools import partial

import attrs
import httpx
import pytest
import trio

from flexconn.auth import Credentials
from flexconn.errors import (
    AuthenticationError,
    InvalidOrderError,
    InvalidRequestError,
    LocalProtocolError,
    OrderOutcomeUnknown,
    PermissionDenied,
    RateLimitError,
    RemoteProtocolError,
    ReplyTimeout,
    ServerError,
    TransportError,
    ValidationError,
)
from flexconn.models import rest as m
from flexconn.models.enums import CandleGranularity, OrderNotice, OrderStatus, OrderType, Side
from flexconn.rest import RestClient, RetryPolicy
from flexconn.restlimits import RestRateLimits, Window
from flexconn.sim.exchange import SimExchange
from flexconn.sim.ratelimit import Rate, RestLimits
from flexconn.sim.rest import serve_rest

FAST_RETRY = RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.002)
HOUR = 3_600_000


@attrs.frozen
class Sim:
    exchange: SimExchange
    url: str

    @property
    def creds(self) -> Credentials:
        key = self.exchange.demo_key
        return Credentials(key.api_key, key.api_secret)


@pytest.fixture
async def sim(nursery: trio.Nursery) -> Sim:
    exchange = SimExchange()
    url = await nursery.start(partial(serve_rest, exchange))
    return Sim(exchange, url)


@pytest.fixture
async def rest(sim: Sim) -> AsyncIterator[RestClient]:
    async with RestClient(sim.url, sim.creds, retry=FAST_RETRY) as client:
        yield client


def fill(
    exchange: SimExchange, quantity: str, *, taker: str = "1001", maker: str = "maker"
) -> None:
    """Cross two accounts' orders on the BTC perpetual (``taker`` buys)."""
    for account in (taker, maker):
        if not exchange.engine.has_account(account):
            exchange.open_account(account, {"USD": Decimal(10_000_000)})
    for account, side in ((maker, Side.SELL), (taker, Side.BUY)):
        exchange.engine.place(
            account,
            market_code="BTC-USD-SWAP-LIN",
            side=side,
            order_type=OrderType.LIMIT,
            quantity=Decimal(quantity),
            price=Decimal(50000),
        )
    exchange.flush()


def limit_order(cid: int, price: str = "40000", quantity: str = "0.01") -> m.RestPlaceOrder:
    return m.RestPlaceOrder(
        client_order_id=cid,
        market_code="BTC-USD-SWAP-LIN",
        side=Side.BUY,
        quantity=Decimal(quantity),
        order_type=OrderType.LIMIT,
        price=Decimal(price),
    )


# --- every method against the simulator -------------------------------------------------------


async def test_public_methods(rest: RestClient, sim: Sim) -> None:
    assert (await rest.ping()).success is True
    markets = await rest.markets()
    assert {x.market_code for x in markets.data} == set(sim.exchange.markets)
    btc = next(x for x in markets.data if x.market_code == "BTC-USD")
    assert btc.tick_size == Decimal("0.1") and btc.reference_pair == "BTC/USD"
    assets = await rest.assets()
    assert {"BTC", "USD", "BTC-USD-SWAP-LIN"} <= {a.instrument_id for a in assets.data}
    fill(sim.exchange, "0.5")
    ticker = {t.market_code: t for t in (await rest.ticker()).data}
    assert ticker["BTC-USD-SWAP-LIN"].last == Decimal(50000)
    assert ticker["BTC-USD-SWAP-LIN"].last_qty == Decimal("0.5")
    trades = await rest.public_trades("BTC-USD-SWAP-LIN", limit=10)
    assert [(t.side, t.match_quantity) for t in trades.data] == [(Side.BUY, Decimal("0.5"))]
    sim.exchange.engine.place(
        "maker",
        market_code="BTC-USD-SWAP-LIN",
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        quantity=Decimal("0.3"),
        price=Decimal("50500"),
    )
    sim.exchange.flush()
    depth = await rest.depth("BTC-USD-SWAP-LIN", 10)
    assert depth.event == "depthL10"
    assert depth.data[0].asks == ((Decimal(50500), Decimal("0.3")),)
    candles = await rest.candles("BTC-USD-SWAP-LIN", timeframe=CandleGranularity.S60)
    assert candles.timeframe is CandleGranularity.S60
    assert [c.close for c in candles.data] == [Decimal(50000)]
    funding = await rest.funding_rates("BTC-USD-SWAP-LIN", limit=5)
    assert funding.data[0].market_code == "BTC-USD-SWAP-LIN"
    assert funding.data[0].timestamp % HOUR == 0
    public = await rest.public_funding(instrument_id="ETH-USD-SWAP-LIN")
    assert [p.instrument_id for p in public] == ["ETH-USD-SWAP-LIN"]


async def test_public_methods_need_no_credentials(sim: Sim) -> None:
    async with RestClient(sim.url) as anonymous:
        assert (await anonymous.ping()).success
        with pytest.raises(LocalProtocolError, match="GET /v2/balances needs credentials"):
            await anonymous.balances()


async def test_account_methods(rest: RestClient, sim: Sim) -> None:
    info = await rest.account_info()
    assert info.account_id == "1001" and info.data[0].margin_currency == "USD"
    balances = await rest.balances()
    assert {b.instrument_id: b.total for b in balances.data}["USD"] == Decimal(1_000_000)
    one = await rest.balances("BTC")
    assert one.event == "balancesById" and [b.total for b in one.data] == [Decimal(100)]
    assert (await rest.positions()).data == ()
    fill(sim.exchange, "0.25")
    (position,) = (await rest.positions()).data
    assert (position.instrument_id, position.quantity) == ("BTC-USD-SWAP-LIN", Decimal("0.25"))
    by_id = await rest.positions("BTC-USD-SWAP-LIN")
    assert by_id.event == "positionsById" and by_id.data == (position,)
    (trade,) = (await rest.trades("BTC-USD-SWAP-LIN")).data
    assert trade.total == Decimal("12500") and trade.side is Side.BUY


async def test_order_methods(rest: RestClient, sim: Sim) -> None:
    placed = await rest.place_orders([limit_order(1), limit_order(2, price="1")])
    opened, refused = placed.data
    assert opened.success and opened.notice is OrderNotice.OPENED
    assert opened.status is OrderStatus.OPEN
    assert not refused.success and refused.code == "710002"
    (open_order,) = (await rest.open_orders()).data
    assert open_order.client_order_id == 1 and open_order.remaining_quantity == Decimal("0.01")
    assert opened.order_id is not None
    modified = await rest.modify_orders(
        [
            m.RestModifyOrder(
                order_id=opened.order_id,
                market_code="BTC-USD-SWAP-LIN",
                price=Decimal("41000"),
            )
        ]
    )
    (amended,) = modified.data
    assert amended.success and amended.price == Decimal("41000")
    records = (await rest.orders(market_code="BTC-USD-SWAP-LIN")).data
    assert {r.status for r in records} == {
        m.OrderRecordStatus.OPENED,
        m.OrderRecordStatus.CLOSED,
    }
    assert amended.order_id is not None
    cancelled = await rest.cancel_orders(
        [
            m.RestCancelOrder(market_code="BTC-USD-SWAP-LIN", order_id=amended.order_id),
            m.RestCancelOrder(market_code="BTC-USD-SWAP-LIN", client_order_id=77),
        ]
    )
    done, missing = cancelled.data
    assert done.status is OrderStatus.CANCELED_BY_USER
    assert (missing.success, missing.code) == (False, "40035")
    await rest.place_orders([limit_order(3)])
    reply = await rest.cancel_all_orders("BTC-USD-SWAP-LIN")
    assert reply.data.market_code == "BTC-USD-SWAP-LIN"
    assert (await rest.cancel_all_orders()).data.market_code is None
    assert (await rest.open_orders()).data == ()


async def test_delivery_methods(rest: RestClient, sim: Sim) -> None:
    fill(sim.exchange, "1")
    submitted = await rest.submit_delivery("BTC-USD-SWAP-LIN", Decimal("0.5"))
    (entry,) = submitted.data
    assert entry.status == "PENDING" and entry.deliver_position == Decimal("0.5")
    (auction,) = (await rest.deliver_auction("BTC-USD-SWAP-LIN")).data
    assert auction.net_deliver == Decimal("-0.5")
    assert len((await rest.deliver_auction()).data) == 2
    (history,) = (await rest.delivery_orders()).data
    assert history.deliver_order_id == entry.deliver_order_id
    assert (await rest.cancel_delivery(entry.deliver_order_id)).cancelled
    assert not (await rest.cancel_delivery(entry.deliver_order_id)).cancelled


# --- errors -----------------------------------------------------------------------------------


async def test_signature_failure(sim: Sim) -> None:
    wrong = Credentials(sim.exchange.demo_key.api_key, "not-the-secret")
    async with RestClient(sim.url, wrong) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.balances()
    assert (info.value.code, info.value.http_status) == ("20000", 401)
    assert info.value.message == "Signature is invalid"
    async with RestClient(sim.url, Credentials("nobody", "x")) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.account_info()
    assert info.value.code == "20025"


async def test_permission_denied(sim: Sim) -> None:
    key = sim.exchange.read_only_key
    async with RestClient(sim.url, Credentials(key.api_key, key.api_secret)) as client:
        assert (await client.open_orders()).data == ()
        with pytest.raises(PermissionDenied) as info:
            await client.place_orders([limit_order(1)])
    assert (info.value.code, info.value.http_status) == ("05001", 403)


async def test_rate_limit_reply(nursery: trio.Nursery) -> None:
    exchange = SimExchange()
    limits = RestLimits(overall=(Rate(count=2, period=60.0),), routes={})
    url = await nursery.start(partial(serve_rest, exchange, rate_limits=limits))
    async with RestClient(url, rate_limits=RestRateLimits.unlimited()) as client:
        await client.ping()
        await client.ping()
        with pytest.raises(RateLimitError) as info:
            await client.ticker()
    assert (info.value.code, info.value.http_status) == ("20007", 429)


async def test_server_error_is_retried_for_gets(rest: RestClient, sim: Sim) -> None:
    sim.exchange.faults.fail_next("GET /v2/ticker", "20001", times=2)
    assert (await rest.ticker()).data  # third attempt succeeds
    sim.exchange.faults.fail_next("GET /v2/ticker", "20001", times=4)
    with pytest.raises(ServerError) as info:
        await rest.ticker()
    assert (info.value.code, info.value.http_status) == ("20001", 500)
    # three attempts used three of the four armed failures
    assert sim.exchange.faults.take_failure("GET /v2/ticker") is not None
    assert sim.exchange.faults.take_failure("GET /v2/ticker") is None


async def test_server_error_is_not_retried_for_orders(rest: RestClient, sim: Sim) -> None:
    sim.exchange.faults.fail_next("POST /v2/orders/place", "20001", times=2)
    with pytest.raises(ServerError):
        await rest.place_orders([limit_order(1)])
    assert sim.exchange.faults.take_failure("POST /v2/orders/place") is not None
    assert sim.exchange.engine.open_orders("1001") == []


async def test_client_errors_are_not_retried(rest: RestClient, sim: Sim) -> None:
    sim.exchange.faults.fail_next("GET /v2/ticker", "20002", times=2)
    with pytest.raises(InvalidRequestError) as info:
        await rest.ticker()
    assert info.value.http_status == 400
    assert sim.exchange.faults.take_failure("GET /v2/ticker") is not None


async def test_bad_parameters(rest: RestClient, sim: Sim) -> None:
    with pytest.raises(ValidationError, match="limit: must be between 1 and 300"):
        await rest.public_trades("BTC-USD", limit=301)
    with pytest.raises(ValidationError, match="endTime: must be within 7 days"):
        await rest.trades("BTC-USD", start_time=0, end_time=8 * 24 * HOUR)
    with pytest.raises(ValidationError, match="orders: must hold 1 to 8 orders"):
        await rest.place_orders([limit_order(i) for i in range(9)])
    with pytest.raises(ValidationError, match=r"orders\[0\]: orderId or clientOrderId"):
        await rest.cancel_orders([m.RestCancelOrder(market_code="BTC-USD")])
    with pytest.raises(InvalidOrderError) as info:
        await rest.trades("NOPE-USD")
    assert (info.value.code, info.value.http_status) == ("20015", 400)
    with pytest.raises(InvalidRequestError) as bad:
        await rest.depth("BTC-USD", 5000)
    assert bad.value.code == "40032"


async def test_timeouts(sim: Sim) -> None:
    sim.exchange.faults.delay_replies(5.0)
    async with RestClient(sim.url, sim.creds, timeout=0.05, retry=RetryPolicy(attempts=1)) as c:
        with pytest.raises(ReplyTimeout, match=r"GET /v2/ping: no reply within 0.05 s"):
            await c.ping()
        with pytest.raises(OrderOutcomeUnknown):
            await c.place_orders([limit_order(5)])
    # the order did reach the engine: exactly why its outcome was unknown to the client
    assert [o.client_order_id for o in sim.exchange.engine.open_orders("1001")] == [5]


async def test_connection_refused_is_retried_then_raised() -> None:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with RestClient(f"http://127.0.0.1:{port}", retry=FAST_RETRY) as client:
        with pytest.raises(TransportError, match="GET /v2/ping: cannot connect"):
            await client.ping()


async def test_secret_never_in_errors_or_logs(sim: Sim, caplog: pytest.LogCaptureFixture) -> None:
    secret = "not-the-secret-7f3a"
    creds = Credentials(sim.exchange.demo_key.api_key, secret)
    caplog.set_level(logging.DEBUG)
    async with RestClient(sim.url, creds, retry=FAST_RETRY) as client:
        assert secret not in repr(client)
        with pytest.raises(AuthenticationError) as info:
            await client.positions()
        sim.exchange.faults.fail_next("GET /v2/balances", "20001")
        with pytest.raises(AuthenticationError):
            await client.balances()
    text = "\n".join(r.getMessage() for r in caplog.records)
    for blob in (text, str(info.value), repr(info.value)):
        assert secret not in blob
        assert "Signature:" not in blob and "AccessKey" not in blob


async def test_closed_client_refuses_calls(sim: Sim) -> None:
    client = RestClient(sim.url)
    await client.aclose()
    await client.aclose()
    with pytest.raises(TransportError, match="closed"):
        await client.ping()


# --- time-range iteration ---------------------------------------------------------------------


async def test_iterators_walk_pages_and_windows(nursery: trio.Nursery) -> None:
    now = {"ms": 1_700_000_000_000}
    exchange = SimExchange(clock=lambda: now["ms"])
    url = await nursery.start(partial(serve_rest, exchange, timestamp_tolerance=float("inf")))
    start = now["ms"]
    # 340 fills spread over 10 days: more than a page (300 public) and more than one window.
    for i in range(340):
        now["ms"] = start + i * 45 * 60 * 1000
        fill(exchange, "0.001")
    end = now["ms"]
    key = exchange.demo_key
    async with RestClient(url, Credentials(key.api_key, key.api_secret)) as client:
        public = [
            t
            async for t in client.iter_public_trades(
                "BTC-USD-SWAP-LIN", start_time=start, end_time=end
            )
        ]
        own = [
            t async for t in client.iter_trades("BTC-USD-SWAP-LIN", start_time=start, end_time=end)
        ]
        later = [
            t
            async for t in client.iter_public_trades(
                "BTC-USD-SWAP-LIN", start_time=end - 3 * 45 * 60 * 1000, end_time=end
            )
        ]
        candles = [
            c
            async for c in client.iter_candles(
                "BTC-USD-SWAP-LIN",
                timeframe=CandleGranularity.S3600,
                start_time=start,
                end_time=end,
            )
        ]
    assert len(public) == 340
    assert [t.match_timestamp for t in public] == sorted(t.match_timestamp for t in public)
    assert len({t.match_id for t in public}) == 340
    assert len(own) == 340 and own[0].match_timestamp == start
    assert len(later) == 4
    assert sum(c.currency_volume24h for c in candles) == Decimal("0.340")


# --- pacing and backoff under MockClock -------------------------------------------------------


def recording_transport(
    times: list[float], statuses: list[int] | None = None
) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        times.append(trio.current_time())
        status = statuses.pop(0) if statuses else 200
        return httpx.Response(status, json={"success": "true"} if status == 200 else {})

    return httpx.MockTransport(handler)


async def test_pacing_is_shared_and_deterministic(autojump_clock: trio.testing.MockClock) -> None:
    times: list[float] = []
    limits = RestRateLimits(overall=(Window(count=2, period=1.0), Window(count=4, period=10.0)))
    async with RestClient(
        "http://sim.test", rate_limits=limits, transport=recording_transport(times)
    ) as client:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(client.ping)
        await client.ping()
        await client.ping()
    base = times[0]
    # 2/s bucket: the third waits 0.5 s, the fourth 1.0 s. The 4-per-10 s bucket (0.4 tokens/s)
    # holds 0.4 after the fourth, so the fifth waits 1.5 s more for its token.
    assert [round(t - base, 6) for t in times] == [0.0, 0.0, 0.5, 1.0, 2.5]


async def test_delivery_route_limit_paces_client(autojump_clock: trio.testing.MockClock) -> None:
    times: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        times.append(trio.current_time())
        return httpx.Response(200, json={"event": "delivery", "timestamp": "1",
                                         "accountId": "a", "data": []})  # fmt: skip

    async with RestClient(
        "http://sim.test", Credentials("k", "s"), transport=httpx.MockTransport(handler)
    ) as client:
        for _ in range(3):
            await client.submit_delivery("BTC-USD-SWAP-LIN", Decimal(1))
    assert [round(t - times[0], 6) for t in times] == [0.0, 0.0, 5.0]


async def test_backoff_with_full_jitter(autojump_clock: trio.testing.MockClock) -> None:
    times: list[float] = []
    policy = RetryPolicy(attempts=4, initial_delay=1.0, multiplier=2.0, max_delay=3.0)
    async with RestClient(
        "http://sim.test",
        retry=policy,
        transport=recording_transport(times, [503, 502, 500]),
        rng=random.Random(7),
    ) as client:
        assert (await client.ping()).success
    expected_rng = random.Random(7)
    waits = [policy.delay(i, expected_rng) for i in range(3)]
    assert waits[0] <= 1.0 and waits[1] <= 2.0 and waits[2] <= 3.0
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx(waits)


async def test_posts_are_never_retried(autojump_clock: trio.testing.MockClock) -> None:
    times: list[float] = []
    async with RestClient(
        "http://sim.test", Credentials("k", "s"), transport=recording_transport(times, [503])
    ) as client:
        with pytest.raises(ServerError) as info:
            await client.place_orders([limit_order(1)])
    assert info.value.http_status == 503 and len(times) == 1


async def test_undecodable_replies(autojump_clock: trio.testing.MockClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/ping":
            return httpx.Response(200, content=b"<html>")
        if request.url.path == "/v2/ticker":
            return httpx.Response(200, json={"event": "ticker", "data": "nope"})
        return httpx.Response(502, content=b"Bad gateway from a proxy")

    async with RestClient(
        "http://sim.test", transport=httpx.MockTransport(handler), retry=RetryPolicy(attempts=1)
    ) as client:
        with pytest.raises(RemoteProtocolError, match="reply is not JSON") as raw:
            await client.ping()
        assert raw.value.raw == "<html>"
        with pytest.raises(RemoteProtocolError, match="cannot decode TickerReply"):
            await client.ticker()
        with pytest.raises(
            ServerError, match=r"Bad Gateway: Bad gateway from a proxy \(HTTP 502\)"
        ):
            await client.markets()


async def test_success_false_with_200_is_an_error(autojump_clock: trio.testing.MockClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"event": "orders", "success": False, "code": "20001", "message": "oops"}
        )

    async with RestClient(
        "http://sim.test", Credentials("k", "s"), transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(ServerError) as info:
            await client.open_orders()
    assert (info.value.code, info.value.message, info.value.http_status) == ("20001", "oops", 200)


def test_base_url_must_be_an_origin() -> None:
    with pytest.raises(ValueError, match="http"):
        RestClient("ws://example.com")
