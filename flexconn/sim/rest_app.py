"""The simulator's REST server: a small hand-written ASGI app over :class:`SimExchange`.

Design note. A request goes through fixed stages, each of which may answer early with the
failure body ``{"event", "success": false, "code", "message", "timestamp"}``:

1. routing (``404``/``20003`` for unknown paths, ``405``/``20003`` for a wrong verb);
2. the rate limit, per API key (or per client address for unsigned requests): ``429``/``20007``;
3. for private routes, the documented HMAC check (``401`` with ``20025`` unknown or missing
   key, ``20023`` missing timestamp, ``20024`` timestamp outside the tolerance, ``20000`` bad or
   missing signature/nonce), then ``403``/``05001`` for trading with a read-only key;
4. an armed :meth:`Faults.fail_next` for ``"<VERB> <path>"`` or ``"<VERB> <path template>"``
   (HTTP status from the code: 401 auth codes, 403 ``05001``, 429 ``20007``, 500 ``20001``,
   504 ``20032``, else 400);
5. parameter validation (``400``, ``40032`` ``Invalid request data`` or the engine's code);
6. the handler, which calls the engine and then :meth:`SimExchange.flush`.

Replies may be held back by :meth:`Faults.delay_replies`. Bodies are the documents' later forms,
encoded by the models of :mod:`flexconn.models.rest`.

The engine simulates no funding or physical delivery, so this module keeps them: funding
records are taken hourly (at the first request after each hour boundary) from the perpetual's
mark price against its spot market, and delivery requests queue as ``PENDING`` until cancelled
(settlement at the auction is not simulated).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

import attrs
import orjson
import trio

from flexconn.auth import parse_rest_timestamp, verify_rest_signature
from flexconn.models import rest as m
from flexconn.models.enums import CandleGranularity, OrderNotice, OrderStatus, TimeInForce
from flexconn.protocol.codec import converter
from flexconn.sim.delivery import PENDING, next_auction
from flexconn.sim.engine import EngineReject
from flexconn.sim.exchange import ApiKey, SimExchange
from flexconn.sim.markets import MarketSpec
from flexconn.sim.orders import Order
from flexconn.sim.ratelimit import DEFAULT_REST_LIMITS, RestLimiter, RestLimits

__all__ = ["RestApp", "make_rest_app", "serve_rest"]

logger = logging.getLogger("flexconn.sim.rest")

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_MAX_BODY: Final = 1 << 20
_MAX_DEPTH_LEVEL: Final = 1000
_INVALID: Final = ("40032", "Invalid request data")
_AUTH_CODES: Final = frozenset({"20000", "20023", "20024", "20025", "20026"})
_CANCEL_ALL_MSG: Final = "All open orders for the account have been queued for cancellation"
_CANCEL_MARKET_MSG: Final = (
    "All open orders for the specified market have been queued for cancellation"
)


class _Reject(Exception):
    """Answer the request with the failure body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"[{code}] {message}")
        self.status = status
        self.code = code
        self.message = message


def _invalid(detail: str) -> _Reject:
    return _Reject(400, _INVALID[0], f"{_INVALID[1]}: {detail}")


def status_for_code(code: str) -> int:
    """The HTTP status the simulator pairs with an exchange error code."""
    if code in _AUTH_CODES:
        return 401
    return {"05001": 403, "20007": 429, "20001": 500, "20032": 504}.get(code, 400)


@attrs.frozen(kw_only=True)
class _Route:
    verb: str
    template: str
    pattern: re.Pattern[str]
    handler: str
    event: str
    private: bool
    trading: bool = False


def _route(
    verb: str, template: str, handler: str, event: str, *, private: bool, trading: bool = False
) -> _Route:
    regex = re.sub(r"\\\{[A-Za-z]+\\\}", "([^/]+)", re.escape(template))
    return _Route(
        verb=verb,
        template=template,
        pattern=re.compile(regex + "$"),
        handler=handler,
        event=event,
        private=private,
        trading=trading,
    )


_ROUTES: Final = (
    _route("GET", "/v2/ping", "ping", "ping", private=False),
    _route("GET", "/v2/all/markets", "markets", "markets", private=False),
    _route("GET", "/v2/all/assets", "assets", "assets", private=False),
    _route("GET", "/v2/ticker", "ticker", "ticker", private=False),
    _route("GET", "/v2/publictrades/{marketCode}", "public_trades", "publicTrades", private=False),
    _route("GET", "/v2/depth/{marketCode}/{level}", "depth", "depth", private=False),
    _route("GET", "/v2/candles/{marketCode}", "candles", "candles", private=False),
    _route("GET", "/v2/funding-rates/{marketCode}", "funding_rates", "fundingRates", private=False),
    _route("GET", "/v2/delivery/public/funding", "public_funding", "funding", private=False),
    _route("GET", "/v2/accountinfo", "account_info", "accountinfo", private=True),
    _route("GET", "/v2/balances", "balances", "balances", private=True),
    _route("GET", "/v2/balances/{instrumentId}", "balance", "balancesById", private=True),
    _route("GET", "/v2/positions", "positions", "positions", private=True),
    _route("GET", "/v2/positions/{instrumentId}", "position", "positionsById", private=True),
    _route("GET", "/v2/trades/{marketCode}", "trades", "trades", private=True),
    _route("GET", "/v2/orders", "open_orders", "orders", private=True),
    _route("GET", "/v2.1/orders", "orders_v21", "orders", private=True),
    _route("DELETE", "/v2/cancel/orders", "cancel_all", "orders", private=True, trading=True),
    _route(
        "DELETE",
        "/v2/cancel/orders/{marketCode}",
        "cancel_all",
        "orders",
        private=True,
        trading=True,
    ),
    _route("POST", "/v2/orders/place", "place", "placeOrder", private=True, trading=True),
    _route("POST", "/v2/orders/modify", "modify", "modifyOrder", private=True, trading=True),
    _route("DELETE", "/v2/orders/cancel", "cancel", "cancelOrder", private=True, trading=True),
    _route("GET", "/v2.1/delivery/orders", "delivery_orders", "deliverOrders", private=True),
    _route(
        "POST", "/v2.1/delivery/orders", "submit_delivery", "delivery", private=True, trading=True
    ),
    _route(
        "DELETE",
        "/v2.1/delivery/orders/{deliveryOrderId}",
        "cancel_delivery",
        "delivery",
        private=True,
        trading=True,
    ),
    _route("GET", "/v2.1/deliver-auction", "deliver_auction", "deliverAuction", private=True),
    _route(
        "GET",
        "/v2.1/deliver-auction/{instrumentId}",
        "deliver_auction",
        "deliverAuction",
        private=True,
    ),
)


@attrs.define(kw_only=True)
class _Request:
    verb: str
    path: str
    raw_query: str
    query: dict[str, str]
    body: bytes
    headers: dict[str, str]
    client: str
    route: _Route
    params: tuple[str, ...]
    key: ApiKey | None = None

    @property
    def account_id(self) -> str:
        assert self.key is not None
        return self.key.account_id


# --- parameter helpers ------------------------------------------------------------------------


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    if not re.fullmatch(r"-?[0-9]+", text):
        raise _invalid(f"{name} must be an integer")
    return int(text)


def _window(query: Mapping[str, str], rule: m.PageRule, now: int) -> tuple[int, int, int]:
    """``(limit, start, end)`` from the query, defaulted and checked against ``rule``."""
    limit = _int_param(query, "limit")
    if limit is None:
        limit = rule.default
    if limit < 1 or (rule.maximum is not None and limit > rule.maximum):
        raise _invalid(f"limit must be between 1 and {rule.maximum}")
    end = _int_param(query, "endTime")
    start = _int_param(query, "startTime")
    if end is None:
        end = now
    if start is None:
        start = end - rule.default_span_ms
    if start > end:
        raise _invalid("startTime must not be after endTime")
    if rule.max_window_ms is not None and end - start > rule.max_window_ms:
        raise _invalid("startTime and endTime must be within 7 days of each other")
    return limit, start, end


def _decimal(value: object, name: str) -> Decimal:
    try:
        result = converter.structure(value, Decimal)
    except (TypeError, ValueError, InvalidOperation):
        raise _invalid(f"{name} must be a number") from None
    return result


class RestApp:
    """The ASGI application; one per :class:`SimExchange` (see :func:`make_rest_app`).

    Args:
        exchange: the shared exchange state.
        rate_limits: the limits enforced per API key (or client address).
        timestamp_tolerance: seconds a request's ``Timestamp`` may differ from the exchange's
            clock before ``20024``.
    """

    def __init__(
        self,
        exchange: SimExchange,
        *,
        rate_limits: RestLimits = DEFAULT_REST_LIMITS,
        timestamp_tolerance: float = 60.0,
    ) -> None:
        self.exchange = exchange
        self.rate_limits = rate_limits
        self.timestamp_tolerance = timestamp_tolerance
        self._limiters: dict[str, RestLimiter] = {}

    # --- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > _MAX_BODY:
                await self._send(
                    send,
                    413,
                    {"success": False, "code": _INVALID[0], "message": "request body too large"},
                )
                return
            if not message.get("more_body", False):
                break
        status, payload = await self._handle(scope, bytes(body))
        delay = self.exchange.faults.reply_delay
        if delay > 0:
            await trio.sleep(delay)
        await self._send(send, status, payload)

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    async def _send(send: Send, status: int, payload: object) -> None:
        data = orjson.dumps(converter.unstructure(payload))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    # --- the stages -----------------------------------------------------------------------

    async def _handle(self, scope: Scope, body: bytes) -> tuple[int, object]:
        verb = str(scope["method"]).upper()
        path = str(scope["path"])
        raw_query = bytes(scope.get("query_string", b"")).decode("latin-1")
        now = self.exchange.now_ms()
        event: str | None = None
        try:
            route, params = self._match(verb, path)
            event = route.event
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            client = scope.get("client")
            request = _Request(
                verb=verb,
                path=path,
                raw_query=raw_query,
                query=dict(parse_qsl(raw_query, keep_blank_values=True)),
                body=body,
                headers=headers,
                client=str(client[0]) if client else "?",
                route=route,
                params=tuple(unquote(p) for p in params),
            )
            self._limit(request)
            if route.private:
                request.key = self._authenticate(request, now)
                if route.trading and not request.key.can_trade:
                    raise _Reject(403, "05001", "Your operation authority is invalid")
            faults = self.exchange.faults
            failure = faults.take_failure(f"{verb} {path}") or faults.take_failure(
                f"{verb} {route.template}"
            )
            if failure is not None:
                raise _Reject(status_for_code(failure.code), failure.code, failure.message)
            handler: Callable[[_Request, int], object] = getattr(self, f"_h_{route.handler}")
            try:
                return 200, handler(request, now)
            except EngineReject as reject:
                raise _Reject(status_for_code(reject.code), reject.code, reject.message) from None
        except _Reject as reject:
            logger.debug("%s %s refused: %s", verb, path, reject)
            return reject.status, m.RestErrorReply(
                event=event, code=reject.code, message=reject.message, timestamp=now
            )

    @staticmethod
    def _match(verb: str, path: str) -> tuple[_Route, tuple[str, ...]]:
        wrong_verb = False
        for route in _ROUTES:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.verb == verb:
                return route, found.groups()
            wrong_verb = True
        if wrong_verb:
            raise _Reject(405, "20003", "Unrecognized operation")
        raise _Reject(404, "20003", "Unrecognized operation")

    def _limit(self, request: _Request) -> None:
        who = request.headers.get("accesskey") or f"ip:{request.client}"
        limiter = self._limiters.get(who)
        if limiter is None:
            limiter = self._limiters[who] = RestLimiter(self.rate_limits)
        route = f"{request.verb} {request.route.template}"
        if not limiter.allow(trio.current_time(), route):
            raise _Reject(429, "20007", "You are accessing server too rapidly")

    def _authenticate(self, request: _Request, now_ms: int) -> ApiKey:
        headers = request.headers
        access_key = headers.get("accesskey")
        key = self.exchange.lookup_key(access_key) if access_key else None
        if key is None:
            raise _Reject(401, "20025", "API key is invalid")
        timestamp = headers.get("timestamp")
        if not timestamp:
            raise _Reject(401, "20023", "timestamp is required")
        signature = headers.get("signature")
        nonce = headers.get("nonce")
        if not signature or not nonce:
            raise _Reject(401, "20000", "Signature is invalid")
        try:
            sent = parse_rest_timestamp(timestamp)
        except ValueError:
            raise _Reject(401, "20000", "Signature is invalid") from None
        if abs(now_ms / 1000 - sent) > self.timestamp_tolerance:
            raise _Reject(401, "20024", "timestamp exceeds the threshold")
        signed_body = request.body.decode("utf-8", "replace") if request.body else request.raw_query
        if not verify_rest_signature(
            key.api_secret,
            signature,
            timestamp=timestamp,
            nonce=nonce,
            verb=request.verb,
            host=headers.get("host", ""),
            path=request.path,
            body=signed_body,
        ):
            raise _Reject(401, "20000", "Signature is invalid")
        return key

    # --- shared lookups -------------------------------------------------------------------

    def _market(self, code: str) -> MarketSpec:
        spec = self.exchange.markets.get(code)
        if spec is None:
            raise _Reject(400, "20015", "marketCode is invalid")
        return spec

    def _json_body(self, request: _Request) -> dict[str, Any]:
        try:
            data = orjson.loads(request.body) if request.body else {}
        except orjson.JSONDecodeError:
            raise _Reject(400, "20009", "JSON data format is invalid") from None
        if not isinstance(data, dict):
            raise _Reject(400, "20009", "JSON data format is invalid")
        return data

    # --- public handlers ------------------------------------------------------------------

    def _h_ping(self, request: _Request, now: int) -> object:
        return m.Ping(success=True)

    def _h_markets(self, request: _Request, now: int) -> object:
        engine = self.exchange.engine
        data = tuple(
            m.Market(
                market_id=int(spec.market_id) if spec.market_id.isdigit() else None,
                market_code=spec.market_code,
                name=spec.name,
                reference_pair=spec.reference_pair,
                base=spec.base,
                counter=spec.counter,
                type=spec.type,
                tick_size=spec.tick_size,
                qty_increment=spec.qty_increment,
                listing_date=spec.listing_date_ms,
                end_date=spec.expiry_ms or 0,
                margin_currency=spec.margin_currency,
                contract_val_currency=spec.contract_val_currency,
                upper_price_bound=spec.upper_price_bound,
                lower_price_bound=spec.lower_price_bound,
                market_price=engine.mark_price(spec.market_code),
                market_price_last_updated=now,
            )
            for spec in self.exchange.markets.values()
        )
        return m.MarketsReply(timestamp=now, data=data)

    def _h_assets(self, request: _Request, now: int) -> object:
        coins: dict[str, None] = {}
        contracts: list[m.Asset] = []
        for spec in self.exchange.markets.values():
            coins.setdefault(spec.base)
            coins.setdefault(spec.counter)
            if spec.is_derivative:
                contracts.append(
                    m.Asset(
                        instrument_id=spec.market_code,
                        name=spec.name,
                        base=spec.base,
                        counter=spec.counter,
                        type=spec.type,
                        margin_currency=spec.margin_currency,
                        contract_val_currency=spec.contract_val_currency,
                    )
                )
        spot = [m.Asset(instrument_id=coin, name=coin, type="SPOT") for coin in coins]
        return m.AssetsReply(timestamp=now, data=(*contracts, *spot))

    def _h_ticker(self, request: _Request, now: int) -> object:
        data = []
        for code in self.exchange.markets:
            t = self.exchange.engine.ticker(code)
            data.append(
                m.Ticker(
                    market_code=code,
                    last=t.last,
                    mark_price=t.mark_price,
                    open24h=t.open24h,
                    volume24h=t.volume24h,
                    currency_volume24h=t.currency_volume24h,
                    high24h=t.high24h,
                    low24h=t.low24h,
                    open_interest=t.open_interest,
                    last_qty=t.last_qty,
                )
            )
        return m.TickerReply(timestamp=now, data=tuple(data))

    def _h_public_trades(self, request: _Request, now: int) -> object:
        (code,) = request.params
        self._market(code)
        limit, start, end = _window(request.query, m.PUBLIC_TRADES_PAGE, now)
        trades = self.exchange.engine.public_trades(code, limit=limit, start_ms=start, end_ms=end)
        data = tuple(
            m.PublicTrade(
                match_id=t.trade_id,
                match_quantity=t.quantity,
                match_price=t.price,
                side=t.side,
                match_timestamp=t.timestamp,
            )
            for t in reversed(trades)
        )
        return m.PublicTradesReply(timestamp=now, market_code=code, data=data)

    def _h_depth(self, request: _Request, now: int) -> object:
        code, level_text = request.params
        self._market(code)
        if not level_text.isdigit() or not 1 <= int(level_text) <= _MAX_DEPTH_LEVEL:
            raise _invalid(f"level must be between 1 and {_MAX_DEPTH_LEVEL}")
        level = int(level_text)
        book = self.exchange.engine.book(code, level)
        snapshot = m.DepthSnapshot(asks=book.asks, bids=book.bids, market_code=code, timestamp=now)
        return m.DepthReply(event=f"depthL{level}", timestamp=now, data=(snapshot,))

    def _h_candles(self, request: _Request, now: int) -> object:
        (code,) = request.params
        self._market(code)
        try:
            timeframe = CandleGranularity(request.query.get("timeframe", "3600s"))
        except ValueError:
            raise _invalid("timeframe is not a supported granularity") from None
        limit = _int_param(request.query, "limit")
        limit = m.CANDLES_PAGE.default if limit is None else limit
        rule = attrs.evolve(m.CANDLES_PAGE, default_span_ms=limit * timeframe.seconds * 1000)
        limit, start, end = _window(request.query, rule, now)
        candles = self.exchange.engine.candles(
            code, timeframe.seconds, limit, start_ms=start, end_ms=end
        )
        data = tuple(
            m.Candle(
                timestamp=c.start_ms,
                open=c.open,
                high=c.high,
                low=c.low,
                close=c.close,
                volume24h=c.volume,
                currency_volume24h=c.currency_volume,
            )
            for c in candles
        )
        return m.CandlesReply(timestamp=now, timeframe=timeframe, data=data)

    def _perpetual(self, code: str) -> MarketSpec:
        spec = self._market(code)
        if not spec.is_perpetual:
            raise _Reject(400, "20015", "marketCode is invalid: not a perpetual swap")
        return spec

    def _h_funding_rates(self, request: _Request, now: int) -> object:
        (code,) = request.params
        self._perpetual(code)
        limit, start, end = _window(request.query, m.FUNDING_RATES_PAGE, now)
        picked = [
            m.FundingRate(
                funding_rate=f.rate,
                index=f.index,
                mark_price=f.mark_price,
                market_code=f.market_code,
                timestamp=f.timestamp,
            )
            for f in self.exchange.funding.history(now, code, start, end)[:limit]
        ]
        return m.FundingRatesReply(timestamp=now, data=tuple(picked))

    def _h_public_funding(self, request: _Request, now: int) -> object:
        query = dict(request.query)
        for name in ("startTime", "endTime"):
            if name in query and not query[name].isdigit():
                try:
                    stamp = datetime.strptime(query[name], "%Y-%m-%d %H:%M:%S")
                except ValueError:
                    raise _invalid(f"{name} must be like 2021-12-08 08:00:00") from None
                query[name] = str(int(stamp.replace(tzinfo=UTC).timestamp()) * 1000)
        limit, start, end = _window(query, m.PUBLIC_FUNDING_PAGE, now)
        instrument = query.get("instrumentId")
        if instrument:
            self._perpetual(instrument)
        records = self.exchange.funding.history(now, instrument or None, start, end)
        return tuple(
            m.PublicFunding(timestamp=f.timestamp, instrument_id=f.market_code, funding_rate=f.rate)
            for f in records[:limit]
        )

    # --- private: account -----------------------------------------------------------------

    def _h_account_info(self, request: _Request, now: int) -> object:
        info = self.exchange.engine.account_info(request.account_id)
        entry = m.AccountInfo(
            account_id=info.account_id,
            trade_type="LINEAR",
            margin_currency=info.margin_currency,
            total_balance=info.total_balance,
            collateral_balance=info.collateral_balance,
            available_balance=info.available_balance,
            portfolio_var_margin=info.portfolio_var_margin,
            risk_ratio=info.risk_ratio,
            timestamp=info.timestamp,
        )
        return m.AccountInfoReply(timestamp=now, account_id=request.account_id, data=(entry,))

    def _balances(self, request: _Request, now: int, event: str, only: str | None) -> object:
        balances = self.exchange.engine.balances(request.account_id)
        data = tuple(
            m.Balance(
                instrument_id=b.instrument,
                total=b.total,
                available=b.available,
                reserved=b.reserved,
                quantity_last_updated=b.updated,
            )
            for name, b in balances.items()
            if only is None or name == only
        )
        return m.BalancesReply(
            event=event,
            timestamp=now,
            account_id=request.account_id,
            trade_type="LINEAR",
            data=data,
        )

    def _h_balances(self, request: _Request, now: int) -> object:
        return self._balances(request, now, "balances", None)

    def _h_balance(self, request: _Request, now: int) -> object:
        return self._balances(request, now, "balancesById", request.params[0])

    def _positions(self, request: _Request, now: int, event: str, only: str | None) -> object:
        positions = self.exchange.engine.positions(request.account_id)
        data = tuple(
            m.Position(
                instrument_id=p.market_code,
                quantity=p.quantity,
                last_updated=p.updated,
                contract_val_currency=p.contract_val_currency
                or self.exchange.markets[p.market_code].base,
                entry_price=p.entry_price,
                position_pnl=p.position_pnl,
                est_liquidation_price=max(p.est_liquidation_price, Decimal(0)),
            )
            for code, p in positions.items()
            if p.quantity != 0 and (only is None or code == only)
        )
        return m.PositionsReply(
            event=event, timestamp=now, account_id=request.account_id, data=data
        )

    def _h_positions(self, request: _Request, now: int) -> object:
        return self._positions(request, now, "positions", None)

    def _h_position(self, request: _Request, now: int) -> object:
        return self._positions(request, now, "positionsById", request.params[0])

    def _h_trades(self, request: _Request, now: int) -> object:
        (code,) = request.params
        self._market(code)
        limit, start, end = _window(request.query, m.ACCOUNT_TRADES_PAGE, now)
        trades = self.exchange.engine.account_trades(
            request.account_id, code, limit=limit, start_ms=start, end_ms=end
        )
        data = tuple(
            m.AccountTrade(
                match_id=t.match_id,
                match_timestamp=t.timestamp,
                market_code=t.market_code,
                match_quantity=t.quantity,
                match_price=t.price,
                total=t.price * t.quantity,
                order_match_type=t.match_type,
                fees=t.fees,
                fee_instrument_id=t.fee_instrument,
                order_id=t.order_id,
                side=t.side,
                client_order_id=t.client_order_id,
            )
            for t in reversed(trades)
        )
        return m.AccountTradesReply(timestamp=now, account_id=request.account_id, data=data)

    def _h_open_orders(self, request: _Request, now: int) -> object:
        data = tuple(
            m.OpenOrder(
                order_id=o.order_id,
                market_code=o.market_code,
                client_order_id=o.client_order_id,
                side=o.side,
                order_type=o.order_type,
                quantity=o.quantity,
                remaining_quantity=o.remaining,
                price=o.price,
                stop_price=o.stop_price,
                limit_price=o.limit_price,
                order_created=o.created,
                last_modified=o.timestamp,
                last_trade_timestamp=o.timestamp if o.filled > 0 else None,
                time_in_force=o.time_in_force,
            )
            for o in self.exchange.engine.open_orders(request.account_id)
        )
        return m.OpenOrdersReply(timestamp=now, account_id=request.account_id, data=data)

    def _h_orders_v21(self, request: _Request, now: int) -> object:
        query = request.query
        market = query.get("marketCode") or None
        if market is not None:
            self._market(market)
        order_id = _int_param(query, "orderId")
        client_order_id = _int_param(query, "clientOrderId")
        limit, start, end = _window(query, m.ORDERS_V21_PAGE, now)
        engine = self.exchange.engine
        account = request.account_id
        orders = [
            *engine.order_history(account, market),
            *(o for o in engine.open_orders(account) if market is None or o.market_code == market),
        ]
        picked = [
            o
            for o in orders
            if start <= o.timestamp <= end
            and (order_id is None or o.order_id == order_id)
            and (client_order_id is None or o.client_order_id == client_order_id)
        ]
        picked.sort(key=lambda o: (o.timestamp, o.order_id), reverse=True)
        fills: dict[int, list[Any]] = {}
        if picked:
            wanted = {o.order_id for o in picked[:limit]}
            for trade in engine.account_trades(account, market):
                if trade.order_id in wanted:
                    fills.setdefault(trade.order_id, []).append(trade)
        data = tuple(_order_record(o, fills.get(o.order_id, [])) for o in picked[:limit])
        return m.OrderRecordsReply(timestamp=now, account_id=account, data=data)

    # --- private: orders ------------------------------------------------------------------

    def _h_cancel_all(self, request: _Request, now: int) -> object:
        market = request.params[0] if request.params else None
        if market is not None:
            self._market(market)
        account = request.account_id
        self.exchange.engine.cancel_all(account, market)
        self.exchange.flush()
        self.exchange.broadcast_cancel_notice(account)
        ack = m.CancelAllAck(
            market_code=market, msg=_CANCEL_MARKET_MSG if market else _CANCEL_ALL_MSG
        )
        return m.CancelAllReply(timestamp=now, account_id=account, data=ack)

    def _batch(self, request: _Request) -> tuple[list[Any], m.ResponseType, bool]:
        body = self._json_body(request)
        try:
            response_type = m.ResponseType(str(body.get("responseType")))
        except ValueError:
            raise _invalid("responseType must be FULL or ACK") from None
        orders = body.get("orders")
        if not isinstance(orders, list) or not 1 <= len(orders) <= m.MAX_ORDERS_PER_REQUEST:
            raise _invalid(f"orders must list 1 to {m.MAX_ORDERS_PER_REQUEST} orders")
        expired = False
        sent = body.get("timestamp")
        if sent is not None:
            try:
                sent_ms = int(sent)
                window = int(body.get("recvWindow", 1000))
            except (TypeError, ValueError):
                raise _invalid("timestamp and recvWindow must be integers") from None
            expired = self.exchange.now_ms() > sent_ms + window
        return orders, response_type, expired

    def _decode_order(self, raw: object, cls: type[Any]) -> Any:
        try:
            return converter.structure(raw, cls)
        except Exception:
            return None

    def _each_order(
        self,
        request: _Request,
        now: int,
        cls: type[Any],
        event: str,
        act: Callable[[Any], tuple[Order, OrderNotice]],
        *,
        valid: Callable[[Any], bool] = lambda order: True,
    ) -> m.OrderResultsReply:
        """Apply ``act`` to each order of a batch request: one result per order, as documented.

        ``act`` returns the order as it now stands and the notice that describes it; an order the
        request cannot express (``valid`` false), a late request, or an engine refusal becomes a
        failed entry echoing the order, and never stops the rest of the batch.
        """
        raws, response_type, expired = self._batch(request)
        stamp = self.exchange.now_ms
        results: list[m.OrderResult] = []
        for raw in raws:
            order = self._decode_order(raw, cls)
            if order is None or not valid(order):
                results.append(_refusal(raw, *_INVALID, stamp()))
                continue
            if expired:
                results.append(_refusal(raw, "20024", "timestamp exceeds the threshold", stamp()))
                continue
            try:
                done, notice = act(order)
            except _Reject as reject:
                results.append(_refusal(raw, reject.code, reject.message, stamp()))
                continue
            except EngineReject as reject:
                results.append(_refusal(raw, *_rest_code(reject), stamp()))
                continue
            finally:
                self.exchange.flush()
            results.append(self._accepted(done, response_type, notice))
        return m.OrderResultsReply(
            account_id=request.account_id, event=event, timestamp=now, data=tuple(results)
        )

    def _h_place(self, request: _Request, now: int) -> object:
        engine = self.exchange.engine
        account = request.account_id

        def place(order: m.RestPlaceOrder) -> tuple[Order, OrderNotice]:
            placed = engine.place(
                account,
                market_code=order.market_code,
                side=order.side,
                order_type=order.order_type,
                quantity=order.quantity,
                price=order.price,
                stop_price=order.stop_price,
                limit_price=order.limit_price,
                time_in_force=order.time_in_force or TimeInForce.GTC,
                client_order_id=order.client_order_id,
            )
            return placed, OrderNotice.OPENED

        return self._each_order(request, now, m.RestPlaceOrder, "placeOrder", place)

    def _h_modify(self, request: _Request, now: int) -> object:
        engine = self.exchange.engine
        account = request.account_id

        def modify(order: m.RestModifyOrder) -> tuple[Order, OrderNotice]:
            modified = engine.modify(
                account,
                order.market_code,
                order.order_id,
                side=order.side,
                price=order.price,
                quantity=order.quantity,
            )
            same = modified.order_id == order.order_id
            return modified, OrderNotice.MODIFIED if same else OrderNotice.OPENED

        # The engine cannot move a stop order's trigger or limit, so such a modify is refused.
        return self._each_order(
            request,
            now,
            m.RestModifyOrder,
            "modifyOrder",
            modify,
            valid=lambda order: order.stop_price is None and order.limit_price is None,
        )

    def _h_cancel(self, request: _Request, now: int) -> object:
        engine = self.exchange.engine
        account = request.account_id

        def cancel(order: m.RestCancelOrder) -> tuple[Order, OrderNotice]:
            order_id = order.order_id
            if order_id is None:
                assert order.client_order_id is not None  # checked by ``valid`` below
                self._market(order.market_code)
                found = engine.find_order(account, order.market_code, order.client_order_id)
                if found is None:
                    raise EngineReject("100005")
                order_id = found.order_id
            return engine.cancel(account, order.market_code, order_id), OrderNotice.CLOSED

        return self._each_order(
            request,
            now,
            m.RestCancelOrder,
            "cancelOrder",
            cancel,
            valid=lambda order: order.order_id is not None or order.client_order_id is not None,
        )

    def _accepted(
        self, order: Order, response_type: m.ResponseType, notice: OrderNotice
    ) -> m.OrderResult:
        now = self.exchange.now_ms()
        if response_type is m.ResponseType.ACK:
            return m.OrderResult(
                success=True,
                timestamp=now,
                client_order_id=order.client_order_id,
                order_id=order.order_id,
                market_code=order.market_code,
            )
        fill = None
        if order.filled > 0:
            trades = self.exchange.engine.account_trades(order.account_id, order.market_code)
            fill = next((t for t in reversed(trades) if t.order_id == order.order_id), None)
        if fill is not None and notice is OrderNotice.OPENED:
            notice = OrderNotice.MATCHED
        elif not order.is_open and notice is OrderNotice.OPENED:
            notice = OrderNotice.CLOSED
        return m.OrderResult(
            success=True,
            timestamp=order.timestamp,
            client_order_id=order.client_order_id,
            order_id=order.order_id,
            price=order.price if order.price is not None else order.limit_price,
            quantity=order.quantity,
            side=order.side,
            status=order.status,
            market_code=order.market_code,
            time_in_force=order.time_in_force,
            match_id=_match_id(fill, notice),
            last_traded_price=fill.price if fill is not None else None,
            match_quantity=fill.quantity if fill is not None else None,
            order_match_type=fill.match_type if fill is not None else None,
            remain_quantity=order.remaining if notice is not OrderNotice.OPENED else None,
            notice=notice,
            order_type=order.order_type,
            fees=fill.fees if fill is not None else None,
            fee_instrument_id=fill.fee_instrument if fill is not None else None,
            is_triggered=order.triggered,
        )

    # --- private: delivery ----------------------------------------------------------------

    def _h_delivery_orders(self, request: _Request, now: int) -> object:
        limit, start, end = _window(request.query, m.DELIVERY_ORDERS_PAGE, now)
        account = request.account_id
        picked = [
            m.DeliveryOrder(
                timestamp=d.last_updated,
                instrument_id=d.market_code,
                status=d.status,
                quantity=d.quantity,
                deliver_price=d.price,
                transfer_asset=d.pays,
                transfer_qty=d.pay_qty if d.status == PENDING else Decimal(0),
                instrument_id_deliver=d.receives,
                deliver_qty=Decimal(0),  # nothing is received before the auction settles
                deliver_order_id=d.delivery_id,
            )
            for d in self.exchange.deliveries
            if d.account_id == account and start <= d.last_updated <= end
        ]
        return m.DeliveryOrdersReply(timestamp=now, data=tuple(picked[-limit:]))

    def _h_submit_delivery(self, request: _Request, now: int) -> object:
        body = self._json_body(request)
        code = body.get("instrumentId")
        if not isinstance(code, str):
            raise _Reject(400, "20011", "marketCode is required")
        self._perpetual(code)
        quantity = _decimal(body.get("qtyDeliver"), "qtyDeliver")
        d = self.exchange.deliveries.submit(request.account_id, code, quantity, now)
        record = m.DeliverySubmission(
            deliver_order_id=d.delivery_id,
            account_id=d.account_id,
            instrument_id=d.market_code,
            deliver_price=d.price,
            deliver_position=d.quantity,
            deliver_type="NEXT_CYCLE",
            instrument_id_deliver=d.receives,
            deliver_qty=d.receive_qty,
            remaining_qty=d.receive_qty,
            remaining_position=d.quantity,
            transfer_asset=d.pays,
            transfer_qty=d.pay_qty,
            auction_time=next_auction(now),
            created=d.created,
            last_updated=d.last_updated,
            status=d.status,
        )
        return m.DeliverySubmitReply(timestamp=now, account_id=d.account_id, data=(record,))

    def _h_cancel_delivery(self, request: _Request, now: int) -> object:
        (text,) = request.params
        ok = text.isdigit() and self.exchange.deliveries.cancel(request.account_id, int(text), now)
        message = m.DELIVERY_CANCEL_OK if ok else m.DELIVERY_CANCEL_FAILED
        return m.DeliveryCancelReply(timestamp=now, account_id=request.account_id, data=(message,))

    def _h_deliver_auction(self, request: _Request, now: int) -> object:
        only = request.params[0] if request.params else None
        if only is not None:
            self._perpetual(only)
        funding = self.exchange.funding
        data = []
        for spec in self.exchange.markets.values():
            if not spec.is_perpetual or (only is not None and spec.market_code != only):
                continue
            latest = funding.latest(now, spec.market_code)
            data.append(
                m.DeliverAuction(
                    instrument_id=spec.market_code,
                    auction_time=next_auction(now),
                    net_deliver=self.exchange.deliveries.net_pending(spec.market_code),
                    est_funding_rate=latest.rate if latest else Decimal(0),
                )
            )
        return m.DeliverAuctionReply(timestamp=now, data=tuple(data))


def _match_id(fill: Any, notice: OrderNotice) -> int | None:
    """The last fill's match id; ``0`` for a freshly opened order, as the documents show."""
    if fill is not None:
        return int(fill.match_id)
    return 0 if notice is OrderNotice.OPENED else None


def _rest_code(reject: EngineReject) -> tuple[str, str]:
    """The REST documents report a missing open order as ``40035``."""
    if reject.code == "100005":
        return "40035", "Open order not found with id"
    return reject.code, reject.message


def _refusal(raw: object, code: str, message: str, now: int) -> m.OrderResult:
    """A failed entry echoing what the request said about the order."""
    fields = raw if isinstance(raw, dict) else {}
    echo = {
        key: fields[key]
        for key in (
            "clientOrderId",
            "orderId",
            "price",
            "quantity",
            "side",
            "marketCode",
            "timeInForce",
            "orderType",
        )
        if key in fields
    }
    try:
        base = converter.structure({"success": False, **echo}, m.OrderResult)
    except Exception:
        base = m.OrderResult(success=False)
    return attrs.evolve(base, timestamp=now, code=code, message=message)


def _order_record(order: Order, fills: list[Any]) -> m.OrderRecord:
    if order.is_open:
        status = (
            m.OrderRecordStatus.PARTIALLY_MATCHED
            if order.filled > 0
            else m.OrderRecordStatus.OPENED
        )
    elif order.status is OrderStatus.FILLED:
        status = m.OrderRecordStatus.MATCHED
    else:
        status = m.OrderRecordStatus.CLOSED
    fees: dict[str, Decimal] = {}
    for fill in fills:
        fees[fill.fee_instrument] = fees.get(fill.fee_instrument, Decimal(0)) + fill.fees
    matches = tuple(
        m.OrderMatch(
            match_id=f.match_id,
            match_quantity=f.quantity,
            match_price=f.price,
            timestamp=f.timestamp,
            order_match_type=f.match_type,
        )
        for f in fills
    )
    return m.OrderRecord(
        status=status,
        order_id=order.order_id,
        client_order_id=order.client_order_id,
        market_code=order.market_code,
        side=order.side,
        order_type=order.order_type,
        price=order.price,
        last_traded_price=fills[-1].price if fills else None,
        avg_fill_price=order.avg_fill_price,
        stop_price=order.stop_price,
        limit_price=order.limit_price,
        quantity=order.quantity,
        filled_quantity=order.filled if order.filled > 0 else None,
        remain_quantity=order.remaining,
        match_ids=matches or None,
        fees=fees or None,
        time_in_force=order.time_in_force,
        is_triggered=order.triggered,
        order_opened_timestamp=order.created if order.is_open else None,
        order_closed_timestamp=None if order.is_open else order.timestamp,
    )


def make_rest_app(
    exchange: SimExchange,
    *,
    rate_limits: RestLimits = DEFAULT_REST_LIMITS,
    timestamp_tolerance: float = 60.0,
) -> RestApp:
    """The REST ASGI app over ``exchange`` (see :class:`RestApp`)."""
    return RestApp(exchange, rate_limits=rate_limits, timestamp_tolerance=timestamp_tolerance)


async def serve_rest(
    exchange: SimExchange,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    rate_limits: RestLimits = DEFAULT_REST_LIMITS,
    timestamp_tolerance: float = 60.0,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the REST API with hypercorn until cancelled (or ``shutdown`` is set).

    Reports the bound base URL (``http://127.0.0.1:54321``) through ``task_status``, so
    ``url = await nursery.start(serve_rest, exchange)`` works with ``port=0``.
    """
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("flexconn.sim.rest.hypercorn")
    config.graceful_timeout = 1.0
    app = make_rest_app(exchange, rate_limits=rate_limits, timestamp_tolerance=timestamp_tolerance)
    trigger = shutdown.wait if shutdown is not None else trio.sleep_forever

    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        asgi: Any = app  # hypercorn types its apps structurally with TypedDict scopes
        await serve(asgi, config, shutdown_trigger=trigger, task_status=task_status)

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(run)
        url = binds[0]
        logger.info("REST simulator listening on %s", url)
        task_status.started(url)
