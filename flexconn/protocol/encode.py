"""Validate and serialise requests (the client side).

:func:`encode` turns a request model into the exact text frame, after :func:`validate` has
checked every documented rule, so a bad request raises
:class:`~flexconn.errors.ValidationError` (naming the wire field, e.g. ``dataArray[3].price``)
and nothing is sent. The frame follows the parameter tables: ``{"op", "tag", "data"}`` for single
commands, ``"dataArray"`` for batches, ``"args"`` for (un)subscribe; DECIMAL and INTEGER
parameters are JSON numbers, written exactly (no float rounding).

Message length. The exchange refuses frames over its maximum length (error 20027) without
publishing the number; it says a batch of 20 orders of about 200 characters each fits. Twenty such
orders plus the envelope (``op``, a 32-character tag, brackets and commas) come to about 4,080
characters, so :data:`MAX_MESSAGE_LENGTH` is 4,096 UTF-8 bytes: a documented-size full batch fits,
and flexconn never sends what the exchange could refuse for length. flexconn's compact orders are
usually 100-170 bytes, so 20-order batches fit in practice; an oversized batch fails validation
and can be split. The simulator enforces the same constant with :func:`message_length`.

The server's side (reading a request frame back into the models) is
:func:`flexconn.sim.server_codec.decode_request`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

import orjson

from flexconn._codec import converter
from flexconn.errors import ValidationError
from flexconn.models.enums import Side, TimeInForce
from flexconn.models.orders import (
    CancelOrder,
    CancelOrderRequest,
    CancelOrdersRequest,
    LimitOrder,
    LoginRequest,
    MarketOrder,
    ModifyOrder,
    ModifyOrderRequest,
    ModifyOrdersRequest,
    Ping,
    PlaceOrderRequest,
    PlaceOrdersRequest,
    Request,
    StopLimitOrder,
    SubscribeRequest,
    UnsubscribeRequest,
)
from flexconn.protocol.channel_names import parse_key

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_CLIENT_ORDER_ID",
    "MAX_MESSAGE_LENGTH",
    "MAX_TAG_LENGTH",
    "PING_FRAME",
    "encode",
    "message_length",
    "validate",
    "validate_order",
]

#: Longest frame, in UTF-8 bytes, flexconn sends and the simulator accepts (see module notes).
MAX_MESSAGE_LENGTH: Final = 4096
#: Most orders in one ``placeorders``/``cancelorders``/``modifyorders`` batch.
MAX_BATCH_SIZE: Final = 20
#: Longest ``tag`` (characters; an integer tag counts its decimal digits).
MAX_TAG_LENGTH: Final = 32
#: Largest ``clientOrderId``: the exchange stores it as a signed 64-bit integer.
MAX_CLIENT_ORDER_ID: Final = 2**63 - 1
_MAX_ORDER_ID: Final = 2**64 - 1
#: The keep-alive text frame; the exchange answers ``pong``.
PING_FRAME: Final = "ping"

_BATCHES: Final = (PlaceOrdersRequest, CancelOrdersRequest, ModifyOrdersRequest)


def message_length(frame: str | bytes) -> int:
    """The length the message limit applies to: UTF-8 bytes."""
    return len(frame.encode("utf-8")) if isinstance(frame, str) else len(frame)


# --- validation -------------------------------------------------------------------------------


def _check_tag(tag: object) -> None:
    if tag is None:
        return
    if isinstance(tag, bool) or not isinstance(tag, (int, str)):
        raise ValidationError("tag", f"must be an integer or a string, got {type(tag).__name__}")
    if isinstance(tag, int) and not -(2**63) <= tag < 2**64:
        raise ValidationError("tag", "an integer tag must fit in 64 bits")
    text = str(tag)
    if not text:
        raise ValidationError("tag", "must not be empty")
    if len(text) > MAX_TAG_LENGTH:
        raise ValidationError(
            "tag", f"must be at most {MAX_TAG_LENGTH} characters, got {len(text)}"
        )


def _check_int(value: object, field: str, *, low: int = 1, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValidationError(field, f"must be {bound}, got {value}")


def _check_positive(value: object, field: str, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise ValidationError(field, f"{what} must be a Decimal, got {type(value).__name__}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValidationError(field, f"{what} must be a finite number, got {value}")
    if number <= 0:
        raise ValidationError(field, f"{what} must be greater than zero, got {value}")
    return number


def _check_text(value: object, field: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValidationError(field, "must be a non-empty string")


def _check_enum(value: object, enum: type[Side] | type[TimeInForce], field: str) -> None:
    if not isinstance(value, str) or value not in {member.value for member in enum}:
        allowed = ", ".join(member.value for member in enum)
        raise ValidationError(field, f"must be one of {allowed}, got {value!r}")


def _check_window(
    order: LimitOrder | MarketOrder | StopLimitOrder | ModifyOrder, path: str
) -> None:
    if order.timestamp is not None:
        _check_int(order.timestamp, f"{path}.timestamp")
    if order.recv_window is not None:
        _check_int(order.recv_window, f"{path}.recvWindow")


def validate_order(order: object, path: str = "data") -> None:
    """Check one order spec (place, cancel or modify) against the documented rules.

    Args:
        order: a :class:`LimitOrder`, :class:`MarketOrder`, :class:`StopLimitOrder`,
            :class:`CancelOrder` or :class:`ModifyOrder`.
        path: the wire path of the order, used in error field names (``dataArray[2]``).

    Raises:
        ValidationError: naming the first offending field.
    """
    if isinstance(order, LimitOrder | MarketOrder | StopLimitOrder):
        _check_text(order.market_code, f"{path}.marketCode")
        _check_enum(order.side, Side, f"{path}.side")
        _check_positive(order.quantity, f"{path}.quantity", "quantity")
        if order.client_order_id is not None:
            _check_int(order.client_order_id, f"{path}.clientOrderId", high=MAX_CLIENT_ORDER_ID)
        _check_window(order, path)
        if isinstance(order, LimitOrder):
            if order.price is None:
                raise ValidationError(f"{path}.price", "price is required for a LIMIT order")
            _check_positive(order.price, f"{path}.price", "price")
            _check_enum(order.time_in_force, TimeInForce, f"{path}.timeInForce")
        elif isinstance(order, StopLimitOrder):
            if order.stop_price is None:
                raise ValidationError(f"{path}.stopPrice", "stopPrice is required for STOP")
            if order.limit_price is None:
                raise ValidationError(f"{path}.limitPrice", "limitPrice is required for STOP")
            stop = _check_positive(order.stop_price, f"{path}.stopPrice", "stopPrice")
            limit = _check_positive(order.limit_price, f"{path}.limitPrice", "limitPrice")
            if order.side == Side.BUY and limit < stop:
                raise ValidationError(
                    f"{path}.limitPrice", "a BUY stop needs limitPrice >= stopPrice"
                )
            if order.side == Side.SELL and limit > stop:
                raise ValidationError(
                    f"{path}.limitPrice", "a SELL stop needs limitPrice <= stopPrice"
                )
            _check_enum(order.time_in_force, TimeInForce, f"{path}.timeInForce")
    elif isinstance(order, CancelOrder):
        _check_text(order.market_code, f"{path}.marketCode")
        _check_int(order.order_id, f"{path}.orderId", high=_MAX_ORDER_ID)
    elif isinstance(order, ModifyOrder):
        _check_text(order.market_code, f"{path}.marketCode")
        _check_int(order.order_id, f"{path}.orderId", high=_MAX_ORDER_ID)
        if order.side is None and order.price is None and order.quantity is None:
            raise ValidationError(path, "a modify must change side, price or quantity")
        if order.side is not None:
            _check_enum(order.side, Side, f"{path}.side")
        if order.price is not None:
            _check_positive(order.price, f"{path}.price", "price")
        if order.quantity is not None:
            _check_positive(order.quantity, f"{path}.quantity", "quantity")
        _check_window(order, path)
    else:
        raise ValidationError(path, f"not an order: {type(order).__name__}")


def validate(request: Request) -> None:
    """Check ``request`` against every documented rule except the encoded length.

    Raises:
        ValidationError: naming the first offending field.
    """
    if isinstance(request, Ping):
        return
    _check_tag(request.tag)
    if isinstance(request, LoginRequest):
        _check_text(request.api_key, "data.apiKey")
        if not isinstance(request.timestamp, str) or not request.timestamp.isdigit():
            raise ValidationError("data.timestamp", "must be a millisecond timestamp string")
        _check_text(request.signature, "data.signature")
    elif isinstance(request, SubscribeRequest | UnsubscribeRequest):
        if not request.channels:
            raise ValidationError("args", "at least one channel is required")
        for index, channel in enumerate(request.channels):
            parse_key(channel, field=f"args[{index}]")
    elif isinstance(request, PlaceOrderRequest | CancelOrderRequest | ModifyOrderRequest):
        expected = {
            PlaceOrderRequest: (LimitOrder, MarketOrder, StopLimitOrder),
            CancelOrderRequest: (CancelOrder,),
            ModifyOrderRequest: (ModifyOrder,),
        }[type(request)]
        if not isinstance(request.order, expected):
            raise ValidationError(
                "data", f"{request.op} cannot carry {type(request.order).__name__}"
            )
        validate_order(request.order)
    elif isinstance(request, _BATCHES):
        _validate_batch(request)
    else:
        raise ValidationError("op", f"not a request: {type(request).__name__}")


def _validate_batch(
    request: PlaceOrdersRequest | CancelOrdersRequest | ModifyOrdersRequest,
) -> None:
    count = len(request.orders)
    if not 1 <= count <= MAX_BATCH_SIZE:
        raise ValidationError(
            "dataArray", f"a batch holds 1 to {MAX_BATCH_SIZE} orders, got {count}"
        )
    expected: tuple[type[Any], ...] = {
        PlaceOrdersRequest: (LimitOrder, MarketOrder, StopLimitOrder),
        CancelOrdersRequest: (CancelOrder,),
        ModifyOrdersRequest: (ModifyOrder,),
    }[type(request)]
    for index, order in enumerate(request.orders):
        path = f"dataArray[{index}]"
        if not isinstance(order, expected):
            raise ValidationError(path, f"{request.op} cannot carry {type(order).__name__}")
        validate_order(order, path)


# --- encoding ---------------------------------------------------------------------------------


def _order_data(order: object) -> dict[str, Any]:
    data: dict[str, Any] = converter.unstructure(order)
    order_type = getattr(order, "order_type", None)
    if order_type is not None:
        data["orderType"] = order_type.value
    return data


def _body(request: Request) -> tuple[str, Any]:
    if isinstance(request, LoginRequest):
        return "data", {
            "apiKey": request.api_key,
            "timestamp": request.timestamp,
            "signature": request.signature,
        }
    if isinstance(request, SubscribeRequest | UnsubscribeRequest):
        return "args", list(request.channels)
    if isinstance(request, PlaceOrderRequest | CancelOrderRequest | ModifyOrderRequest):
        return "data", _order_data(request.order)
    if isinstance(request, _BATCHES):
        return "dataArray", [_order_data(order) for order in request.orders]
    raise ValidationError("op", f"not a request: {type(request).__name__}")


def encode(request: Request) -> str:
    """Validate ``request`` and return the exact text frame to send.

    Raises:
        ValidationError: a documented rule is broken (``field`` names it), or the frame would
            exceed :data:`MAX_MESSAGE_LENGTH` (``field`` is the body: ``dataArray``...).
    """
    validate(request)
    if isinstance(request, Ping):
        return PING_FRAME
    key, body = _body(request)
    envelope: dict[str, Any] = {"op": request.op}
    if request.tag is not None:
        envelope["tag"] = request.tag
    envelope[key] = body
    frame = orjson.dumps(envelope).decode()
    length = message_length(frame)
    if length > MAX_MESSAGE_LENGTH:
        raise ValidationError(
            key, f"the message is {length} bytes, over the {MAX_MESSAGE_LENGTH}-byte limit"
        )
    return frame
