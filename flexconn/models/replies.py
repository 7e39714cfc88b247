"""Replies to commands (``{"event": ...}`` frames) and the connection-level messages.

A reply is correlated with its command by ``event`` and the echoed ``tag`` (always a string here:
the exchange echoes an integer tag as ``"123"``, and flexconn reads either). A failed reply's
:meth:`error` is the matching :class:`~flexconn.errors.ExchangeError` subclass.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

import attrs

from flexconn._codec import decimals_as_strings, structure_str, wire
from flexconn.errors import ExchangeError, InvalidOrderError, SubscriptionError, exchange_error
from flexconn.models.enums import OrderType, Side, TimeInForce

__all__ = [
    "ErrorReply",
    "Greeting",
    "LoginReply",
    "OrderAction",
    "OrderEcho",
    "OrderReply",
    "Pong",
    "SubscribeReply",
    "UnknownMessage",
    "UnsubscribeReply",
]


def _channels_in(value: Any, _: object) -> tuple[str, ...]:
    # ``channel`` is a string in the later API and a list of strings in the 2020-12 one.
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(structure_str(item) for item in value)
    raise TypeError(f"channel must be a string or a list of strings, got {type(value).__name__}")


def _channels_out(value: tuple[str, ...]) -> str | list[str]:
    return value[0] if len(value) == 1 else list(value)


@attrs.frozen(kw_only=True)
class LoginReply:
    """The answer to ``login``; ``success`` false carries ``code`` and ``message``."""

    success: bool
    tag: str | None = None
    timestamp: int | None = None
    code: str | None = None
    message: str | None = None
    event: str = attrs.field(default="login", init=False)

    def error(self) -> ExchangeError | None:
        """The exchange error of a failed login, else ``None``."""
        return None if self.success else exchange_error(self.code, self.message)


@attrs.frozen(kw_only=True)
class SubscribeReply:
    """The answer to ``subscribe``: the channels it concerns (none on most failures)."""

    success: bool
    channels: tuple[str, ...] = attrs.field(
        default=(), metadata=wire("channel", structure=_channels_in, unstructure=_channels_out)
    )
    tag: str | None = None
    timestamp: int | None = None
    code: str | None = None
    message: str | None = None
    event: str = attrs.field(default="subscribe", init=False)

    def error(self) -> ExchangeError | None:
        """The exchange error of a refused subscription, else ``None``."""
        if self.success:
            return None
        return exchange_error(self.code, self.message, default=SubscriptionError)


@attrs.frozen(kw_only=True)
class UnsubscribeReply:
    """The answer to ``unsubscribe``."""

    success: bool
    channels: tuple[str, ...] = attrs.field(
        default=(), metadata=wire("channel", structure=_channels_in, unstructure=_channels_out)
    )
    tag: str | None = None
    timestamp: int | None = None
    code: str | None = None
    message: str | None = None
    event: str = attrs.field(default="unsubscribe", init=False)

    def error(self) -> ExchangeError | None:
        """The exchange error of a refused unsubscription, else ``None``."""
        if self.success:
            return None
        return exchange_error(self.code, self.message, default=SubscriptionError)


class OrderAction(StrEnum):
    """Which order command a reply answers."""

    PLACE = "placeorder"
    CANCEL = "cancelorder"
    MODIFY = "modifyorder"


@decimals_as_strings
@attrs.frozen(kw_only=True)
class OrderEcho:
    """The ``data`` an order reply echoes: the command's fields, plus ``orderId`` once known.

    Every field is optional: what is echoed depends on the command and on the era.
    """

    client_order_id: int | None = attrs.field(
        default=None, metadata=wire(aliases=("clientOrderID",))
    )
    order_id: int | None = attrs.field(default=None, metadata=wire(aliases=("orderID",)))
    market_code: str | None = None
    side: Side | None = None
    order_type: OrderType | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    stop_price: Decimal | None = None
    limit_price: Decimal | None = None
    source: int | None = None
    timestamp: int | None = None
    recv_window: int | None = None


@attrs.frozen(kw_only=True)
class OrderReply:
    """The per-order answer to place/cancel/modify (batches get one reply per order).

    ``event`` is kept as sent. The exchange echoes a failed *modify* in a batch with event
    ``placeorder`` (and ``orderID``); :attr:`action` sees through that: a ``placeorder`` reply
    whose data names an order id but no order type answers a modify.
    """

    event: str
    submitted: bool = attrs.field(metadata=wire(aliases=("success",)))
    tag: str | None = None
    timestamp: int | None = None
    code: str | None = None
    message: str | None = None
    data: OrderEcho | None = None

    @property
    def action(self) -> OrderAction:
        """The command this reply answers (see the class notes for the modify slip)."""
        event = self.event.lower().rstrip("s")
        if event == OrderAction.CANCEL:
            return OrderAction.CANCEL
        if event == OrderAction.MODIFY:
            return OrderAction.MODIFY
        data = self.data
        if data is not None and data.order_type is None and data.order_id is not None:
            return OrderAction.MODIFY
        return OrderAction.PLACE

    def error(self) -> ExchangeError | None:
        """The exchange error of a refused order command, else ``None``."""
        if self.submitted:
            return None
        return exchange_error(self.code, self.message, default=InvalidOrderError)


@attrs.frozen(kw_only=True)
class ErrorReply:
    """``event: error``: a command the exchange could not even attribute (bad JSON, bad op)."""

    code: str | None = None
    message: str | None = None
    success: bool = False
    tag: str | None = None
    timestamp: int | None = None
    event: str = attrs.field(default="error", init=False)

    def error(self) -> ExchangeError:
        """The exchange error this reply reports."""
        return exchange_error(self.code, self.message)


@attrs.frozen
class Pong:
    """The text frame ``pong``, the answer to a text ``ping``."""


@attrs.frozen(kw_only=True)
class Greeting:
    """The object the exchange may send on connect, carrying a ``nonce`` (nothing else is known)."""

    nonce: str


@attrs.frozen(kw_only=True)
class UnknownMessage:
    """A well-formed JSON object flexconn does not recognise; kept whole, never dropped.

    Attributes:
        raw: the frame as received.
        payload: the parsed object.
    """

    raw: str | bytes
    payload: dict[str, Any] = attrs.field(eq=False)
