"""The typed REST client: one method per endpoint, on ``httpx.AsyncClient`` under trio.

Design note. Every call goes through :meth:`RestClient._call`, the one boundary where foreign
failures and error replies become :mod:`flexconn.errors` exceptions:

* an HTTP status >= 400, or a body with ``"success": false``, becomes
  ``exchange_error(code, message, http_status=status)``; the status picks the class when the code
  is unknown (401 :class:`AuthenticationError`, 403 :class:`PermissionDenied`, 429
  :class:`RateLimitError`, other 4xx :class:`InvalidRequestError`, 5xx :class:`ServerError`);
* a connection that cannot be opened becomes :class:`ConnectTimeout` or :class:`TransportError`;
* a timeout or broken exchange after sending becomes :class:`ReplyTimeout` /
  :class:`TransportError` for reads, and :class:`OrderOutcomeUnknown` for calls that change orders
  or deliveries, since the exchange may have acted on them;
* a 2xx body that does not decode becomes :class:`RemoteProtocolError`.

Only idempotent GETs are retried (connection failures, timeouts, 5xx), with exponential backoff
and full jitter; calls that change state never are. Every attempt is paced by the client's
:class:`~flexconn.restlimits.RestLimiter` and signed afresh (new timestamp and nonce). Neither
errors nor log records ever carry headers, so the signature and secret stay out of them.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import quote, urlencode

import attrs
import httpx
import orjson
import trio

from flexconn.auth import Credentials, RestSigner
from flexconn.errors import (
    AuthenticationError,
    ConnectTimeout,
    ExchangeError,
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
    exchange_error,
)
from flexconn.models.enums import CandleGranularity
from flexconn.models.rest import (
    ACCOUNT_TRADES_PAGE,
    CANDLES_PAGE,
    DELIVERY_ORDERS_PAGE,
    FUNDING_RATES_PAGE,
    MAX_ORDERS_PER_REQUEST,
    ORDERS_V21_PAGE,
    PUBLIC_FUNDING_PAGE,
    PUBLIC_TRADES_PAGE,
    AccountInfoReply,
    AccountTrade,
    AccountTradesReply,
    AssetsReply,
    BalancesReply,
    CancelAllReply,
    CancelOrdersRequest,
    Candle,
    CandlesQuery,
    CandlesReply,
    DeliverAuctionReply,
    DeliveryCancelReply,
    DeliveryOrder,
    DeliveryOrdersReply,
    DeliveryRequest,
    DeliverySubmitReply,
    DepthReply,
    FundingRatesReply,
    MarketsReply,
    ModifyOrdersRequest,
    OpenOrdersReply,
    OrderRecordsReply,
    OrderResultsReply,
    OrdersQuery,
    PageRule,
    Ping,
    PlaceOrdersRequest,
    PositionsReply,
    PublicFunding,
    PublicFundingQuery,
    PublicTrade,
    PublicTradesReply,
    ResponseType,
    RestCancelOrder,
    RestModifyOrder,
    RestPlaceOrder,
    TickerReply,
    TimeWindowQuery,
    query_params,
)
from flexconn.protocol.codec import converter
from flexconn.restlimits import DEFAULT_REST_RATE_LIMITS, RestLimiter, RestRateLimits

__all__ = [
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "LIVE_URL",
    "TEST_URL",
    "RestClient",
    "RetryPolicy",
]

logger = logging.getLogger("flexconn.rest")

#: The exchange's REST origins (paths such as ``/v2/ping`` are appended).
LIVE_URL: Final = "https://v2api.coinflex.com"
TEST_URL: Final = "https://v2stgapi.coinflex.com"
#: Seconds one attempt of one call may take.
DEFAULT_TIMEOUT: Final = 10.0

T = TypeVar("T")
Item = TypeVar("Item")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Retries of idempotent GETs: exponential backoff with full jitter.

    Attributes:
        attempts: total tries of one call (1 disables retrying).
        initial_delay: the ceiling of the first backoff, in seconds.
        multiplier: how much the ceiling grows per retry.
        max_delay: the largest ceiling.
    """

    attempts: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    initial_delay: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 2.0

    def delay(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (0-based): uniform in [0, ceiling]."""
        ceiling = min(self.max_delay, self.initial_delay * self.multiplier**retry)
        return rng.uniform(0.0, ceiling)


DEFAULT_RETRY: Final = RetryPolicy()

_STATUS_CLASSES: Final[dict[int, type[ExchangeError]]] = {
    401: AuthenticationError,
    403: PermissionDenied,
    429: RateLimitError,
}


def _status_class(status: int) -> type[ExchangeError]:
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if status >= 500:
        return ServerError
    if status >= 400:
        return InvalidRequestError
    return ExchangeError


def _failed(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("success") in (False, "false")


def _reply_error(status: int, payload: Any, text: str) -> ExchangeError:
    """The exception for an error reply (status >= 400 or ``success`` false)."""
    if isinstance(payload, dict) and ("code" in payload or "message" in payload):
        code = payload.get("code")
        message = payload.get("message")
        return exchange_error(
            None if code is None else str(code),
            None if message is None else str(message),
            http_status=status,
            default=_status_class(status),
        )
    reason = httpx.codes.get_reason_phrase(status) or "error reply"
    detail = text.strip()[:200]
    return _status_class(status)(
        None, f"{reason}: {detail}" if detail else reason, http_status=status
    )


def _check_page(limit: int | None, start: int | None, end: int | None, rule: PageRule) -> None:
    if limit is not None and (limit < 1 or (rule.maximum is not None and limit > rule.maximum)):
        raise ValidationError("limit", f"must be between 1 and {rule.maximum}")
    if start is not None and end is not None:
        if start > end:
            raise ValidationError("startTime", "must not be after endTime")
        if rule.max_window_ms is not None and end - start > rule.max_window_ms:
            raise ValidationError("endTime", "must be within 7 days of startTime")


def _segment(value: str) -> str:
    if not value:
        raise ValidationError("path", "path parameters must not be empty")
    return quote(value, safe="")


class RestClient:
    """An async REST client for one exchange origin, optionally authenticated.

    Use it as ``async with RestClient(url, creds) as rest: await rest.balances()``.

    Args:
        base_url: the origin, e.g. :data:`TEST_URL` or a simulator's ``rest_url``.
        credentials: the key for private endpoints; public ones work without.
        timeout: seconds each attempt may take before :class:`ReplyTimeout`.
        rate_limits: the client-side pacing, shared by every call of this client.
        retry: the retry policy of idempotent GETs.
        transport: an httpx transport (tests, proxies); httpx's default when omitted.
        rng: the randomness behind backoff jitter.
        clock: wall clock in epoch seconds, for request timestamps.
    """

    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        rate_limits: RestRateLimits = DEFAULT_REST_RATE_LIMITS,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) origin, got {base_url!r}")
        self.base_url = str(url.copy_with(path="/", query=None, fragment=None)).rstrip("/")
        self._host = url.netloc.decode("ascii")
        self._signer = RestSigner(credentials, clock=clock) if credentials is not None else None
        self.timeout = timeout
        self.retry = retry
        self._limiter = RestLimiter(rate_limits)
        self._limiter_lock = trio.Lock()
        self._rng = rng if rng is not None else random.Random()
        self._http = httpx.AsyncClient(transport=transport, timeout=None)
        self._closed = False

    def __repr__(self) -> str:
        key = self._signer.credentials.api_key if self._signer is not None else None
        return f"RestClient({self.base_url!r}, api_key={key!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (idempotent)."""
        if not self._closed:
            self._closed = True
            await self._http.aclose()

    # --- the one boundary -----------------------------------------------------------------

    async def _pace(self, route: str) -> None:
        # The lock makes waiting callers queue in arrival order (trio locks are fair).
        async with self._limiter_lock:
            while True:
                now = trio.current_time()
                if self._limiter.try_acquire(now, route):
                    return
                await trio.sleep(self._limiter.delay(now, route))

    async def _call(
        self,
        verb: str,
        path: str,
        *,
        route: str,
        private: bool,
        query: dict[str, str] | None = None,
        body: object = None,
    ) -> Any:
        """Send one request (with retries for GETs) and return the parsed 2xx JSON body."""
        if self._closed:
            raise TransportError("the REST client is closed")
        if private and self._signer is None:
            raise LocalProtocolError(f"{route} needs credentials")
        query_string = urlencode(query) if query else ""
        body_text = "" if body is None else orjson.dumps(converter.unstructure(body)).decode()
        url = self.base_url + path + (f"?{query_string}" if query_string else "")
        changes_state = verb != "GET"
        attempts = 1 if changes_state else self.retry.attempts
        for attempt in range(attempts):
            try:
                return await self._attempt(
                    verb, url, path, route, query_string, body_text, changes_state
                )
            except (TransportError, ServerError) as exc:
                retryable = not isinstance(exc, ServerError) or (exc.http_status or 0) >= 500
                if attempt + 1 >= attempts or not retryable:
                    raise
                pause = self.retry.delay(attempt, self._rng)
                logger.info("%s failed (%s); retry %d in %.3f s", route, exc, attempt + 1, pause)
                await trio.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        verb: str,
        url: str,
        path: str,
        route: str,
        query_string: str,
        body_text: str,
        changes_state: bool,
    ) -> Any:
        await self._pace(route)
        headers = {"Content-Type": "application/json"}
        if self._signer is not None:
            headers = self._signer.headers(verb, self._host, path, body_text or query_string)
        content = body_text.encode() if body_text else None
        request = self._http.build_request(verb, url, headers=headers, content=content)
        try:
            with trio.fail_after(self.timeout):
                response = await self._http.send(request)
        except trio.TooSlowError:
            if changes_state:
                raise OrderOutcomeUnknown(
                    f"{route}: no reply within {self.timeout} s; the exchange may have acted"
                ) from None
            raise ReplyTimeout(f"{route}: no reply within {self.timeout} s") from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            cls = ConnectTimeout if isinstance(exc, httpx.ConnectTimeout) else TransportError
            raise cls(f"{route}: cannot connect: {exc}") from None
        except httpx.HTTPError as exc:
            # Anything past connecting may have delivered the request.
            if changes_state:
                raise OrderOutcomeUnknown(f"{route}: {type(exc).__name__}: {exc}") from None
            raise TransportError(f"{route}: {type(exc).__name__}: {exc}") from None
        text = response.text
        try:
            payload = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            payload = None
            if response.is_success:
                raise RemoteProtocolError(f"{route}: reply is not JSON", raw=text) from None
        logger.debug("%s -> HTTP %d", route, response.status_code)
        if not response.is_success or _failed(payload):
            raise _reply_error(response.status_code, payload, text)
        return payload

    def _decode(self, payload: Any, cls: type[T], route: str) -> T:
        try:
            return converter.structure(payload, cls)
        except Exception as exc:
            raw = orjson.dumps(payload).decode()
            raise RemoteProtocolError(
                f"{route}: cannot decode {cls.__name__}: {exc}", raw
            ) from None

    async def _get(
        self, path: str, route: str, cls: type[T], *, private: bool, query: object = None
    ) -> T:
        params = query_params(query) if query is not None else None
        payload = await self._call("GET", path, route=route, private=private, query=params)
        return self._decode(payload, cls, route)

    async def _change(self, verb: str, path: str, route: str, cls: type[T], body: object) -> T:
        payload = await self._call(verb, path, route=route, private=True, body=body)
        return self._decode(payload, cls, route)

    # --- public ---------------------------------------------------------------------------

    async def ping(self) -> Ping:
        """``GET /v2/ping``: whether the API is up."""
        return await self._get("/v2/ping", "GET /v2/ping", Ping, private=False)

    async def markets(self) -> MarketsReply:
        """``GET /v2/all/markets``."""
        return await self._get(
            "/v2/all/markets", "GET /v2/all/markets", MarketsReply, private=False
        )

    async def assets(self) -> AssetsReply:
        """``GET /v2/all/assets``."""
        return await self._get("/v2/all/assets", "GET /v2/all/assets", AssetsReply, private=False)

    async def ticker(self) -> TickerReply:
        """``GET /v2/ticker``: every market's ticker."""
        return await self._get("/v2/ticker", "GET /v2/ticker", TickerReply, private=False)

    async def public_trades(
        self,
        market_code: str,
        *,
        limit: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> PublicTradesReply:
        """``GET /v2/publictrades/{marketCode}`` (limit default 100, max 300)."""
        _check_page(limit, start_time, end_time, PUBLIC_TRADES_PAGE)
        query = TimeWindowQuery(limit=limit, start_time=start_time, end_time=end_time)
        return await self._get(
            f"/v2/publictrades/{_segment(market_code)}",
            "GET /v2/publictrades/{marketCode}",
            PublicTradesReply,
            private=False,
            query=query,
        )

    async def depth(self, market_code: str, level: int = 5) -> DepthReply:
        """``GET /v2/depth/{marketCode}/{level}``: the top ``level`` levels of each side."""
        if level < 1:
            raise ValidationError("level", "must be positive")
        return await self._get(
            f"/v2/depth/{_segment(market_code)}/{level}",
            "GET /v2/depth/{marketCode}/{level}",
            DepthReply,
            private=False,
        )

    async def candles(
        self,
        market_code: str,
        *,
        timeframe: CandleGranularity | None = None,
        limit: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> CandlesReply:
        """``GET /v2/candles/{marketCode}`` (timeframe default 3600s, limit default 500)."""
        _check_page(limit, start_time, end_time, CANDLES_PAGE)
        query = CandlesQuery(
            timeframe=timeframe, limit=limit, start_time=start_time, end_time=end_time
        )
        return await self._get(
            f"/v2/candles/{_segment(market_code)}",
            "GET /v2/candles/{marketCode}",
            CandlesReply,
            private=False,
            query=query,
        )

    async def funding_rates(
        self,
        market_code: str,
        *,
        limit: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> FundingRatesReply:
        """``GET /v2/funding-rates/{marketCode}``: newest first."""
        _check_page(limit, start_time, end_time, FUNDING_RATES_PAGE)
        query = TimeWindowQuery(limit=limit, start_time=start_time, end_time=end_time)
        return await self._get(
            f"/v2/funding-rates/{_segment(market_code)}",
            "GET /v2/funding-rates/{marketCode}",
            FundingRatesReply,
            private=False,
            query=query,
        )

    async def public_funding(
        self,
        *,
        instrument_id: str | None = None,
        limit: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> tuple[PublicFunding, ...]:
        """``GET /v2/delivery/public/funding`` (times are sent as UTC datetime strings)."""
        _check_page(limit, start_time, end_time, PUBLIC_FUNDING_PAGE)
        query = PublicFundingQuery(
            instrument_id=instrument_id, limit=limit, start_time=start_time, end_time=end_time
        )
        return await self._get(
            "/v2/delivery/public/funding",
            "GET /v2/delivery/public/funding",
            tuple[PublicFunding, ...],
            private=False,
            query=query,
        )

    # --- private: account -----------------------------------------------------------------

    async def account_info(self) -> AccountInfoReply:
        """``GET /v2/accountinfo``."""
        return await self._get(
            "/v2/accountinfo", "GET /v2/accountinfo", AccountInfoReply, private=True
        )

    async def balances(self, instrument_id: str | None = None) -> BalancesReply:
        """``GET /v2/balances``, or ``/v2/balances/{instrumentId}`` for one coin."""
        if instrument_id is None:
            return await self._get("/v2/balances", "GET /v2/balances", BalancesReply, private=True)
        return await self._get(
            f"/v2/balances/{_segment(instrument_id)}",
            "GET /v2/balances/{instrumentId}",
            BalancesReply,
            private=True,
        )

    async def positions(self, instrument_id: str | None = None) -> PositionsReply:
        """``GET /v2/positions``, or ``/v2/positions/{instrumentId}`` for one contract."""
        if instrument_id is None:
            return await self._get(
                "/v2/positions", "GET /v2/positions", PositionsReply, private=True
            )
        return await self._get(
            f"/v2/positions/{_segment(instrument_id)}",
            "GET /v2/positions/{instrumentId}",
            PositionsReply,
            private=True,
        )

    async def trades(
        self,
        market_code: str,
        *,
        limit: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> AccountTradesReply:
        """``GET /v2/trades/{marketCode}``: own trades, newest first (limit default 500)."""
        _check_page(limit, start_time, end_time, ACCOUNT_TRADES_PAGE)
        query = TimeWindowQuery(limit=limit, start_time=start_time, end_time=end_time)
        return await self._get(
            f"/v2/trades/{_segment(market_code)}",
            "GET /v2/trades/{marketCode}",
            AccountTradesReply,
            private=True,
            query=query,
        )

    async def open_orders(self) -> OpenOrdersReply:
        """``GET /v2/orders``: every open order."""
        return await self._get("/v2/orders", "GET /v2/orders", OpenOrdersReply, private=True)

    async def orders(
        self,
        *,
        market_code: str | None = None,
        order_id: int | None = None,
        client_order_id: int | None = None,
        limit: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> OrderRecordsReply:
        """``GET /v2.1/orders``: latest state of open and recent orders, newest first."""
        _check_page(limit, start_time, end_time, ORDERS_V21_PAGE)
        query = OrdersQuery(
            market_code=market_code,
            order_id=order_id,
            client_order_id=client_order_id,
            limit=limit,
            start_time=start_time,
            end_time=end_time,
        )
        return await self._get(
            "/v2.1/orders", "GET /v2.1/orders", OrderRecordsReply, private=True, query=query
        )

    # --- private: orders ------------------------------------------------------------------

    async def cancel_all_orders(self, market_code: str | None = None) -> CancelAllReply:
        """``DELETE /v2/cancel/orders[/{marketCode}]``: cancel every open order (of a market)."""
        if market_code is None:
            path, route = "/v2/cancel/orders", "DELETE /v2/cancel/orders"
        else:
            path = f"/v2/cancel/orders/{_segment(market_code)}"
            route = "DELETE /v2/cancel/orders/{marketCode}"
        return await self._change("DELETE", path, route, CancelAllReply, {})

    @staticmethod
    def _check_batch(orders: Sequence[object]) -> None:
        if not 1 <= len(orders) <= MAX_ORDERS_PER_REQUEST:
            raise ValidationError("orders", f"must hold 1 to {MAX_ORDERS_PER_REQUEST} orders")

    async def place_orders(
        self,
        orders: Sequence[RestPlaceOrder],
        *,
        response_type: ResponseType = ResponseType.FULL,
        recv_window: int | None = None,
        timestamp: int | None = None,
    ) -> OrderResultsReply:
        """``POST /v2/orders/place``: up to 8 orders; refusals come back as entries, not errors.

        Raises:
            OrderOutcomeUnknown: the request was sent but no reply arrived; never retried.
        """
        self._check_batch(orders)
        body = PlaceOrdersRequest(
            recv_window=recv_window,
            response_type=response_type,
            timestamp=timestamp,
            orders=tuple(orders),
        )
        return await self._change(
            "POST", "/v2/orders/place", "POST /v2/orders/place", OrderResultsReply, body
        )

    async def modify_orders(
        self,
        orders: Sequence[RestModifyOrder],
        *,
        response_type: ResponseType = ResponseType.FULL,
        recv_window: int | None = None,
        timestamp: int | None = None,
    ) -> OrderResultsReply:
        """``POST /v2/orders/modify``: up to 8 modifications."""
        self._check_batch(orders)
        body = ModifyOrdersRequest(
            recv_window=recv_window,
            response_type=response_type,
            timestamp=timestamp,
            orders=tuple(orders),
        )
        return await self._change(
            "POST", "/v2/orders/modify", "POST /v2/orders/modify", OrderResultsReply, body
        )

    async def cancel_orders(
        self,
        orders: Sequence[RestCancelOrder],
        *,
        response_type: ResponseType = ResponseType.FULL,
        recv_window: int | None = None,
        timestamp: int | None = None,
    ) -> OrderResultsReply:
        """``DELETE /v2/orders/cancel``: up to 8 cancels by ``orderId`` or ``clientOrderId``."""
        self._check_batch(orders)
        for index, order in enumerate(orders):
            if order.order_id is None and order.client_order_id is None:
                raise ValidationError(f"orders[{index}]", "orderId or clientOrderId is required")
        body = CancelOrdersRequest(
            recv_window=recv_window,
            response_type=response_type,
            timestamp=timestamp,
            orders=tuple(orders),
        )
        return await self._change(
            "DELETE", "/v2/orders/cancel", "DELETE /v2/orders/cancel", OrderResultsReply, body
        )

    # --- private: delivery ----------------------------------------------------------------

    async def delivery_orders(
        self,
        *,
        limit: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> DeliveryOrdersReply:
        """``GET /v2.1/delivery/orders``: the delivery history (limit default 200, max 500)."""
        _check_page(limit, start_time, end_time, DELIVERY_ORDERS_PAGE)
        query = TimeWindowQuery(limit=limit, start_time=start_time, end_time=end_time)
        return await self._get(
            "/v2.1/delivery/orders",
            "GET /v2.1/delivery/orders",
            DeliveryOrdersReply,
            private=True,
            query=query,
        )

    async def submit_delivery(self, instrument_id: str, quantity: Decimal) -> DeliverySubmitReply:
        """``POST /v2.1/delivery/orders``: request physical delivery of a perpetual position."""
        body = DeliveryRequest(instrument_id=instrument_id, qty_deliver=quantity)
        return await self._change(
            "POST", "/v2.1/delivery/orders", "POST /v2.1/delivery/orders", DeliverySubmitReply, body
        )

    async def cancel_delivery(self, deliver_order_id: int) -> DeliveryCancelReply:
        """``DELETE /v2.1/delivery/orders/{id}``; check ``.cancelled`` on the reply."""
        return await self._change(
            "DELETE",
            f"/v2.1/delivery/orders/{int(deliver_order_id)}",
            "DELETE /v2.1/delivery/orders/{deliveryOrderId}",
            DeliveryCancelReply,
            {},
        )

    async def deliver_auction(self, instrument_id: str | None = None) -> DeliverAuctionReply:
        """``GET /v2.1/deliver-auction[/{instrumentId}]``: the next delivery auctions."""
        if instrument_id is None:
            path, route = "/v2.1/deliver-auction", "GET /v2.1/deliver-auction"
        else:
            path = f"/v2.1/deliver-auction/{_segment(instrument_id)}"
            route = "GET /v2.1/deliver-auction/{instrumentId}"
        return await self._get(path, route, DeliverAuctionReply, private=True)

    # --- time-range iteration -------------------------------------------------------------

    async def _walk(
        self,
        fetch: Callable[[int, int, int], Awaitable[Sequence[Item]]],
        *,
        start_time: int,
        end_time: int,
        rule: PageRule,
        key: Callable[[Item], object],
        stamp: Callable[[Item], int],
    ) -> AsyncIterator[Item]:
        if start_time > end_time:
            raise ValidationError("startTime", "must not be after endTime")
        limit = rule.maximum if rule.maximum is not None else rule.default
        span = rule.max_window_ms if rule.max_window_ms is not None else end_time - start_time
        window_start = start_time
        while window_start <= end_time:
            window_end = min(end_time, window_start + span)
            seen: dict[object, Item] = {}
            upper = window_end
            while True:
                page = await fetch(window_start, upper, limit)
                fresh = [item for item in page if key(item) not in seen]
                for item in fresh:
                    seen[key(item)] = item
                if len(page) < limit or not fresh:
                    break
                # A full page: more may hide below its oldest entry (equal stamps re-fetched).
                upper = min(stamp(item) for item in page)
            for item in sorted(seen.values(), key=stamp):
                yield item
            window_start = window_end + 1

    def iter_trades(
        self, market_code: str, *, start_time: int, end_time: int
    ) -> AsyncIterator[AccountTrade]:
        """Every own trade in ``[start_time, end_time]`` (ms), oldest first, across pages and
        7-day windows."""

        async def fetch(start: int, end: int, limit: int) -> Sequence[AccountTrade]:
            reply = await self.trades(market_code, limit=limit, start_time=start, end_time=end)
            return reply.data

        return self._walk(
            fetch,
            start_time=start_time,
            end_time=end_time,
            rule=ACCOUNT_TRADES_PAGE,
            key=lambda t: t.match_id,
            stamp=lambda t: t.match_timestamp,
        )

    def iter_public_trades(
        self, market_code: str, *, start_time: int, end_time: int
    ) -> AsyncIterator[PublicTrade]:
        """Every public trade of a market in ``[start_time, end_time]``, oldest first."""

        async def fetch(start: int, end: int, limit: int) -> Sequence[PublicTrade]:
            reply = await self.public_trades(
                market_code, limit=limit, start_time=start, end_time=end
            )
            return reply.data

        return self._walk(
            fetch,
            start_time=start_time,
            end_time=end_time,
            rule=PUBLIC_TRADES_PAGE,
            key=lambda t: t.match_id,
            stamp=lambda t: t.match_timestamp,
        )

    def iter_delivery_orders(
        self, *, start_time: int, end_time: int
    ) -> AsyncIterator[DeliveryOrder]:
        """Every delivery order in ``[start_time, end_time]``, oldest first."""

        async def fetch(start: int, end: int, limit: int) -> Sequence[DeliveryOrder]:
            reply = await self.delivery_orders(limit=limit, start_time=start, end_time=end)
            return reply.data

        return self._walk(
            fetch,
            start_time=start_time,
            end_time=end_time,
            rule=DELIVERY_ORDERS_PAGE,
            key=lambda d: d.deliver_order_id,
            stamp=lambda d: d.timestamp,
        )

    def iter_candles(
        self,
        market_code: str,
        *,
        timeframe: CandleGranularity,
        start_time: int,
        end_time: int,
    ) -> AsyncIterator[Candle]:
        """Every candle starting in ``[start_time, end_time]``, oldest first."""

        async def fetch(start: int, end: int, limit: int) -> Sequence[Candle]:
            reply = await self.candles(
                market_code, timeframe=timeframe, limit=limit, start_time=start, end_time=end
            )
            return reply.data

        return self._walk(
            fetch,
            start_time=start_time,
            end_time=end_time,
            rule=CANDLES_PAGE,
            key=lambda c: c.timestamp,
            stamp=lambda c: c.timestamp,
        )
