"""Reconciliation rules: what a request of unknown outcome did, decided from REST data.

Pure functions over the records the outbox fetched (``GET /v2/orders``, ``GET /v2.1/orders``,
``GET /v2/trades/{marketCode}``); :mod:`flexconn.outbox` does the fetching. ``final`` says the
socket that carried the request is gone, so a request the exchange shows no trace of can no
longer take effect: it was not applied. On a live socket the same absence only means the outcome
is not known yet.
"""

from __future__ import annotations

from collections.abc import Sequence

from flexconn._outbox_types import (
    AckSource,
    CancelAck,
    ModifyAck,
    Outcome,
    PlaceAck,
    Ticket,
    same,
)
from flexconn.errors import OrderNotApplied, OrderOutcomeUnknown
from flexconn.models.orders import CancelOrder, LimitOrder, MarketOrder, ModifyOrder, StopLimitOrder
from flexconn.models.rest import AccountTrade, OrderRecord, OrderRecordStatus
from flexconn.models.rest import OpenOrder as RestOpenOrder

__all__ = ["cancel_outcome", "modify_outcome", "place_outcome"]


def place_outcome(
    ticket: Ticket,
    *,
    open_orders: Sequence[RestOpenOrder] = (),
    records: Sequence[OrderRecord] = (),
    trades: Sequence[AccountTrade] = (),
) -> PlaceAck | None:
    """The placement REST data proves (open, filled or closed), or ``None`` if none shows it.

    Matches the ticket's client order id in the same market; the lowest order id is the
    placement itself (a modify's replacement keeps the client order id).
    """
    request = ticket.request
    assert isinstance(request, LimitOrder | MarketOrder | StopLimitOrder)
    cid = request.client_order_id
    market = request.market_code
    ids = [o.order_id for o in open_orders if o.client_order_id == cid and o.market_code == market]
    ids += [r.order_id for r in records if r.client_order_id == cid and r.market_code == market]
    ids += [t.order_id for t in trades if t.client_order_id == cid and t.market_code == market]
    if not ids:
        return None
    return PlaceAck(order=request, order_id=min(ids), source=AckSource.REST)


def cancel_outcome(
    ticket: Ticket,
    *,
    open_orders: Sequence[RestOpenOrder],
    records: Sequence[OrderRecord],
    final: bool,
) -> Outcome:
    """What a cancel of unknown outcome did, from the open orders and the order's records.

    Args:
        final: the socket that carried it is gone, so it can no longer take effect later.
    """
    request = ticket.request
    assert isinstance(request, CancelOrder)
    order_id = request.order_id
    if any(o.order_id == order_id for o in open_orders):
        if final:
            return OrderNotApplied(f"order {order_id} is still open: not cancelled", sent=True)
        return OrderOutcomeUnknown(f"no reply to the cancel of {order_id}; the order is open")
    mine = [r for r in records if r.order_id == order_id]
    if any(r.status in (OrderRecordStatus.CLOSED, OrderRecordStatus.MATCHED) for r in mine):
        return CancelAck(
            order=request,
            client_order_id=mine[0].client_order_id,
            source=AckSource.REST,
        )
    if final:
        return OrderNotApplied(f"the exchange knows no order {order_id} to cancel", sent=True)
    return OrderOutcomeUnknown(f"no reply to the cancel of {order_id}, and no record of it")


def modify_outcome(
    ticket: Ticket,
    *,
    open_orders: Sequence[RestOpenOrder],
    records: Sequence[OrderRecord],
    final: bool,
) -> Outcome:
    """What a modify of unknown outcome did.

    ``records`` are the v2.1 records of the order and of its client order id: an open order
    with the same client order id and a higher order id in the same market is the replacement a
    queue-changing modify opened; the order still open with the requested side, price and
    quantity is an in-place modify.
    """
    request = ticket.request
    assert isinstance(request, ModifyOrder)
    order_id = request.order_id
    current = next((o for o in open_orders if o.order_id == order_id), None)
    if current is not None:
        if (
            same(request.side, current.side)
            and same(request.price, current.price)
            and same(request.quantity, current.remaining_quantity)
        ):
            return ModifyAck(order=request, source=AckSource.REST)
        if final:
            return OrderNotApplied(f"order {order_id} is unchanged: not modified", sent=True)
        return OrderOutcomeUnknown(f"no reply to the modify of {order_id}; it is unchanged")
    own = next((r for r in records if r.order_id == order_id), None)
    if own is not None and own.status is OrderRecordStatus.CLOSED:
        successors = [
            r.order_id
            for r in records
            if r.order_id > order_id
            and r.market_code == own.market_code
            and r.client_order_id == own.client_order_id
            and r.client_order_id is not None
        ]
        if successors:
            return ModifyAck(order=request, replaced_by=min(successors), source=AckSource.REST)
    if final:
        return OrderNotApplied(f"order {order_id} is no longer open: not modified", sent=True)
    return OrderOutcomeUnknown(f"no reply to the modify of {order_id}, and no trace of it")
