"""Validation of WebSocket order commands, one documented error code per rule (sans-IO).

Each ``parse_*`` takes one order's ``data`` object and returns either the parsed command or a
:class:`Rejection` with the exchange's code. Rules, in the order they are checked:

=====================================================  =========
rule                                                   code
=====================================================  =========
``data`` is not an object                              20002
``marketCode`` missing / unknown                       20011 / 20015
``side`` missing / not ``BUY``/``SELL``                20012 / 20016
``orderType`` missing / unknown                        20013 / 20017
``quantity`` missing, not a number, or not > 0         20006
``clientOrderId`` not an integer or > 2**63-1 / <= 0   20014 / 20008
``timeInForce`` unknown                                20018
LIMIT without ``price`` / bad ``price``                20022 / 20021
STOP: missing or bad ``stopPrice``/``limitPrice``      20020
any price <= 0                                         20028
BUY stop with stopPrice > limitPrice                   20029
SELL stop with limitPrice > stopPrice                  20030
``triggerType`` not ``MARK_PRICE``/``LAST_PRICE``      20033
``timestamp``/``recvWindow`` not integers              20002
now > ``timestamp`` + ``recvWindow`` (default 1000)    20024
cancel/modify without ``orderId`` (or clientOrderId)   20010
``orderId`` not a positive integer                     20019
=====================================================  =========

Numbers are accepted as JSON numbers or numeric strings; floats are read through their shortest
``repr`` so ``9431.48`` is exactly ``Decimal("9431.48")``. Order types accept both ``STOP``
(2020-12) and ``STOP_LIMIT`` (later). Some rejections also carry the 2020-12 ``OrderRejected``
status the older document pushes on the order channel for the same mistake.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import attrs

from flexconn.errors import ERROR_CODES
from flexconn.models.enums import OrderStatus, OrderType, Side, TimeInForce
from flexconn.protocol import MAX_CLIENT_ORDER_ID
from flexconn.sim.ws_messages import dec

__all__ = [
    "CancelCommand",
    "ModifyCommand",
    "PlaceCommand",
    "Rejection",
    "echo",
    "parse_cancel",
    "parse_modify",
    "parse_place",
]

#: The default ``recvWindow`` when only ``timestamp`` is given.
DEFAULT_RECV_WINDOW_MS: Final = 1000

_ORDER_TYPES: Final = {
    "LIMIT": OrderType.LIMIT,
    "MARKET": OrderType.MARKET,
    "STOP": OrderType.STOP,
    "STOP_LIMIT": OrderType.STOP,
}
_TRIGGER_TYPES: Final = frozenset({"MARK_PRICE", "LAST_PRICE"})
_TIME_IN_FORCE: Final = frozenset(t.value for t in TimeInForce)


@attrs.frozen(kw_only=True)
class Rejection:
    """A refused order: the error code and message, and the 2020-12 ``OrderRejected`` status
    (with its extra fields) when that document pushes one for this mistake."""

    code: str
    message: str
    rejected_status: str | None = None
    rejected_fields: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class PlaceCommand:
    """A validated ``placeorder``; ``type_name`` is the spelling the client used."""

    market_code: str
    side: Side
    order_type: OrderType
    type_name: str
    quantity: Decimal
    time_in_force: TimeInForce
    price: Decimal | None
    stop_price: Decimal | None
    limit_price: Decimal | None
    client_order_id: int | None


@attrs.frozen(kw_only=True)
class CancelCommand:
    """A validated ``cancelorder``: by ``order_id``, else by ``client_order_id``."""

    market_code: str
    order_id: int | None
    client_order_id: int | None


@attrs.frozen(kw_only=True)
class ModifyCommand:
    """A validated ``modifyorder``; ``None`` fields are left unchanged."""

    market_code: str
    order_id: int
    side: Side | None
    price: Decimal | None
    quantity: Decimal | None


def _reject(code: str, status: OrderStatus | None = None, **fields: str) -> Rejection:
    return Rejection(
        code=code,
        message=ERROR_CODES[code][0],
        rejected_status=status.value if status is not None else None,
        rejected_fields=fields,
    )


def _number(value: Any) -> Decimal | None:
    """A finite decimal from a JSON number or numeric string, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        value = repr(value)
    if not isinstance(value, str):
        return None
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _integer(value: Any) -> int | None:
    """An integer from a JSON integer or a digit string, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    return None


def echo(data: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The request's own fields among ``keys``, in that order, as strings (for reply ``data``)."""
    out: dict[str, Any] = {}
    for key in keys:
        if key in data and data[key] is not None:
            out[key] = _text(data[key])
    return out


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        number = _number(value)
        return dec(number) if number is not None else repr(value)
    return str(value)


def _market(data: Mapping[str, Any], markets: Mapping[str, object]) -> str | Rejection:
    code = data.get("marketCode")
    if code is None or code == "":
        return _reject("20011")
    if not isinstance(code, str) or code not in markets:
        return _reject("20015")
    return code


def _client_order_id(value: Any) -> int | Rejection:
    number = _integer(value)
    if number is None or number > MAX_CLIENT_ORDER_ID:
        return _reject("20014")
    if number <= 0:
        return _reject("20008")
    return number


def _recv_window(data: Mapping[str, Any], now_ms: int) -> Rejection | None:
    """20024 when the order arrives after ``timestamp + recvWindow``."""
    if data.get("timestamp") is None:
        if data.get("recvWindow") is not None and _integer(data["recvWindow"]) is None:
            return _reject("20002")
        return None
    stamp = _integer(data["timestamp"])
    window_raw = data.get("recvWindow")
    window = DEFAULT_RECV_WINDOW_MS if window_raw is None else _integer(window_raw)
    if stamp is None or window is None:
        return _reject("20002")
    if now_ms > stamp + window:
        return _reject("20024")
    return None


def _positive_price(value: Any, bad: str) -> Decimal | Rejection:
    number = _number(value)
    if number is None:
        return _reject(bad)
    if number <= 0:
        return _reject("20028")
    return number


def parse_place(data: Any, markets: Mapping[str, object], now_ms: int) -> PlaceCommand | Rejection:
    """Validate one order of ``placeorder``/``placeorders``."""
    if not isinstance(data, Mapping):
        return _reject("20002")
    market = _market(data, markets)
    if isinstance(market, Rejection):
        return market
    side_raw = data.get("side")
    if side_raw is None or side_raw == "":
        return _reject("20012")
    if side_raw not in ("BUY", "SELL"):
        return _reject("20016")
    side = Side(side_raw)
    type_raw = data.get("orderType")
    if type_raw is None or type_raw == "":
        return _reject("20013")
    if not isinstance(type_raw, str) or type_raw not in _ORDER_TYPES:
        return _reject("20017", OrderStatus.REJECT_UNKNOW_ORDER_ACTION)
    order_type = _ORDER_TYPES[type_raw]
    quantity = _number(data.get("quantity"))
    if quantity is None or quantity <= 0:
        fields = {"quantity": _text(data["quantity"])} if "quantity" in data else {}
        if "clientOrderId" in data:
            fields["clientOrderId"] = _text(data["clientOrderId"])
        return _reject("20006", OrderStatus.REJECT_QUANTITY_ZERO, **fields)
    client_order_id: int | None = None
    if data.get("clientOrderId") is not None:
        parsed_id = _client_order_id(data["clientOrderId"])
        if isinstance(parsed_id, Rejection):
            return parsed_id
        client_order_id = parsed_id
    tif_raw = data.get("timeInForce")
    if tif_raw is not None and (not isinstance(tif_raw, str) or tif_raw not in _TIME_IN_FORCE):
        return _reject("20018")
    tif = TimeInForce(tif_raw) if tif_raw is not None else TimeInForce.GTC
    price: Decimal | None = None
    stop_price: Decimal | None = None
    limit_price: Decimal | None = None
    if order_type is OrderType.LIMIT:
        if data.get("price") is None:
            return _reject("20022", OrderStatus.REJECT_LIMITE_ORDER_WITH_MARKET_PRICE)
        checked = _positive_price(data["price"], "20021")
        if isinstance(checked, Rejection):
            return checked
        price = checked
    elif order_type is OrderType.STOP:
        stop = _positive_price(data.get("stopPrice"), "20020")
        if isinstance(stop, Rejection):
            return stop
        limit = _positive_price(data.get("limitPrice"), "20020")
        if isinstance(limit, Rejection):
            return limit
        stop_price, limit_price = stop, limit
        stop_fields = {"orderType": type_raw, "side": side_raw}
        stop_fields["stopPrice"] = dec(stop)
        stop_fields["limitPrice"] = dec(limit)
        if client_order_id is not None:
            stop_fields = {"clientOrderId": str(client_order_id), **stop_fields}
        if side is Side.BUY and stop > limit:
            return _reject("20029", OrderStatus.STOP_PRICE_LARGER_THAN_LIMIT_PRICE, **stop_fields)
        if side is Side.SELL and limit > stop:
            return _reject("20030", OrderStatus.STOP_PRICE_LESS_THAN_LIMIT_PRICE, **stop_fields)
    trigger = data.get("triggerType")
    if trigger is not None and (not isinstance(trigger, str) or trigger not in _TRIGGER_TYPES):
        return _reject("20033")
    late = _recv_window(data, now_ms)
    if late is not None:
        return late
    return PlaceCommand(
        market_code=market,
        side=side,
        order_type=order_type,
        type_name=type_raw,
        quantity=quantity,
        time_in_force=tif,
        price=price,
        stop_price=stop_price,
        limit_price=limit_price,
        client_order_id=client_order_id,
    )


def _order_id(data: Mapping[str, Any]) -> int | Rejection | None:
    # "orderID" appears in the documents' batch examples; accept it as a spelling of orderId.
    raw = data.get("orderId", data.get("orderID"))
    if raw is None:
        return None
    number = _integer(raw)
    if number is None or number <= 0:
        return _reject("20019")
    return number


def parse_cancel(data: Any, markets: Mapping[str, object]) -> CancelCommand | Rejection:
    """Validate one order of ``cancelorder``/``cancelorders``."""
    if not isinstance(data, Mapping):
        return _reject("20002")
    market = _market(data, markets)
    if isinstance(market, Rejection):
        return market
    order_id = _order_id(data)
    if isinstance(order_id, Rejection):
        return order_id
    client_order_id: int | None = None
    if order_id is None:
        if data.get("clientOrderId") is None:
            return _reject("20010")
        parsed = _client_order_id(data["clientOrderId"])
        if isinstance(parsed, Rejection):
            return parsed
        client_order_id = parsed
    return CancelCommand(market_code=market, order_id=order_id, client_order_id=client_order_id)


def parse_modify(
    data: Any, markets: Mapping[str, object], now_ms: int
) -> ModifyCommand | Rejection:
    """Validate one order of ``modifyorder``/``modifyorders``."""
    if not isinstance(data, Mapping):
        return _reject("20002")
    market = _market(data, markets)
    if isinstance(market, Rejection):
        return market
    order_id = _order_id(data)
    if isinstance(order_id, Rejection):
        return order_id
    if order_id is None:
        return _reject("20010")
    side: Side | None = None
    if data.get("side") is not None:
        if data["side"] not in ("BUY", "SELL"):
            return _reject("20016")
        side = Side(data["side"])
    price: Decimal | None = None
    if data.get("price") is not None:
        checked = _positive_price(data["price"], "20021")
        if isinstance(checked, Rejection):
            return checked
        price = checked
    quantity: Decimal | None = None
    if data.get("quantity") is not None:
        quantity = _number(data["quantity"])
        if quantity is None or quantity <= 0:
            return _reject("20006")
    late = _recv_window(data, now_ms)
    if late is not None:
        return late
    return ModifyCommand(
        market_code=market, order_id=order_id, side=side, price=price, quantity=quantity
    )
