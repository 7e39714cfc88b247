"""Reconciliation rules: what a request of unknown outcome did, decided from REST data.

Pure functions over the records the outbox fetched (``GET /v2/orders``, ``GET /v2.1/orders``,
``GET /v2/trades/{marketCode}``) and what the order channel said about closed orders;
:mod:`flexconn.outbox` does the fetching. Each returns an outcome, or :class:`KeepLooking` when
the data cannot decide yet (the outbox looks again, until ``reconcile_timeout``).

Absence is proof only for a request that carries a window: a place or modify whose
``timestamp + recvWindow`` had provably passed by the exchange's clock (``provable``: our clock
minus the skew margin, read *before* the lookup) can no longer take effect, so no trace means
not applied. A cancel carries no window: one the exchange has yet to read may still apply, so an
open order after its socket died leaves its outcome unknown, never "not applied". A request whose
reply said ``submitted: true`` was processed, so it is never "not applied" either.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from flexconn._outbox_core import ClosedOrder
from flexconn._outbox_types import (
    AckSource,
    CancelAck,
    ModifyAck,
    Outcome,
    PlaceAck,
    Ticket,
    same,
)
from flexconn.errors import OrderAlreadyClosed, OrderNotApplied, OrderOutcomeUnknown
from flexconn.models.enums import OrderStatus
from flexconn.models.orders import CancelOrder, LimitOrder, MarketOrder, ModifyOrder, StopLimitOrder
from flexconn.models.rest import AccountTrade, OrderRecord, OrderRecordStatus
from flexconn.models.rest import OpenOrder as RestOpenOrder

__all__ = [
    "KeepLooking",
    "Verdict",
    "cancel_outcome",
    "modify_outcome",
    "place_outcome",
    "place_verdict",
]

_OPEN_RECORDS = (OrderRecordStatus.OPENED, OrderRecordStatus.PARTIALLY_MATCHED)


@attrs.frozen
class KeepLooking:
    """The data cannot decide yet; ``reason`` says why (the eventual unknown outcome's text)."""

    reason: str


#: A rule's answer: the outcome, or look again later.
Verdict = Outcome | KeepLooking


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
    return PlaceAck(order=request, order_id=min(ids), source=AckSource.REST, reply=ticket.reply)


def place_verdict(ticket: Ticket, found: PlaceAck | None, *, provable: bool) -> Verdict:
    """A placement's outcome from what the lookup found (``provable``: see the module notes)."""
    if found is not None:
        return found
    cid = ticket.client_order_id
    if ticket.reply is not None:
        return KeepLooking(f"the exchange accepted clientOrderId {cid} but shows no order yet")
    if provable:
        return OrderNotApplied(
            f"no reply, and with its recvWindow closed the exchange has no order with "
            f"clientOrderId {cid}: it was not placed (and no longer can be)",
            sent=True,
        )
    return KeepLooking(f"no trace of clientOrderId {cid} while its recvWindow may be open")


def _successors(order: OrderRecord | None, records: Sequence[OrderRecord]) -> list[OrderRecord]:
    """Replacements of ``order`` a modify opened: same market and client order id, newer id."""
    if order is None or order.client_order_id is None:
        return []
    return sorted(
        (
            r
            for r in records
            if r.order_id > order.order_id
            and r.market_code == order.market_code
            and r.client_order_id == order.client_order_id
        ),
        key=lambda r: r.order_id,
    )


def _record(order_id: int, records: Sequence[OrderRecord]) -> OrderRecord | None:
    return next((r for r in records if r.order_id == order_id), None)


def _close_reason(record: OrderRecord | None, known: ClosedOrder | None) -> OrderStatus | None:
    if known is not None:
        return known.status
    if record is not None and record.status is OrderRecordStatus.MATCHED:
        return OrderStatus.FILLED
    return None


def _closed_at(record: OrderRecord | None, known: ClosedOrder | None) -> int | None:
    if known is not None:
        return known.timestamp
    return record.order_closed_timestamp if record is not None else None


def _already_closed(order_id: int, reason: OrderStatus | None, what: str) -> OrderAlreadyClosed:
    because = f" ({reason})" if reason is not None else ""
    return OrderAlreadyClosed(
        order_id, reason, f"order {order_id} was already closed{because}: the {what} did nothing"
    )


def cancel_outcome(
    ticket: Ticket,
    *,
    open_orders: Sequence[RestOpenOrder],
    records: Sequence[OrderRecord],
    final: bool,
    others: bool = False,
    known: ClosedOrder | None = None,
    margin_ms: int = 0,
) -> Verdict:
    """What a cancel of unknown outcome did.

    Args:
        open_orders: ``GET /v2/orders``.
        records: the v2.1 records of the order and of its client order id.
        final: the socket that carried it is gone (it can get no confirmation any more).
        others: another request of ours on the order is outstanding (its evidence could be
            this one's).
        known: what the order channel said about the order's close.
        margin_ms: the clock skew margin.
    """
    request = ticket.request
    assert isinstance(request, CancelOrder)
    order_id = request.order_id
    record = _record(order_id, records)
    still_open = any(o.order_id == order_id for o in open_orders) or (
        known is None and record is not None and record.status in _OPEN_RECORDS
    )
    if still_open:
        if final:
            return OrderOutcomeUnknown(
                f"the connection was lost with the cancel of {order_id} and the order is still "
                f"open: a cancel carries no recvWindow, so one the exchange has yet to read may "
                f"still apply"
            )
        return KeepLooking(f"no confirmation of the cancel of {order_id}; the order is open")
    if record is None and known is None:
        if ticket.reply is None and final:
            return OrderNotApplied(f"the exchange knows no order {order_id} to cancel", sent=True)
        return KeepLooking(f"no record of order {order_id} yet")
    reason = _close_reason(record, known)
    if _successors(record, records) and reason is None:
        reason = OrderStatus.CANCELED_BY_AMEND
    if reason in (OrderStatus.FILLED, OrderStatus.CANCELED_BY_AMEND):
        return _already_closed(order_id, reason, "cancel")
    if known is not None and known.claimed:
        return _already_closed(order_id, reason, "cancel")
    closed_at = _closed_at(record, known)
    if closed_at is not None and closed_at < ticket.sent_ms - margin_ms:
        return _already_closed(order_id, reason, "cancel")
    if reason is not None and reason is not OrderStatus.CANCELED_BY_USER:
        return _already_closed(order_id, reason, "cancel")
    if others:
        return KeepLooking(f"order {order_id} closed, and another request on it may have closed it")
    cid = record.client_order_id if record is not None else None
    return CancelAck(order=request, client_order_id=cid, source=AckSource.REST, reply=ticket.reply)


def _fits_record(request: ModifyOrder, record: OrderRecord) -> bool:
    return (
        same(request.side, record.side)
        and same(request.price, record.price)
        and same(request.quantity, record.quantity)
    )


def _modify_open(
    ticket: Ticket,
    request: ModifyOrder,
    current: RestOpenOrder,
    provable: bool,
    others: bool,
    margin_ms: int,
) -> Verdict:
    """A modify whose order is still open: no queue-changing modify applied to it (that closes
    the order); an in-place one left the requested open quantity and touched the order."""
    order_id = request.order_id
    keeps_queue = same(request.side, current.side) and same(request.price, current.price)
    touched = current.last_modified
    # Changed since it was written (not its placement, no fill: a modify did it).
    touched_since = (
        touched is not None
        and touched > current.order_created
        and touched >= ticket.sent_ms - margin_ms
        and current.quantity == current.remaining_quantity
    )
    matches = keeps_queue and same(request.quantity, current.remaining_quantity)
    if ticket.reply is not None or (matches and touched_since):
        # Processed with the order still open (accepted, or the order changed to the request
        # after it was written): it applied in place, unless another request could have.
        if others:
            return KeepLooking(f"order {order_id} changed; another request on it may have")
        return ModifyAck(order=request, source=AckSource.REST, reply=ticket.reply)
    if not provable:
        return KeepLooking(f"order {order_id} is unchanged while the recvWindow may be open")
    if not keeps_queue or (
        request.quantity is not None and current.remaining_quantity > request.quantity
    ):
        return OrderNotApplied(
            f"order {order_id} is unchanged and the modify's recvWindow has closed: not "
            f"modified (and no longer can be)",
            sent=True,
        )
    if matches and touched is not None and touched < ticket.sent_ms - margin_ms:
        return OrderNotApplied(
            f"order {order_id} was last changed before the modify was written and its "
            f"recvWindow has closed: not modified (and no longer can be)",
            sent=True,
        )
    return OrderOutcomeUnknown(
        f"order {order_id} is open with the requested quantity or less: modified and then "
        f"filled, or never modified"
    )


def modify_outcome(
    ticket: Ticket,
    *,
    open_orders: Sequence[RestOpenOrder],
    records: Sequence[OrderRecord],
    provable: bool,
    others: bool = False,
    known: ClosedOrder | None = None,
    margin_ms: int = 0,
) -> Verdict:
    """What a modify of unknown outcome did.

    While its order is open, no queue-changing modify can have applied to it (that closes the
    order), and an in-place one leaves the requested open quantity (fills only lower it) and
    moves the order's ``lastModified`` past the moment it was written. Once
    the order is closed by an amend, an open or closed record with its client order id and a
    higher order id is the replacement, which proves this modify only when no other request on
    the order is outstanding and it was not claimed by one already.

    Args:
        provable: the window was provably closed when the lookup began.
        others, known, margin_ms: as for :func:`cancel_outcome`.
    """
    request = ticket.request
    assert isinstance(request, ModifyOrder)
    order_id = request.order_id
    accepted = ticket.reply is not None
    current = next((o for o in open_orders if o.order_id == order_id), None)
    if current is not None:
        return _modify_open(ticket, request, current, provable, others, margin_ms)
    record = _record(order_id, records)
    if record is None and known is None:
        if provable and not accepted:
            return OrderNotApplied(
                f"the exchange has no order {order_id} and the modify's recvWindow has closed",
                sent=True,
            )
        return KeepLooking(f"no record of order {order_id} yet")
    if record is not None and record.status in _OPEN_RECORDS and known is None:
        return KeepLooking(f"order {order_id} is open by its record but not in the open orders")
    successors = _successors(record, records)
    reason = _close_reason(record, known)
    closed_at = _closed_at(record, known)
    sent_after = closed_at is not None and closed_at < ticket.sent_ms - margin_ms
    if reason is OrderStatus.CANCELED_BY_AMEND or (reason is None and successors):
        reason = OrderStatus.CANCELED_BY_AMEND
        if sent_after:
            return _already_closed(order_id, reason, "modify")
        if known is not None and known.claimed:
            # Another modify replaced it: this one found it closed, or changed it in place
            # just before.
            return KeepLooking(f"order {order_id} was replaced by another request")
        if others:
            return KeepLooking(f"order {order_id} was replaced; another request on it is pending")
        if successors and _fits_record(request, successors[0]):
            return ModifyAck(
                order=request,
                replaced_by=successors[0].order_id,
                source=AckSource.REST,
                reply=ticket.reply,
            )
        return KeepLooking(f"order {order_id} was replaced; no evidence it was by this modify")
    replacing = record is not None and not (
        same(request.side, record.side) and same(request.price, record.price)
    )
    if replacing or sent_after:
        # A modify that changes side or price closes the order as CANCELED_BY_AMEND: this one
        # closed otherwise, so the modify never applied (nor can it now).
        return _already_closed(order_id, reason, "modify")
    if reason is None:
        return KeepLooking(
            f"order {order_id} closed (reason unknown yet); the modify may have changed it in "
            f"place before"
        )
    # Closed for good, and how is known: no later lookup can tell more than this one.
    return OrderOutcomeUnknown(
        f"order {order_id} closed ({reason or 'reason unknown'}); the modify may have changed it "
        f"in place before, and the evidence that would tell was lost"
    )
