"""Order specs and the WebSocket requests (commands) a client sends.

The order specs (:class:`LimitOrder`, :class:`MarketOrder`, :class:`StopLimitOrder`,
:class:`CancelOrder`, :class:`ModifyOrder`) are what users build; the leading, always-needed fields
are positional, the options keyword-only. The ``*Request`` classes are the commands themselves,
one per ``op``; :func:`flexconn.protocol.encode` validates and serialises them, and
:func:`flexconn.sim.server_codec.decode_request` reads them back (the server's side).

The order specs carry the ``data`` object of a command; their ``order_type`` is a class constant
written as ``orderType`` by the encoder.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import ClassVar, TypeAlias

import attrs

from flexconn._codec import wire
from flexconn.models.enums import OrderType, Side, TimeInForce

__all__ = [
    "CancelOrder",
    "CancelOrderRequest",
    "CancelOrdersRequest",
    "LimitOrder",
    "LoginRequest",
    "MarketOrder",
    "ModifyOrder",
    "ModifyOrderRequest",
    "ModifyOrdersRequest",
    "OrderSpec",
    "Ping",
    "PlaceOrderRequest",
    "PlaceOrdersRequest",
    "Request",
    "StopLimitOrder",
    "SubscribeRequest",
    "Tag",
    "UnknownRequest",
    "UnsubscribeRequest",
]

#: A request ``tag``: the exchange accepts an integer or a string (at most 32 characters).
Tag: TypeAlias = str | int


@attrs.frozen
class LimitOrder:
    """A LIMIT order: rest at ``price`` (or better) under ``time_in_force``."""

    order_type: ClassVar[OrderType] = OrderType.LIMIT

    market_code: str
    side: Side
    quantity: Decimal
    price: Decimal
    time_in_force: TimeInForce = attrs.field(default=TimeInForce.GTC, kw_only=True)
    client_order_id: int | None = attrs.field(default=None, kw_only=True)
    #: Later API: reject when it reaches the engine after ``timestamp + recv_window`` (ms).
    timestamp: int | None = attrs.field(default=None, kw_only=True)
    recv_window: int | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class MarketOrder:
    """A MARKET order: take ``quantity`` at the best prices available."""

    order_type: ClassVar[OrderType] = OrderType.MARKET

    market_code: str
    side: Side
    quantity: Decimal
    client_order_id: int | None = attrs.field(default=None, kw_only=True)
    timestamp: int | None = attrs.field(default=None, kw_only=True)
    recv_window: int | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class StopLimitOrder:
    """A stop-limit order (wire ``orderType`` ``STOP``): a LIMIT at ``limit_price`` once the book
    trades through ``stop_price``. BUY needs ``limit_price >= stop_price``, SELL the opposite."""

    order_type: ClassVar[OrderType] = OrderType.STOP

    market_code: str
    side: Side
    quantity: Decimal
    stop_price: Decimal = attrs.field(kw_only=True)
    limit_price: Decimal = attrs.field(kw_only=True)
    time_in_force: TimeInForce = attrs.field(default=TimeInForce.GTC, kw_only=True)
    client_order_id: int | None = attrs.field(default=None, kw_only=True)
    timestamp: int | None = attrs.field(default=None, kw_only=True)
    recv_window: int | None = attrs.field(default=None, kw_only=True)


#: Any order a ``placeorder``/``placeorders`` command can carry.
OrderSpec: TypeAlias = LimitOrder | MarketOrder | StopLimitOrder


@attrs.frozen
class CancelOrder:
    """Cancel the open order ``order_id`` in ``market_code``."""

    market_code: str
    order_id: int = attrs.field(metadata=wire(aliases=("orderID",)))


@attrs.frozen
class ModifyOrder:
    """Change the side, price and/or quantity of the open LIMIT order ``order_id``.

    Reducing only the quantity keeps the order's queue position and id; any other change closes
    it (``CANCELED_BY_AMEND``) and opens a replacement with a new order id.
    """

    market_code: str
    order_id: int = attrs.field(metadata=wire(aliases=("orderID",)))
    side: Side | None = None
    price: Decimal | None = None
    quantity: Decimal | None = None
    timestamp: int | None = attrs.field(default=None, kw_only=True)
    recv_window: int | None = attrs.field(default=None, kw_only=True)


def _specs(orders: Iterable[OrderSpec]) -> tuple[OrderSpec, ...]:
    return tuple(orders)


def _cancels(orders: Iterable[CancelOrder]) -> tuple[CancelOrder, ...]:
    return tuple(orders)


def _modifies(orders: Iterable[ModifyOrder]) -> tuple[ModifyOrder, ...]:
    return tuple(orders)


def _channel_strings(channels: Iterable[object]) -> tuple[str, ...]:
    # Accepts wire strings or flexconn.channels.Channel objects (whose str() is the wire form).
    if isinstance(channels, str):
        return (channels,)
    return tuple(str(channel) for channel in channels)


@attrs.frozen(kw_only=True)
class LoginRequest:
    """``op: login``: authenticate the socket; build ``signature`` with :mod:`flexconn.auth`."""

    op: ClassVar[str] = "login"

    api_key: str
    #: The millisecond timestamp exactly as signed (the exchange wants it as a string).
    timestamp: str
    signature: str
    tag: Tag | None = None


@attrs.frozen(kw_only=True)
class SubscribeRequest:
    """``op: subscribe`` to one or more channels (``Channel`` objects or wire strings)."""

    op: ClassVar[str] = "subscribe"

    channels: tuple[str, ...] = attrs.field(converter=_channel_strings, metadata=wire("args"))
    tag: Tag | None = None


@attrs.frozen(kw_only=True)
class UnsubscribeRequest:
    """``op: unsubscribe`` from one or more channels."""

    op: ClassVar[str] = "unsubscribe"

    channels: tuple[str, ...] = attrs.field(converter=_channel_strings, metadata=wire("args"))
    tag: Tag | None = None


@attrs.frozen(kw_only=True)
class PlaceOrderRequest:
    """``op: placeorder`` with one order in ``data``."""

    op: ClassVar[str] = "placeorder"

    order: OrderSpec = attrs.field(metadata=wire("data"))
    tag: Tag | None = None


@attrs.frozen(kw_only=True)
class PlaceOrdersRequest:
    """``op: placeorders``: a batch of 1 to 20 orders in ``dataArray``, one reply per order."""

    op: ClassVar[str] = "placeorders"

    orders: tuple[OrderSpec, ...] = attrs.field(converter=_specs, metadata=wire("dataArray"))
    tag: Tag | None = None


@attrs.frozen(kw_only=True)
class CancelOrderRequest:
    """``op: cancelorder`` for one order."""

    op: ClassVar[str] = "cancelorder"

    order: CancelOrder = attrs.field(metadata=wire("data"))
    tag: Tag | None = None


@attrs.frozen(kw_only=True)
class CancelOrdersRequest:
    """``op: cancelorders``: a batch of 1 to 20 cancels."""

    op: ClassVar[str] = "cancelorders"

    orders: tuple[CancelOrder, ...] = attrs.field(converter=_cancels, metadata=wire("dataArray"))
    tag: Tag | None = None


@attrs.frozen(kw_only=True)
class ModifyOrderRequest:
    """``op: modifyorder`` for one order."""

    op: ClassVar[str] = "modifyorder"

    order: ModifyOrder = attrs.field(metadata=wire("data"))
    tag: Tag | None = None


@attrs.frozen(kw_only=True)
class ModifyOrdersRequest:
    """``op: modifyorders``: a batch of 1 to 20 modifications."""

    op: ClassVar[str] = "modifyorders"

    orders: tuple[ModifyOrder, ...] = attrs.field(converter=_modifies, metadata=wire("dataArray"))
    tag: Tag | None = None


@attrs.frozen(kw_only=True)
class Ping:
    """The text frame ``ping``; the exchange answers with the text frame ``pong``."""

    op: ClassVar[str] = "ping"


@attrs.frozen(kw_only=True)
class UnknownRequest:
    """A well-formed JSON command whose ``op`` flexconn does not know (seen by the simulator)."""

    op: str | None
    raw: str


#: Everything :func:`flexconn.protocol.encode` sends.
Request: TypeAlias = (
    LoginRequest
    | SubscribeRequest
    | UnsubscribeRequest
    | PlaceOrderRequest
    | PlaceOrdersRequest
    | CancelOrderRequest
    | CancelOrdersRequest
    | ModifyOrderRequest
    | ModifyOrdersRequest
    | Ping
)
