"""The private ``order`` channel and the order notices that arrive as events.

An ``order`` frame carries one or more notices, told apart by their ``notice`` field:
:class:`OrderOpened`, :class:`OrderModified`, :class:`OrderClosed`, :class:`OrderRejected` and
:class:`OrderMatched`. The later API adds two notices that arrive as events rather than channel
frames: :class:`OrderFailureNotice` (``event`` ``CANCEL``/``AMEND`` with ``data``: a cancel or
amend that came too late) and :class:`CancelAllNotice` (``event`` ``CANCEL`` without ``data``: a
REST cancel-all went through). Both are routed to the order channel.

Field spellings seen in the documents are all accepted: ``clientOrderID``, ``matchID`` and
``ordertype`` beside the camelCase names, ``STOP_LIMIT``/``STOP LIMIT`` for ``STOP``, booleans
as ``"False"``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeAlias

import attrs

from flexconn._codec import converter, decimals_as_strings, ms_to_datetime, wire
from flexconn.models.base import ChannelUpdate
from flexconn.models.enums import MatchType, OrderStatus, OrderType, Side, TimeInForce
from flexconn.models.replies import OrderAction

__all__ = [
    "CancelAllNotice",
    "FailedOrder",
    "OrderClosed",
    "OrderEvent",
    "OrderFailureNotice",
    "OrderMatched",
    "OrderModified",
    "OrderOpened",
    "OrderRejected",
    "OrderUpdate",
]

_CLIENT_ORDER_ID = wire(aliases=("clientOrderID",))
_ORDER_TYPE = wire(aliases=("ordertype",))


class _Timed:
    __slots__ = ()
    timestamp: int

    @property
    def time(self) -> datetime:
        """``timestamp`` as an aware UTC datetime."""
        return ms_to_datetime(self.timestamp)


@attrs.frozen(kw_only=True)
class _OrderBody(_Timed):
    """The body every notice about a known order carries (opened, modified, closed, matched).

    A notice class adds its own fields after these and its ``notice`` constant; the structure
    functions and the fast decoder read the fields from ``attrs.fields``, inherited ones included.
    """

    account_id: str | None = None
    market_code: str
    order_id: int
    client_order_id: int | None = attrs.field(default=None, metadata=_CLIENT_ORDER_ID)
    order_type: OrderType = attrs.field(metadata=_ORDER_TYPE)
    side: Side
    quantity: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    limit_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    status: OrderStatus
    timestamp: int
    is_triggered: bool | None = None


@decimals_as_strings
@attrs.frozen(kw_only=True)
class OrderOpened(_OrderBody):
    """An order is now working (also the replacement after a queue-changing modify)."""

    notice: str = attrs.field(default="OrderOpened", init=False)


@decimals_as_strings
@attrs.frozen(kw_only=True)
class OrderModified(_OrderBody):
    """An order's quantity was reduced in place (same order id, same queue position)."""

    notice: str = attrs.field(default="OrderModified", init=False)


@decimals_as_strings
@attrs.frozen(kw_only=True)
class OrderClosed(_OrderBody):
    """An order left the book without (further) fills; ``status`` says why."""

    remain_quantity: Decimal | None = None
    notice: str = attrs.field(default="OrderClosed", init=False)


@decimals_as_strings
@attrs.frozen(kw_only=True)
class OrderRejected(_Timed):
    """The engine refused an order, cancel or modify; often without market or order id."""

    account_id: str | None = None
    market_code: str | None = None
    order_id: int | None = None
    client_order_id: int | None = attrs.field(default=None, metadata=_CLIENT_ORDER_ID)
    order_type: OrderType | None = attrs.field(default=None, metadata=_ORDER_TYPE)
    side: Side | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    limit_price: Decimal | None = None
    status: OrderStatus
    timestamp: int
    notice: str = attrs.field(default="OrderRejected", init=False)


@decimals_as_strings
@attrs.frozen(kw_only=True)
class OrderMatched(_OrderBody):
    """An order traded ``match_quantity`` at ``match_price`` (one notice per match)."""

    match_id: int = attrs.field(metadata=wire(aliases=("matchID",)))
    match_price: Decimal
    match_quantity: Decimal
    order_match_type: MatchType
    remain_quantity: Decimal
    fees: Decimal
    fee_instrument_id: str
    notice: str = attrs.field(default="OrderMatched", init=False)


#: One item of an ``order`` frame.
OrderEvent: TypeAlias = OrderOpened | OrderModified | OrderClosed | OrderRejected | OrderMatched

_BY_NOTICE: dict[str, type[OrderEvent]] = {
    "OrderOpened": OrderOpened,
    "OrderModified": OrderModified,
    "OrderClosed": OrderClosed,
    "OrderRejected": OrderRejected,
    "OrderMatched": OrderMatched,
}


_HOOKS: dict[str, tuple[type[OrderEvent], Any]] = {}


def _structure_order_event(obj: Any, _: object) -> OrderEvent:
    notice = obj["notice"]
    entry = _HOOKS.get(notice)
    if entry is None:
        cls = _BY_NOTICE.get(notice)
        if cls is None:
            raise ValueError(f"unknown order notice {notice!r}")
        entry = _HOOKS[notice] = (cls, converter.get_structure_hook(cls))
    cls, hook = entry
    result: OrderEvent = hook(obj, cls)
    return result


converter.register_structure_hook_func(lambda tp: tp == OrderEvent, _structure_order_event)


@attrs.frozen(kw_only=True)
class OrderUpdate(ChannelUpdate[OrderEvent]):
    """An ``order`` channel frame; notices without a market code route to ``order:all``."""

    WILDCARD: ClassVar[bool] = True

    data: tuple[OrderEvent, ...]
    table: str = attrs.field(default="order", init=False)

    @property
    def channel(self) -> str:
        return "order"

    def selector(self, item: OrderEvent) -> str:
        return item.market_code or "all"


@attrs.frozen(kw_only=True)
class FailedOrder:
    """The order state a failure notice reports (engine field names, all optional)."""

    client_order_id: int | None = attrs.field(default=None, metadata=_CLIENT_ORDER_ID)
    order_id: int | None = attrs.field(default=None, metadata=wire(aliases=("orderID",)))
    market_code: str | None = None
    side: Side | None = None
    order_type: OrderType | None = attrs.field(default=None, metadata=_ORDER_TYPE)
    price: Decimal | None = None
    quantity: Decimal | None = None
    display_quantity: Decimal | None = None
    remain_quantity: Decimal | None = None
    last_match_price: Decimal | None = None
    last_match_quantity: Decimal | None = None
    last_matched_order_id: int | None = None
    last_matched_order_id2: int | None = None
    matched_id: int | None = None
    matched_type: MatchType | None = None
    status: OrderStatus | None = None
    #: The engine's name for time in force.
    time_condition: TimeInForce | None = None
    timestamp_epoch_ms: int | None = None
    is_triggered: bool | None = None


@attrs.frozen(kw_only=True)
class OrderFailureNotice:
    """A cancel (``event`` ``CANCEL``) or modify (``AMEND``) the engine could not apply.

    Typically the order had already filled or been cancelled; ``data.status`` says which rule
    (``REJECT_CANCEL_ORDER_ID_NOT_FOUND``...). Routed to ``order:<marketCode>``.
    """

    event: str
    submitted: bool = False
    code: str | None = None
    message: str | None = None
    timestamp: int | None = None
    data: FailedOrder

    @property
    def action(self) -> OrderAction:
        """``CANCEL`` for a failed cancel, ``MODIFY`` for a failed amend."""
        return OrderAction.CANCEL if self.event.upper() == "CANCEL" else OrderAction.MODIFY

    @property
    def market_code(self) -> str | None:
        return self.data.market_code


@attrs.frozen(kw_only=True)
class CancelAllNotice:
    """``event`` ``CANCEL`` without data: a cancel-all (REST or GUI) was carried out.

    Routed to ``order:all``.
    """

    submitted: bool
    timestamp: int | None = None
    code: str | None = None
    message: str | None = None
    event: str = attrs.field(default="CANCEL", init=False)
