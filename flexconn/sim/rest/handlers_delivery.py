"""Private REST handlers for physical delivery, over the exchange's delivery requests."""

from __future__ import annotations

from decimal import Decimal

from flexconn.models import rest as m
from flexconn.sim.delivery import PENDING, next_auction
from flexconn.sim.exchange import SimExchange
from flexconn.sim.rest.request import (
    Reject,
    Request,
    decimal_param,
    json_body,
    lookup_perpetual,
    window,
)

__all__ = ["cancel_delivery", "deliver_auction", "delivery_orders", "submit_delivery"]


def delivery_orders(exchange: SimExchange, request: Request, now: int) -> object:
    limit, start, end = window(request.query, m.DELIVERY_ORDERS_PAGE, now)
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
        for d in exchange.deliveries
        if d.account_id == account and start <= d.last_updated <= end
    ]
    return m.DeliveryOrdersReply(timestamp=now, data=tuple(picked[-limit:]))


def submit_delivery(exchange: SimExchange, request: Request, now: int) -> object:
    body = json_body(request)
    code = body.get("instrumentId")
    if not isinstance(code, str):
        raise Reject(400, "20011", "marketCode is required")
    lookup_perpetual(exchange, code)
    quantity = decimal_param(body.get("qtyDeliver"), "qtyDeliver")
    d = exchange.deliveries.submit(request.account_id, code, quantity, now)
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


def cancel_delivery(exchange: SimExchange, request: Request, now: int) -> object:
    (text,) = request.params
    ok = text.isdigit() and exchange.deliveries.cancel(request.account_id, int(text), now)
    message = m.DELIVERY_CANCEL_OK if ok else m.DELIVERY_CANCEL_FAILED
    return m.DeliveryCancelReply(timestamp=now, account_id=request.account_id, data=(message,))


def deliver_auction(exchange: SimExchange, request: Request, now: int) -> object:
    only = request.params[0] if request.params else None
    if only is not None:
        lookup_perpetual(exchange, only)
    funding = exchange.funding
    data = []
    for spec in exchange.markets.values():
        if not spec.is_perpetual or (only is not None and spec.market_code != only):
            continue
        latest = funding.latest(now, spec.market_code)
        data.append(
            m.DeliverAuction(
                instrument_id=spec.market_code,
                auction_time=next_auction(now),
                net_deliver=exchange.deliveries.net_pending(spec.market_code),
                est_funding_rate=latest.rate if latest else Decimal(0),
            )
        )
    return m.DeliverAuctionReply(timestamp=now, data=tuple(data))
