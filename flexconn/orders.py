"""The account's open orders, kept from the private ``order`` channel (sans-IO).

Design note. :class:`OpenOrders` is a read-only mapping ``order_id -> WorkingOrder`` that the
connection feeds with every order notice it reads. Each notice carries an order's whole state, so
applying one is an overwrite (or a removal) and applying the same notices again in order gives the
same result. That makes seeding safe without a lock-step protocol:

1. :meth:`OpenOrders.begin_sync` (before subscribing to ``order:all``) starts holding notices back;
2. the connection fetches ``GET /v2/orders`` (a snapshot taken at some moment after the
   subscription);
3. :meth:`OpenOrders.finish_sync` replaces the state by the snapshot and replays every held notice
   in order. A notice older than the snapshot rewrites an order to a state the newer notices that
   follow it then correct, so the result is the state after the last notice.

A modify that changes price, side or raises the quantity closes the order
(``CANCELED_BY_AMEND``) and opens a replacement with a new order id (and the same client order
id): :meth:`OpenOrders.successor` follows that chain. Nothing here awaits or reads a clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Final

import attrs

from flexconn.models.enums import OrderStatus, OrderType, Side, TimeInForce
from flexconn.models.notices import (
    CancelAllNotice,
    OrderClosed,
    OrderEvent,
    OrderFailureNotice,
    OrderMatched,
    OrderModified,
    OrderOpened,
    OrderRejected,
    OrderUpdate,
)
from flexconn.models.rest import OpenOrder as RestOpenOrder

__all__ = ["OpenOrders", "WorkingOrder"]

#: How many replaced order ids :meth:`OpenOrders.successor` remembers.
_SUCCESSORS_KEPT: Final = 10_000
_ZERO: Final = Decimal(0)


@attrs.frozen(kw_only=True)
class WorkingOrder:
    """One open order of the account, as the order channel (or ``GET /v2/orders``) last told.

    Attributes:
        quantity: the order's size (a quantity-reducing modify lowers it).
        remaining_quantity: what is still open (``quantity`` minus fills).
        price: the limit price (``None`` for a stop order that has not triggered).
        triggered: for stop orders, whether the stop condition has fired.
        timestamp: the exchange's millisecond timestamp of the last change.
    """

    order_id: int
    client_order_id: int | None
    market_code: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    remaining_quantity: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    limit_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    status: OrderStatus = OrderStatus.OPEN
    triggered: bool | None = None
    timestamp: int = 0

    @property
    def filled_quantity(self) -> Decimal:
        return self.quantity - self.remaining_quantity


def _from_notice(
    event: OrderOpened | OrderModified | OrderMatched,
    remaining: Decimal,
    status: OrderStatus,
) -> WorkingOrder:
    return WorkingOrder(
        order_id=event.order_id,
        client_order_id=event.client_order_id,
        market_code=event.market_code,
        side=event.side,
        order_type=event.order_type,
        quantity=event.quantity,
        remaining_quantity=remaining,
        price=event.price,
        stop_price=event.stop_price,
        limit_price=event.limit_price,
        time_in_force=event.time_in_force,
        status=status,
        triggered=event.is_triggered,
        timestamp=event.timestamp,
    )


def _from_rest(order: RestOpenOrder) -> WorkingOrder:
    filled = order.quantity - order.remaining_quantity
    return WorkingOrder(
        order_id=order.order_id,
        client_order_id=order.client_order_id,
        market_code=order.market_code,
        side=order.side,
        order_type=order.order_type,
        quantity=order.quantity,
        remaining_quantity=order.remaining_quantity,
        price=order.price,
        stop_price=order.stop_price,
        limit_price=order.limit_price,
        time_in_force=order.time_in_force,
        status=OrderStatus.PARTIAL_FILL if filled > 0 else OrderStatus.OPEN,
        timestamp=order.last_modified or order.order_created,
    )


class OpenOrders(Mapping[int, WorkingOrder]):
    """The live set of the account's open orders, by order id (see the module notes).

    ``synced`` is true once the set has been seeded from REST since the connection last
    (re)connected; without a REST client it only holds orders whose notices arrived while
    connected, so it may miss orders opened before (or during a drop) and keep ones closed
    meanwhile.
    """

    def __init__(self) -> None:
        self._orders: dict[int, WorkingOrder] = {}
        self._held: list[object] | None = None
        self._successors: OrderedDict[int, int] = OrderedDict()
        # The order a CANCELED_BY_AMEND just closed, waiting for its replacement's OrderOpened.
        self._amended: OrderClosed | None = None
        self.synced = False
        #: Bumped by every change, so a reader can tell the set moved.
        self.version = 0
        #: Set by a cancel-all notice: the set should be re-seeded from REST.
        self.resync_wanted = False

    # -- the Mapping ---------------------------------------------------------------------------

    def __getitem__(self, order_id: int) -> WorkingOrder:
        return self._orders[order_id]

    def __iter__(self) -> Iterator[int]:
        return iter(self._orders)

    def __len__(self) -> int:
        return len(self._orders)

    def __repr__(self) -> str:
        return f"<OpenOrders {len(self._orders)} open synced={self.synced}>"

    # -- queries -------------------------------------------------------------------------------

    def by_client_order_id(self, client_order_id: int) -> WorkingOrder | None:
        """The newest open order carrying ``client_order_id`` (a replacement keeps it)."""
        found: WorkingOrder | None = None
        for order in self._orders.values():
            if order.client_order_id == client_order_id and (
                found is None or order.order_id > found.order_id
            ):
                found = order
        return found

    def successor(self, order_id: int) -> int:
        """The id ``order_id`` lives on as after queue-changing modifies (itself if none)."""
        seen = {order_id}
        while order_id in self._successors:
            order_id = self._successors[order_id]
            if order_id in seen:
                break
            seen.add(order_id)
        return order_id

    # -- feeding -------------------------------------------------------------------------------

    def begin_sync(self) -> None:
        """Hold notices back until :meth:`finish_sync` or :meth:`abort_sync`."""
        self._held = []
        self.synced = False

    def finish_sync(self, snapshot: Iterable[RestOpenOrder]) -> None:
        """Replace the set by ``snapshot`` (``GET /v2/orders``), then replay held notices."""
        held, self._held = self._held or [], None
        previous = self._orders
        self._orders = {order.order_id: _from_rest(order) for order in snapshot}
        self._infer_successors(previous)
        self._amended = None
        self.resync_wanted = False
        for message in held:
            self._apply(message)
        self.synced = True
        self.version += 1

    def _infer_successors(self, previous: Mapping[int, WorkingOrder]) -> None:
        # An order that vanished while a newer one with its client order id appeared was
        # replaced by a modify whose notices were missed (client order ids are unique per
        # placement; a replacement keeps its order's).
        fresh: dict[tuple[str, int], int] = {}
        for order in self._orders.values():
            cid = order.client_order_id
            if cid is not None and order.order_id not in previous:
                key = (order.market_code, cid)
                fresh[key] = max(fresh.get(key, 0), order.order_id)
        for order in previous.values():
            cid = order.client_order_id
            if cid is None or order.order_id in self._orders:
                continue
            newer = fresh.get((order.market_code, cid))
            if newer is not None and newer > order.order_id:
                self._remember_successor(order.order_id, newer)

    def record_successor(self, old: int, new: int) -> None:
        """Note that order ``old`` was replaced by ``new`` (a reconciled modify learnt it)."""
        if old != new:
            self._remember_successor(old, new)

    def abort_sync(self) -> None:
        """No snapshot could be had: apply the held notices to the old set, marked unsynced."""
        held, self._held = self._held or [], None
        for message in held:
            self._apply(message)
        self.synced = False
        self.version += 1

    def apply(self, message: object) -> None:
        """Take one order-channel message (:class:`OrderUpdate`, a failure or cancel-all notice)."""
        if self._held is not None:
            self._held.append(message)
            return
        self._apply(message)

    def _apply(self, message: object) -> None:
        if isinstance(message, OrderUpdate):
            for event in message.data:
                self._event(event)
            self.version += 1
        elif isinstance(message, OrderFailureNotice):
            # The cancel or amend came too late: the order is not open (any more).
            order_id = message.data.order_id
            if order_id is not None and self._orders.pop(order_id, None) is not None:
                self.version += 1
        elif isinstance(message, CancelAllNotice):
            self.resync_wanted = True

    def _event(self, event: OrderEvent) -> None:
        orders = self._orders
        if isinstance(event, OrderOpened):
            amended = self._amended
            self._amended = None
            if (
                amended is not None
                and amended.market_code == event.market_code
                and amended.client_order_id == event.client_order_id
                and event.order_id != amended.order_id
            ):
                self._remember_successor(amended.order_id, event.order_id)
            orders[event.order_id] = _from_notice(event, event.quantity, event.status)
        elif isinstance(event, OrderModified):
            previous = orders.get(event.order_id)
            filled = previous.filled_quantity if previous is not None else _ZERO
            orders[event.order_id] = _from_notice(
                event, max(event.quantity - filled, _ZERO), event.status
            )
        elif isinstance(event, OrderMatched):
            if event.status is OrderStatus.FILLED or event.remain_quantity <= 0:
                orders.pop(event.order_id, None)
            else:
                orders[event.order_id] = _from_notice(
                    event, event.remain_quantity, OrderStatus.PARTIAL_FILL
                )
        elif isinstance(event, OrderClosed):
            orders.pop(event.order_id, None)
            self._amended = event if event.status is OrderStatus.CANCELED_BY_AMEND else None
        elif isinstance(event, OrderRejected):
            # A refused command changes no open order.
            return

    def _remember_successor(self, old: int, new: int) -> None:
        self._successors[old] = new
        if len(self._successors) > _SUCCESSORS_KEPT:
            self._successors.popitem(last=False)
