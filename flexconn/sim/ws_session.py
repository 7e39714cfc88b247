"""One WebSocket connection's protocol state machine (sans-IO).

:class:`Session` takes each complete text message the client sent and answers through two
callbacks it never awaits: ``reply`` for command replies (the I/O shell may hold them back for
the reply-delay fault) and the connection's ``push`` for channel data. It owns the login state,
the message rate limit and the connection's subscriptions, and calls the engine directly.

Checks applied to every message, in order (each answered in the failure shape of the message's
own op, one reply per order for batches):

1. rate limit (50/s logged in, 1/s before; configurable)            -> 20007
2. not valid JSON, or not an object                                  -> 20009 (event ``error``)
3. longer than ``MAX_MESSAGE_LENGTH`` (4096) UTF-8 bytes            -> 20027
4. ``tag`` longer than 32 characters                                 -> 20034
5. unknown ``op``                                                    -> 20003
6. private op or channel before login                                -> 20026
7. order command with a read-only key                                -> 05001

Not logged in is answered with 20026 ("Token is invalid or expired"): the session holds no valid
login, which is the condition that code describes; 05001 is kept for a key that lacks the
authority to trade. Orders also count against the account's 50 orders/s (20007).

Order outcomes. Validation failures and engine refusals reply ``submitted: false`` with the code;
for the mistakes the 2020-12 document reports as ``OrderRejected`` (quantity zero, unknown order
type, LIMIT without price, stop/limit price relation) that notice is pushed on the order channel
as well. A cancel or modify of an order that no longer exists but did recently (it filled or was
closed) is the race the later document describes: the reply is ``submitted: true`` and the order
channel then carries the ``CANCEL``/``AMEND`` failure notice (code 100004). An order id the
exchange never saw is refused at once with 100005 (100006 for another account's open order).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
import orjson
import trio

from flexconn.errors import ERROR_CODES
from flexconn.models.enums import OrderStatus
from flexconn.protocol import MAX_MESSAGE_LENGTH, MAX_TAG_LENGTH, message_length
from flexconn.sim import ws_messages as msg
from flexconn.sim.exchange import ApiKey, SimExchange
from flexconn.sim.fanout import Subscriber
from flexconn.sim.orders import EngineReject, Order
from flexconn.sim.ratelimit import Limiter
from flexconn.sim.signatures import verify_ws_login
from flexconn.sim.wire import Frame
from flexconn.sim.ws_channels import CANDLE_KINDS, DEPTH_KINDS
from flexconn.sim.ws_validate import (
    ModifyCommand,
    Rejection,
    echo,
    parse_cancel,
    parse_modify,
    parse_place,
)

__all__ = [
    "DEFAULT_LOGIN_WINDOW_MS",
    "Session",
    "SessionOptions",
    "parse_channel",
]

logger = logging.getLogger("flexconn.sim.ws")

#: How far a login ``timestamp`` may be from the server's clock, either way (20024 beyond).
DEFAULT_LOGIN_WINDOW_MS: Final = 30_000

_PLACE_ECHO: Final = (
    "clientOrderId",
    "marketCode",
    "side",
    "orderType",
    "quantity",
    "timeInForce",
    "price",
    "stopPrice",
    "limitPrice",
)
_CANCEL_ECHO: Final = ("marketCode", "orderId")
_MODIFY_ECHO: Final = ("orderId", "side", "quantity", "price", "marketCode")
_BATCH_OF: Final = {
    "placeorders": "placeorder",
    "cancelorders": "cancelorder",
    "modifyorders": "modifyorder",
}
_ORDER_OPS: Final = frozenset({"placeorder", "cancelorder", "modifyorder"})
_PRIVATE_KINDS: Final = frozenset({"order", "position", "balance"})
_MARKET_OR_ALL: Final = frozenset({"ticker", "market", "order", "position"})
_MARKET_ONLY: Final = frozenset({*DEPTH_KINDS, "trade", *CANDLE_KINDS})


def _message(code: str) -> str:
    return ERROR_CODES[code][0]


@attrs.frozen(kw_only=True)
class SessionOptions:
    """Protocol limits of one session."""

    login_window_ms: int = DEFAULT_LOGIN_WINDOW_MS
    max_message_length: int = MAX_MESSAGE_LENGTH


def parse_channel(arg: Any, markets: Mapping[str, object]) -> tuple[str, str] | str:
    """Split a subscription argument into ``(kind, target)``, or return an error code.

    ``target`` is a market code, ``all``, an asset (balance) or ``""`` (``liquidationRFQ``).
    Unknown channel names are 20002; an unknown market in a known channel is 20015.
    """
    if not isinstance(arg, str):
        return "20002"
    if arg == "liquidationRFQ":
        return ("liquidationRFQ", "")
    kind, colon, target = arg.partition(":")
    if not colon or not target:
        return "20002"
    if kind == "balance":
        return (kind, target)
    if kind in _MARKET_OR_ALL:
        if target == "all" or target in markets:
            return (kind, target)
        return "20015"
    if kind in _MARKET_ONLY:
        return (kind, target) if target in markets else "20015"
    return "20002"


def _tag_of(request: Mapping[str, Any] | None) -> str | None:
    if request is None:
        return None
    tag = request.get("tag")
    if tag is None:
        return None
    if isinstance(tag, str):
        return tag
    if isinstance(tag, bool):
        return "true" if tag else "false"
    if isinstance(tag, int | float):
        return str(tag)
    return orjson.dumps(tag).decode()


class Session:
    """The protocol state of one WebSocket connection.

    Args:
        exchange: the shared exchange.
        subscriber: the connection (receives pushed channel data).
        reply: queues one command reply frame.
        options: protocol limits.
        now: trio time, for the rate limits.
    """

    def __init__(
        self,
        exchange: SimExchange,
        subscriber: Subscriber,
        reply: Callable[[Frame], None],
        *,
        options: SessionOptions = SessionOptions(),
        now: Callable[[], float] = trio.current_time,
    ) -> None:
        self._exchange = exchange
        self._sub = subscriber
        self._reply = reply
        self._options = options
        self._now = now
        limits = exchange.rate_limits
        self._noauth_limiter = Limiter(limits.unauthenticated)
        self._auth_limiter = Limiter(limits.authenticated)
        self.key: ApiKey | None = None
        self._handlers: dict[str, Callable[[Mapping[str, Any], str | None], None]] = {
            "login": self._login,
            "subscribe": self._subscribe,
            "unsubscribe": self._subscribe,
            "placeorder": lambda request, tag: self._place(request.get("data"), tag),
            "cancelorder": lambda request, tag: self._cancel(request.get("data"), tag),
            "modifyorder": lambda request, tag: self._modify(request.get("data"), tag),
            "placeorders": self._batch,
            "cancelorders": self._batch,
            "modifyorders": self._batch,
        }

    @property
    def account_id(self) -> str | None:
        """The logged-in account."""
        return self.key.account_id if self.key is not None else None

    # --- entry point ------------------------------------------------------------------------

    def handle(self, text: str) -> None:
        """Process one complete text message from the client."""
        limiter = self._auth_limiter if self.key is not None else self._noauth_limiter
        allowed = limiter.allow(self._now())
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
        request = parsed if isinstance(parsed, dict) else None
        if not allowed:
            self._refuse(request, "20007")
            return
        if request is None:
            self._refuse(None, "20009")
            return
        if message_length(text) > self._options.max_message_length:
            self._refuse(request, "20027")
            return
        tag = _tag_of(request)
        if tag is not None and len(tag) > MAX_TAG_LENGTH:
            self._refuse(request, "20034")
            return
        op = request.get("op")
        handler = self._handlers.get(op) if isinstance(op, str) else None
        if handler is None:
            self._refuse(request, "20003")
            return
        handler(request, tag)

    def handle_binary(self) -> None:
        """A binary message: never valid here (the protocol is JSON text)."""
        limiter = self._auth_limiter if self.key is not None else self._noauth_limiter
        self._refuse(None, "20009" if limiter.allow(self._now()) else "20007")

    # --- replies ----------------------------------------------------------------------------

    def _send(self, reply: dict[str, Any]) -> None:
        self._reply(Frame(msg.dumps(reply), push=False))

    def _refuse(
        self, request: Mapping[str, Any] | None, code: str, message: str | None = None
    ) -> None:
        """Answer a whole message with ``code``, in its op's failure shape."""
        text = message if message is not None else _message(code)
        ts = self._exchange.now_ms()
        tag = _tag_of(request)
        op = request.get("op") if request is not None else None
        if op == "login":
            self._send(msg.login_failure(tag, code, text, ts))
        elif op in _ORDER_OPS:
            assert request is not None
            data = request.get("data")
            self._send(msg.command_failure(op, tag, code, text, ts, self._echo(op, data)))
        elif op in _BATCH_OF:
            assert request is not None
            event = _BATCH_OF[op]
            items = request.get("dataArray")
            if isinstance(items, list) and items:
                for item in items:
                    self._send(
                        msg.command_failure(event, tag, code, text, ts, self._echo(event, item))
                    )
            else:
                self._send(msg.command_failure(event, tag, code, text, ts, {}))
        else:
            event = op if isinstance(op, str) else "error"
            self._send(msg.subscription_failure(event, tag, code, text, ts))

    @staticmethod
    def _echo(event: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            return {"source": 0} if event == "placeorder" else {}
        if "orderId" not in data and "orderID" in data:
            data = {**data, "orderId": data["orderID"]}
        if event == "placeorder":
            return {**echo(data, _PLACE_ECHO), "source": 0}
        if event == "cancelorder":
            return echo(data, _CANCEL_ECHO)
        return echo(data, _MODIFY_ECHO)

    def _fail(self, event: str, tag: str | None, code: str, message: str, data: Any) -> None:
        ts = self._exchange.now_ms()
        self._send(msg.command_failure(event, tag, code, message, ts, self._echo(event, data)))

    # --- login ------------------------------------------------------------------------------

    def _login(self, request: Mapping[str, Any], tag: str | None) -> None:
        exchange = self._exchange
        ts = exchange.now_ms()

        def fail(code: str, message: str | None = None) -> None:
            text = message if message is not None else _message(code)
            self._send(msg.login_failure(tag, code, text, ts))

        if self.key is not None:
            return fail("20005")
        injected = exchange.faults.take_failure("login")
        if injected is not None:
            return fail(injected.code, injected.message)
        data = request.get("data")
        if not isinstance(data, Mapping):
            return fail("20002")
        api_key = data.get("apiKey")
        key = exchange.lookup_key(api_key) if isinstance(api_key, str) else None
        if key is None:
            return fail("20025")
        stamp = data.get("timestamp")
        if stamp is None or stamp == "":
            return fail("20023")
        stamp_text = str(stamp) if isinstance(stamp, int) and not isinstance(stamp, bool) else stamp
        if not isinstance(stamp_text, str) or not stamp_text.isdigit():
            return fail("20024")
        if abs(ts - int(stamp_text)) > self._options.login_window_ms:
            return fail("20024")
        signature = data.get("signature")
        if not isinstance(signature, str) or not verify_ws_login(
            key.api_secret, stamp_text, signature
        ):
            return fail("20000")
        self.key = key
        exchange.fanout.login(self._sub, key.account_id)
        logger.debug("login: account %s (%s)", key.account_id, "trade" if key.can_trade else "read")
        self._send(msg.login_success(tag, ts))
        return None

    # --- subscriptions ----------------------------------------------------------------------

    def _subscribe(self, request: Mapping[str, Any], tag: str | None) -> None:
        exchange = self._exchange
        op = request["op"]
        args = request.get("args")
        if not isinstance(args, list) or not args:
            return self._refuse(request, "20002")
        injected = exchange.faults.take_failure(op)
        if injected is not None:
            return self._refuse(request, injected.code, injected.message)
        fanout = exchange.fanout
        for arg in args:
            ts = exchange.now_ms()
            parsed = parse_channel(arg, exchange.markets)
            if isinstance(parsed, str):
                self._send(msg.subscription_failure(op, tag, parsed, _message(parsed), ts))
                continue
            kind, target = parsed
            account = None
            if kind in _PRIVATE_KINDS:
                account = self.account_id
                if account is None:
                    self._send(msg.subscription_failure(op, tag, "20026", _message("20026"), ts))
                    continue
            if op == "subscribe":
                known = fanout.is_subscribed(self._sub, kind, target, account_id=account)
                fanout.subscribe(self._sub, kind, target, account_id=account)
                self._send(msg.subscription_success(op, tag, arg, ts))
                if not known:
                    exchange.channels.send_initial(self._sub, kind, target)
            else:
                fanout.unsubscribe(self._sub, kind, target, account_id=account)
                self._send(msg.subscription_success(op, tag, arg, ts))
        return None

    # --- order commands ---------------------------------------------------------------------

    def _batch(self, request: Mapping[str, Any], tag: str | None) -> None:
        items = request.get("dataArray")
        if not isinstance(items, list) or not items:
            return self._refuse(request, "20002")
        op = _BATCH_OF[request["op"]]
        run = {"placeorder": self._place, "cancelorder": self._cancel, "modifyorder": self._modify}
        for item in items:
            run[op](item, tag)
        return None

    def _gate(self, event: str, tag: str | None, data: Any, *, order: bool) -> ApiKey | None:
        """The checks every order command passes first; replies and returns None on failure."""
        key = self.key
        if key is None:
            self._fail(event, tag, "20026", _message("20026"), data)
            return None
        if not key.can_trade:
            self._fail(event, tag, "05001", _message("05001"), data)
            return None
        exchange = self._exchange
        if order and not exchange.allow_orders(key.account_id, self._now()):
            self._fail(event, tag, "20007", _message("20007"), data)
            return None
        injected = exchange.faults.take_failure(event)
        if injected is not None:
            self._fail(event, tag, injected.code, injected.message, data)
            return None
        return key

    def _rejected(self, event: str, tag: str | None, data: Any, rejection: Rejection) -> None:
        self._fail(event, tag, rejection.code, rejection.message, data)
        status = rejection.rejected_status
        account = self.account_id
        if status is None or account is None:
            return
        exchange = self._exchange
        market = data.get("marketCode") if isinstance(data, Mapping) else None
        market = market if isinstance(market, str) else ""
        if exchange.fanout.private(account, "order"):
            entry = msg.order_rejected(
                status, exchange.now_ms(), account_id=account, fields=rejection.rejected_fields
            )
            frame = Frame(msg.dumps(msg.table("order", [entry])))
            exchange.fanout.send_private(account, "order", market, frame)

    def _place(self, data: Any, tag: str | None) -> None:
        event = "placeorder"
        key = self._gate(event, tag, data, order=True)
        if key is None:
            return
        exchange = self._exchange
        parsed = parse_place(data, exchange.markets, exchange.now_ms())
        if isinstance(parsed, Rejection):
            self._rejected(event, tag, data, parsed)
            return
        try:
            order = exchange.engine.place(
                key.account_id,
                market_code=parsed.market_code,
                side=parsed.side,
                order_type=parsed.order_type,
                quantity=parsed.quantity,
                price=parsed.price,
                stop_price=parsed.stop_price,
                limit_price=parsed.limit_price,
                time_in_force=parsed.time_in_force,
                client_order_id=parsed.client_order_id,
            )
        except EngineReject as exc:
            self._fail(event, tag, exc.code, exc.message, data)
            exchange.flush()
            return
        exchange.remember_stop_spelling(order.order_id, parsed.type_name)
        reply = echo(data, _PLACE_ECHO)
        reply["orderId"] = str(order.order_id)
        reply["source"] = 0
        self._send(msg.command_success(event, tag, exchange.now_ms(), reply))
        exchange.flush()

    def _cancel(self, data: Any, tag: str | None) -> None:
        event = "cancelorder"
        key = self._gate(event, tag, data, order=False)
        if key is None:
            return
        exchange = self._exchange
        parsed = parse_cancel(data, exchange.markets)
        if isinstance(parsed, Rejection):
            self._rejected(event, tag, data, parsed)
            return
        account = key.account_id
        market = parsed.market_code
        order_id = parsed.order_id
        if order_id is None:
            assert parsed.client_order_id is not None
            found = exchange.engine.find_order(account, market, parsed.client_order_id)
            if found is None:
                self._fail(event, tag, "100005", _message("100005"), data)
                return
            order_id = found.order_id
        try:
            order = exchange.engine.cancel(account, market, order_id)
        except EngineReject as exc:
            finished = (
                exchange.finished_order(account, market, order_id) if exc.code == "100005" else None
            )
            if finished is None:
                self._fail(event, tag, exc.code, exc.message, data)
            else:
                reply = {"marketCode": market}
                if finished.client_order_id is not None:
                    reply["clientOrderId"] = str(finished.client_order_id)
                reply["orderId"] = str(order_id)
                self._send(msg.command_success(event, tag, exchange.now_ms(), reply))
                self._failure_notice("CANCEL", finished, None)
            exchange.flush()
            return
        reply = {"marketCode": market}
        if order.client_order_id is not None:
            reply["clientOrderId"] = str(order.client_order_id)
        reply["orderId"] = str(order.order_id)
        self._send(msg.command_success(event, tag, exchange.now_ms(), reply))
        exchange.flush()

    def _modify(self, data: Any, tag: str | None) -> None:
        event = "modifyorder"
        key = self._gate(event, tag, data, order=True)
        if key is None:
            return
        exchange = self._exchange
        parsed = parse_modify(data, exchange.markets, exchange.now_ms())
        if isinstance(parsed, Rejection):
            self._rejected(event, tag, data, parsed)
            return
        account = key.account_id
        try:
            order = exchange.engine.modify(
                account,
                parsed.market_code,
                parsed.order_id,
                side=parsed.side,
                price=parsed.price,
                quantity=parsed.quantity,
            )
        except EngineReject as exc:
            finished = (
                exchange.finished_order(account, parsed.market_code, parsed.order_id)
                if exc.code == "100005"
                else None
            )
            if finished is None:
                self._fail(event, tag, exc.code, exc.message, data)
            else:
                reply = self._modify_reply(parsed.order_id, finished, parsed.market_code)
                if parsed.side is not None:
                    reply["side"] = parsed.side.value
                if parsed.quantity is not None:
                    reply["quantity"] = msg.dec(parsed.quantity)
                if parsed.price is not None:
                    reply["price"] = msg.dec(parsed.price)
                self._send(msg.command_success(event, tag, exchange.now_ms(), reply))
                self._failure_notice("AMEND", finished, parsed)
            exchange.flush()
            return
        reply = self._modify_reply(parsed.order_id, order, parsed.market_code)
        self._send(msg.command_success(event, tag, exchange.now_ms(), reply))
        exchange.flush()

    def _modify_reply(self, order_id: int, order: Order, market: str) -> dict[str, Any]:
        reply: dict[str, Any] = {"orderId": str(order_id), "side": order.side.value}
        reply["quantity"] = msg.dec(order.quantity)
        price = order.price if order.price is not None else order.limit_price
        if price is not None:
            reply["price"] = msg.dec(price)
        reply["orderType"] = msg.type_name(
            order.order_type, self._exchange.stop_spelling(order.order_id)
        )
        reply["marketCode"] = market
        return reply

    def _failure_notice(self, event: str, order: Order, modify: ModifyCommand | None) -> None:
        """Push the CANCEL/AMEND failure notice for an order that is no longer open."""
        exchange = self._exchange
        account = order.account_id
        if not exchange.fanout.private(account, "order"):
            return
        status = (
            OrderStatus.REJECT_CANCEL_ORDER_ID_NOT_FOUND
            if event == "CANCEL"
            else OrderStatus.REJECT_AMEND_ORDER_ID_NOT_FOUND
        )
        price = quantity = None
        if modify is not None:
            price = modify.price if modify.price is not None else order.price
            quantity = modify.quantity if modify.quantity is not None else order.quantity
        notice = msg.failure_notice(
            event,
            status.value,
            exchange.now_ms(),
            order_id=order.order_id,
            market_code=order.market_code,
            client_order_id=order.client_order_id,
            side=order.side.value,
            order_type=msg.type_name(order.order_type),
            time_in_force=order.time_in_force.value,
            price=price,
            quantity=quantity,
        )
        exchange.fanout.send_private(account, "order", order.market_code, Frame(msg.dumps(notice)))
