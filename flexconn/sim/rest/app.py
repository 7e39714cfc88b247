"""The simulator's REST server as an ASGI app: plumbing, routing, limits and authentication.

A request goes through fixed stages, each of which may answer early with the failure body
``{"event", "success": false, "code", "message", "timestamp"}``:

1. routing (``404``/``20003`` for unknown paths, ``405``/``20003`` for a wrong verb);
2. the rate limit, per API key (or per client address for unsigned requests): ``429``/``20007``
   (:mod:`flexconn.sim.ratelimit`);
3. for private routes, the documented HMAC check (``401`` with ``20025`` unknown or missing
   key, ``20023`` missing timestamp, ``20024`` timestamp outside the tolerance, ``20000`` bad or
   missing signature/nonce), then ``403``/``05001`` for trading with a read-only key;
4. an armed :meth:`Faults.fail_next` for ``"<VERB> <path>"`` or ``"<VERB> <path template>"``
   (HTTP status from the code: 401 auth codes, 403 ``05001``, 429 ``20007``, 500 ``20001``,
   504 ``20032``, else 400);
5. the route's handler (:mod:`~flexconn.sim.rest.routes`), which validates its parameters
   (``400``, ``40032`` ``Invalid request data`` or the engine's code), calls the exchange and
   then :meth:`SimExchange.flush`.

Replies may be held back by :meth:`Faults.delay_replies`. Bodies are the documents' later forms,
encoded by the models of :mod:`flexconn.models.rest`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

import orjson
import trio

from flexconn.auth import parse_rest_timestamp
from flexconn.models import rest as m
from flexconn.protocol.codec import converter
from flexconn.sim.exchange import ApiKey, SimExchange
from flexconn.sim.orders import EngineReject
from flexconn.sim.ratelimit import DEFAULT_REST_LIMITS, RestLimiter, RestLimits
from flexconn.sim.rest.request import INVALID, Reject, Request
from flexconn.sim.rest.routes import Route, match
from flexconn.sim.signatures import verify_rest_signature

__all__ = ["RestApp", "make_rest_app", "status_for_code"]

logger = logging.getLogger("flexconn.sim.rest")

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_MAX_BODY: Final = 1 << 20
_AUTH_CODES: Final = frozenset({"20000", "20023", "20024", "20025", "20026"})


def status_for_code(code: str) -> int:
    """The HTTP status the simulator pairs with an exchange error code."""
    if code in _AUTH_CODES:
        return 401
    return {"05001": 403, "20007": 429, "20001": 500, "20032": 504}.get(code, 400)


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
                    {"success": False, "code": INVALID[0], "message": "request body too large"},
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
            route, params = match(verb, path)
            event = route.event
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            client = scope.get("client")
            request = Request(
                verb=verb,
                path=path,
                raw_query=raw_query,
                query=dict(parse_qsl(raw_query, keep_blank_values=True)),
                body=body,
                headers=headers,
                client=str(client[0]) if client else "?",
                params=tuple(unquote(p) for p in params),
            )
            self._limit(request, route)
            if route.private:
                request.key = self._authenticate(request, now)
                if route.trading and not request.key.can_trade:
                    raise Reject(403, "05001", "Your operation authority is invalid")
            faults = self.exchange.faults
            failure = faults.take_failure(f"{verb} {path}") or faults.take_failure(
                f"{verb} {route.template}"
            )
            if failure is not None:
                raise Reject(status_for_code(failure.code), failure.code, failure.message)
            try:
                return 200, route.handler(self.exchange, request, now)
            except EngineReject as reject:
                raise Reject(status_for_code(reject.code), reject.code, reject.message) from None
        except Reject as reject:
            logger.debug("%s %s refused: %s", verb, path, reject)
            return reject.status, m.RestErrorReply(
                event=event, code=reject.code, message=reject.message, timestamp=now
            )

    def _limit(self, request: Request, route: Route) -> None:
        who = request.headers.get("accesskey") or f"ip:{request.client}"
        limiter = self._limiters.get(who)
        if limiter is None:
            limiter = self._limiters[who] = RestLimiter(self.rate_limits)
        if not limiter.allow(trio.current_time(), f"{request.verb} {route.template}"):
            raise Reject(429, "20007", "You are accessing server too rapidly")

    def _authenticate(self, request: Request, now_ms: int) -> ApiKey:
        headers = request.headers
        access_key = headers.get("accesskey")
        key = self.exchange.lookup_key(access_key) if access_key else None
        if key is None:
            raise Reject(401, "20025", "API key is invalid")
        timestamp = headers.get("timestamp")
        if not timestamp:
            raise Reject(401, "20023", "timestamp is required")
        signature = headers.get("signature")
        nonce = headers.get("nonce")
        if not signature or not nonce:
            raise Reject(401, "20000", "Signature is invalid")
        try:
            sent = parse_rest_timestamp(timestamp)
        except ValueError:
            raise Reject(401, "20000", "Signature is invalid") from None
        if abs(now_ms / 1000 - sent) > self.timestamp_tolerance:
            raise Reject(401, "20024", "timestamp exceeds the threshold")
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
            raise Reject(401, "20000", "Signature is invalid")
        return key


def make_rest_app(
    exchange: SimExchange,
    *,
    rate_limits: RestLimits = DEFAULT_REST_LIMITS,
    timestamp_tolerance: float = 60.0,
) -> RestApp:
    """The REST ASGI app over ``exchange`` (see :class:`RestApp`)."""
    return RestApp(exchange, rate_limits=rate_limits, timestamp_tolerance=timestamp_tolerance)
