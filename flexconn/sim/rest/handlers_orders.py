"""Private REST handlers that trade: place, modify, cancel (each order of a batch on its own) and
cancel-all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import attrs

from flexconn.models import rest as m
from flexconn.models.enums import OrderNotice, TimeInForce
from flexconn.protocol.codec import converter
from flexconn.sim.exchange import SimExchange
from flexconn.sim.orders import EngineReject, Order
from flexconn.sim.rest.request import INVALID, Reject, Request, invalid, json_body, lookup_market

__all__ = ["cancel", "cancel_all", "modify", "place"]

_CANCEL_ALL_MSG: Final = "All open orders for the account have been queued for cancellation"
_CANCEL_MARKET_MSG: Final = (
    "All open orders for the specified market have been queued for cancellation"
)


def cancel_all(exchange: SimExchange, request: Request, now: int) -> object:
    market = request.params[0] if request.params else None
    if market is not None:
        lookup_market(exchange, market)
    account = request.account_id
    exchange.engine.cancel_all(account, market)
    exchange.flush()
    exchange.broadcast_cancel_notice(account)
    ack = m.CancelAllAck(market_code=market, msg=_CANCEL_MARKET_MSG if market else _CANCEL_ALL_MSG)
    return m.CancelAllReply(timestamp=now, account_id=account, data=ack)


def _batch(exchange: SimExchange, request: Request) -> tuple[list[Any], m.ResponseType, bool]:
    body = json_body(request)
    try:
        response_type = m.ResponseType(str(body.get("responseType")))
    except ValueError:
        raise invalid("responseType must be FULL or ACK") from None
    orders = body.get("orders")
    if not isinstance(orders, list) or not 1 <= len(orders) <= m.MAX_ORDERS_PER_REQUEST:
        raise invalid(f"orders must list 1 to {m.MAX_ORDERS_PER_REQUEST} orders")
    expired = False
    sent = body.get("timestamp")
    if sent is not None:
        try:
            sent_ms = int(sent)
            window = int(body.get("recvWindow", 1000))
        except (TypeError, ValueError):
            raise invalid("timestamp and recvWindow must be integers") from None
        expired = exchange.now_ms() > sent_ms + window
    return orders, response_type, expired


def _decode_order(raw: object, cls: type[Any]) -> Any:
    try:
        return converter.structure(raw, cls)
    except Exception:
        return None


def _each_order(
    exchange: SimExchange,
    request: Request,
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
    raws, response_type, expired = _batch(exchange, request)
    stamp = exchange.now_ms
    results: list[m.OrderResult] = []
    for raw in raws:
        order = _decode_order(raw, cls)
        if order is None or not valid(order):
            results.append(_refusal(raw, *INVALID, stamp()))
            continue
        if expired:
            results.append(_refusal(raw, "20024", "timestamp exceeds the threshold", stamp()))
            continue
        try:
            done, notice = act(order)
        except Reject as reject:
            results.append(_refusal(raw, reject.code, reject.message, stamp()))
            continue
        except EngineReject as reject:
            results.append(_refusal(raw, *_rest_code(reject), stamp()))
            continue
        finally:
            exchange.flush()
        results.append(_accepted(exchange, done, response_type, notice))
    return m.OrderResultsReply(
        account_id=request.account_id, event=event, timestamp=now, data=tuple(results)
    )


def place(exchange: SimExchange, request: Request, now: int) -> object:
    engine = exchange.engine
    account = request.account_id

    def act(order: m.RestPlaceOrder) -> tuple[Order, OrderNotice]:
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

    return _each_order(exchange, request, now, m.RestPlaceOrder, "placeOrder", act)


def modify(exchange: SimExchange, request: Request, now: int) -> object:
    engine = exchange.engine
    account = request.account_id

    def act(order: m.RestModifyOrder) -> tuple[Order, OrderNotice]:
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
    return _each_order(
        exchange,
        request,
        now,
        m.RestModifyOrder,
        "modifyOrder",
        act,
        valid=lambda order: order.stop_price is None and order.limit_price is None,
    )


def cancel(exchange: SimExchange, request: Request, now: int) -> object:
    engine = exchange.engine
    account = request.account_id

    def act(order: m.RestCancelOrder) -> tuple[Order, OrderNotice]:
        order_id = order.order_id
        if order_id is None:
            assert order.client_order_id is not None  # checked by ``valid`` below
            lookup_market(exchange, order.market_code)
            found = engine.find_order(account, order.market_code, order.client_order_id)
            if found is None:
                raise EngineReject("100005")
            order_id = found.order_id
        return engine.cancel(account, order.market_code, order_id), OrderNotice.CLOSED

    return _each_order(
        exchange,
        request,
        now,
        m.RestCancelOrder,
        "cancelOrder",
        act,
        valid=lambda order: order.order_id is not None or order.client_order_id is not None,
    )


def _accepted(
    exchange: SimExchange, order: Order, response_type: m.ResponseType, notice: OrderNotice
) -> m.OrderResult:
    now = exchange.now_ms()
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
        trades = exchange.engine.account_trades(order.account_id, order.market_code)
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
