"""The server's side of the typed models: read a client's request frame, write a message frame.

The client library only writes requests (:func:`flexconn.protocol.encode`) and reads messages
(:func:`flexconn.protocol.decode`); the reverse directions are the exchange's, so they live with
the simulator. :func:`decode_request` structures a frame back into the request models without
checking the business rules (a server answers those with the exchange's own error codes);
:func:`encode_message` writes a typed message as the exchange would send it. Together with the
client's halves they give the round trips the tests check.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Final

import orjson

from flexconn._codec import converter, describe_error
from flexconn.errors import RemoteProtocolError
from flexconn.models.enums import OrderType
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
    OrderSpec,
    Ping,
    PlaceOrderRequest,
    PlaceOrdersRequest,
    Request,
    StopLimitOrder,
    SubscribeRequest,
    UnknownRequest,
    UnsubscribeRequest,
)
from flexconn.models.replies import Pong, UnknownMessage
from flexconn.protocol.decode import PONG_FRAME, Message
from flexconn.protocol.encode import PING_FRAME

__all__ = ["decode_request", "encode_message"]

_ORDER_TYPES: Final[dict[OrderType, type[OrderSpec]]] = {
    OrderType.LIMIT: LimitOrder,
    OrderType.MARKET: MarketOrder,
    OrderType.STOP: StopLimitOrder,
}


def _structure_order_spec(data: Any) -> OrderSpec:
    if not isinstance(data, dict):
        raise TypeError("an order must be a JSON object")
    order_type = converter.structure(data["orderType"], OrderType)
    spec: OrderSpec = converter.structure(data, _ORDER_TYPES[order_type])
    return spec


def _structure_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _structure_tag(value: object) -> str | int | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"tag must be an integer or a string, got {type(value).__name__}")


def _request_from(obj: dict[str, Any], raw: str) -> Request | UnknownRequest:
    op = obj.get("op")
    tag = _structure_tag(obj.get("tag"))
    if op == "login":
        data = obj["data"]
        return LoginRequest(
            api_key=converter.structure(data["apiKey"], str),
            timestamp=converter.structure(data["timestamp"], str),
            signature=converter.structure(data["signature"], str),
            tag=tag,
        )
    if op in ("subscribe", "unsubscribe"):
        channels = tuple(converter.structure(c, str) for c in _structure_list(obj["args"]))
        cls = SubscribeRequest if op == "subscribe" else UnsubscribeRequest
        return cls(channels=channels, tag=tag)
    if op == "placeorder":
        return PlaceOrderRequest(order=_structure_order_spec(obj["data"]), tag=tag)
    if op == "placeorders":
        orders = [_structure_order_spec(item) for item in _structure_list(obj["dataArray"])]
        return PlaceOrdersRequest(orders=orders, tag=tag)
    if op == "cancelorder":
        return CancelOrderRequest(order=converter.structure(obj["data"], CancelOrder), tag=tag)
    if op == "cancelorders":
        cancels = [converter.structure(i, CancelOrder) for i in _structure_list(obj["dataArray"])]
        return CancelOrdersRequest(orders=cancels, tag=tag)
    if op == "modifyorder":
        return ModifyOrderRequest(order=converter.structure(obj["data"], ModifyOrder), tag=tag)
    if op == "modifyorders":
        modifies = [converter.structure(i, ModifyOrder) for i in _structure_list(obj["dataArray"])]
        return ModifyOrdersRequest(orders=modifies, tag=tag)
    return UnknownRequest(op=op if isinstance(op, str) else None, raw=raw)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def decode_request(frame: str | bytes) -> Request | UnknownRequest:
    """Read a client's text frame back into a request model (the server's side).

    Business rules are not checked (the server answers those with exchange error codes); an
    unknown ``op`` gives :class:`UnknownRequest`.

    Raises:
        RemoteProtocolError: not JSON, not an object, or a known command with unusable fields.
    """
    try:
        raw = frame.decode("utf-8") if isinstance(frame, bytes) else frame
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"request is not UTF-8: {exc}", frame) from None
    if raw.strip() == PING_FRAME:
        return Ping()
    try:
        # The stdlib parser with Decimal floats: request numbers are read exactly, whatever
        # their number of digits (orjson would go through a double).
        obj = json.loads(raw, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise RemoteProtocolError(f"request is not JSON: {exc}", frame) from None
    if not isinstance(obj, dict):
        raise RemoteProtocolError("request is not a JSON object", frame)
    try:
        return _request_from(obj, raw)
    except Exception as exc:  # the one boundary: any structuring failure is the peer's fault
        raise RemoteProtocolError(
            f"malformed {obj.get('op')!r} request: {describe_error(exc)}", frame
        ) from exc


def encode_message(message: Message) -> str:
    """The text frame the exchange would send for ``message`` (the server's side).

    Channel updates use the later API's form (numeric depth levels with ``seqNum``/``checksum``)
    except ``futures/depth``, which keeps its 2020-12 form. ``UnknownMessage`` is sent as received.
    """
    if isinstance(message, Pong):
        return PONG_FRAME
    if isinstance(message, UnknownMessage):
        raw = message.raw
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return orjson.dumps(converter.unstructure(message)).decode()
