"""The engine's order snapshots, events and rejection error.

:class:`Order` is the frozen public view of an order at one moment; the engine keeps its own
mutable :class:`LiveOrder` (integer ticks and lots) and takes a snapshot whenever it reports one.
Events are what :meth:`flexconn.sim.engine.Engine.drain_events` hands the servers, in the order
things happened.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from flexconn.errors import ERROR_CODES
from flexconn.models.enums import MatchType, OrderStatus, OrderType, Side, TimeInForce
from flexconn.sim.markets import MarketSpec

__all__ = [
    "EngineEvent",
    "EngineReject",
    "LiveOrder",
    "Order",
    "OrderClosed",
    "OrderMatched",
    "OrderModified",
    "OrderOpened",
    "PublicTrade",
]

_ZERO = Decimal(0)
_AVG_QUANTUM = Decimal("1e-8")


class EngineReject(Exception):
    """The engine refused a command; ``code`` and ``message`` are the exchange's.

    Attributes:
        code: the exchange error code (``"710002"``, ``"20006"``, ``"100005"``...).
        message: an exchange-style message, with numbers embedded where the docs show them.
    """

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        self.message = message if message is not None else ERROR_CODES[code][0]
        super().__init__(f"[{code}] {self.message}")


@attrs.frozen(kw_only=True)
class Order:
    """An order as it stands at one moment (live, or just closed or filled).

    ``quantity`` is the order's current size (``filled`` plus ``remaining`` while it is open; a
    quantity-reducing modify lowers it). After a close ``remaining`` keeps the historical open
    quantity, as the exchange's ``remainQuantity`` does. ``price`` is ``None`` for MARKET orders
    and for STOP orders until they trigger, when it becomes their limit price.
    """

    order_id: int
    client_order_id: int | None
    account_id: str
    market_code: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    remaining: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    limit_price: Decimal | None
    status: OrderStatus
    timestamp: int
    triggered: bool
    created: int = 0
    filled: Decimal = _ZERO
    avg_fill_price: Decimal | None = None

    @property
    def is_open(self) -> bool:
        return self.status is OrderStatus.OPEN or self.status is OrderStatus.PARTIAL_FILL


@attrs.frozen(kw_only=True)
class OrderOpened:
    """An order entered the engine (every accepted order, takers included), or a STOP order
    triggered (then ``order.triggered`` is true), or a modify opened a replacement order."""

    order: Order


@attrs.frozen(kw_only=True)
class OrderModified:
    """A modify reduced an order's quantity in place; the order id and queue position stay."""

    order: Order


@attrs.frozen(kw_only=True)
class OrderClosed:
    """An order left the engine unfilled or partly filled; ``status`` says why.

    One of CANCELED_BY_USER, CANCELED_BY_MAKER_ONLY, CANCELED_BY_FOK, CANCELED_ALL_BY_IOC,
    CANCELED_PARTIAL_BY_IOC or CANCELED_BY_AMEND. A fully filled order gets no OrderClosed: its
    last OrderMatched has status FILLED.
    """

    order: Order
    status: OrderStatus


@attrs.frozen(kw_only=True)
class OrderMatched:
    """One side of one match; ``order`` is the state after the fill."""

    order: Order
    match_id: int
    match_price: Decimal
    match_quantity: Decimal
    match_type: MatchType
    fees: Decimal
    fee_instrument: str


@attrs.frozen(kw_only=True)
class PublicTrade:
    """A match as the public trade feed shows it; ``side`` is the taker's side and ``trade_id``
    equals the match id both sides' OrderMatched events carry."""

    trade_id: int
    market_code: str
    side: Side
    price: Decimal
    quantity: Decimal
    timestamp: int


EngineEvent = OrderOpened | OrderModified | OrderClosed | OrderMatched | PublicTrade


class LiveOrder:
    """The engine's mutable order record, in integer ticks and lots.

    ``resting`` belongs to the book (true while queued in it); ``open`` is true until the order
    fills or closes. ``reserved`` is what the order still holds of ``reserve_instrument``; it
    drops by ``reserve_per_lot`` per filled lot and to zero when the order closes. Whoever
    changes a field a snapshot shows calls :meth:`changed`.
    """

    __slots__ = (
        "account_id",
        "cached",
        "client_order_id",
        "created",
        "fill_units",
        "filled_lots",
        "is_buy",
        "limit_ticks",
        "open",
        "order_id",
        "order_type",
        "price_ticks",
        "qty_lots",
        "remaining_lots",
        "reserve_instrument",
        "reserve_per_lot",
        "reserved",
        "resting",
        "side",
        "spec",
        "status",
        "stop_ticks",
        "tif",
        "timestamp",
        "triggered",
    )

    def __init__(
        self,
        *,
        order_id: int,
        client_order_id: int | None,
        account_id: str,
        spec: MarketSpec,
        side: Side,
        order_type: OrderType,
        tif: TimeInForce,
        lots: int,
        price_ticks: int,
        stop_ticks: int | None,
        limit_ticks: int | None,
        now: int,
    ) -> None:
        self.order_id = order_id
        self.client_order_id = client_order_id
        self.account_id = account_id
        self.spec = spec
        self.side = side
        self.is_buy = side is Side.BUY
        self.order_type = order_type
        self.tif = tif
        self.qty_lots = lots
        self.remaining_lots = lots
        self.filled_lots = 0
        self.fill_units = 0
        # For MARKET orders price_ticks is the sweep limit (0 or a huge number), never shown.
        self.price_ticks = price_ticks
        self.stop_ticks = stop_ticks
        self.limit_ticks = limit_ticks
        self.triggered = False
        self.status = OrderStatus.OPEN
        self.timestamp = now
        self.created = now
        self.resting = False
        self.open = True
        self.reserve_instrument = ""
        self.reserve_per_lot = _ZERO
        self.reserved = _ZERO
        self.cached: Order | None = None

    def changed(self, now: int) -> None:
        """Note an update at ``now``: the next snapshot is rebuilt."""
        self.timestamp = now
        self.cached = None

    def snapshot(self) -> Order:
        """The public, frozen view of this order now (cached until :meth:`changed`)."""
        cached = self.cached
        if cached is None:
            cached = self.cached = self._build()
        return cached

    def _build(self) -> Order:
        spec = self.spec
        tick = spec.tick_size
        lot = spec.qty_increment
        filled = self.filled_lots
        return Order(
            order_id=self.order_id,
            client_order_id=self.client_order_id,
            account_id=self.account_id,
            market_code=spec.market_code,
            side=self.side,
            order_type=self.order_type,
            time_in_force=self.tif,
            quantity=self.qty_lots * lot,
            remaining=self.remaining_lots * lot,
            price=self.price_ticks * tick
            if self.order_type is OrderType.LIMIT or self.triggered
            else None,
            stop_price=None if self.stop_ticks is None else self.stop_ticks * tick,
            limit_price=None if self.limit_ticks is None else self.limit_ticks * tick,
            status=self.status,
            timestamp=self.timestamp,
            triggered=self.triggered,
            created=self.created,
            filled=filled * lot,
            avg_fill_price=self._avg_fill_price(),
        )

    def _avg_fill_price(self) -> Decimal | None:
        filled = self.filled_lots
        if not filled:
            return None
        whole, rest = divmod(self.fill_units, filled)
        if not rest:
            return whole * self.spec.tick_size
        return (self.fill_units * self.spec.tick_size / filled).quantize(_AVG_QUANTUM)
