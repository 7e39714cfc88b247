"""Request and response bodies of the REST API, as frozen attrs models.

Design note. These models go through the one shared converter
(:data:`flexconn._codec.converter`), but REST bodies follow the documents' parameter and
response tables, which differ from the WebSocket's conventions in three ways. Every class here is
therefore registered with its own structure and unstructure hooks (built by :func:`_rest_model`):

* **Numbers are strings.** Decimal and int fields are written as JSON strings (``"0.001"``,
  ``"1593627419000"``), as the tables say, unless the field is marked ``raw`` (a documented JSON
  number or int: depth levels, ``orderCreated`` of ``GET /v2/orders``, ``recvWindow``...).
  Decoding stays lenient: either form is accepted.
* **Booleans are strings** (``"success": "true"``, ``"isTriggered": "false"``); real JSON
  booleans are accepted too, and ``"false"`` is never truthy.
* **null is written** for optional fields the documents show as ``null`` (``"clientOrderId":
  null``); fields marked ``omit_none`` are left out instead, for shapes that vary per entry
  (order results, v2.1 order records, request bodies).

Where the 2020-12 and later documents disagree, decoding accepts both and encoding writes the
later form: ``remainQuantity``/``remainingQuantity``, ``estLiqPrice``/``estLiquidationPrice``,
``data`` as an object or a one-element list. Timestamps are millisecond epoch ints throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from types import NoneType, UnionType
from typing import Any, Final, TypeVar, Union, get_args, get_origin

import attrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from flexconn._codec import (
    converter,
    structure_bool,
    structure_int,
    wire,
    wire_aliases,
    wire_name,
)
from flexconn.models.enums import (
    CandleGranularity,
    MatchType,
    OrderNotice,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)

__all__ = [
    "ACCOUNT_TRADES_PAGE",
    "CANDLES_PAGE",
    "DELIVERY_CANCEL_FAILED",
    "DELIVERY_CANCEL_OK",
    "DELIVERY_ORDERS_PAGE",
    "FUNDING_RATES_PAGE",
    "MAX_ORDERS_PER_REQUEST",
    "MAX_WINDOW_MS",
    "ORDERS_V21_PAGE",
    "PUBLIC_FUNDING_PAGE",
    "PUBLIC_TRADES_PAGE",
    "AccountInfo",
    "AccountInfoReply",
    "AccountTrade",
    "AccountTradesReply",
    "Asset",
    "AssetsReply",
    "Balance",
    "BalancesReply",
    "CancelAllAck",
    "CancelAllReply",
    "CancelOrdersRequest",
    "Candle",
    "CandlesQuery",
    "CandlesReply",
    "DeliverAuction",
    "DeliverAuctionReply",
    "DeliveryCancelReply",
    "DeliveryOrder",
    "DeliveryOrdersReply",
    "DeliveryRequest",
    "DeliverySubmission",
    "DeliverySubmitReply",
    "DepthReply",
    "DepthSnapshot",
    "FundingRate",
    "FundingRatesReply",
    "Market",
    "MarketsReply",
    "ModifyOrdersRequest",
    "OpenOrder",
    "OpenOrdersReply",
    "OrderMatch",
    "OrderRecord",
    "OrderRecordStatus",
    "OrderRecordsReply",
    "OrderResult",
    "OrderResultsReply",
    "OrdersQuery",
    "PageRule",
    "Ping",
    "PlaceOrdersRequest",
    "Position",
    "PositionsReply",
    "PublicFunding",
    "PublicFundingQuery",
    "PublicTrade",
    "PublicTradesReply",
    "ResponseType",
    "RestCancelOrder",
    "RestErrorReply",
    "RestModifyOrder",
    "RestPlaceOrder",
    "Ticker",
    "TickerReply",
    "TimeWindowQuery",
    "query_params",
    "rest_meta",
]

T = TypeVar("T")

_META: Final = "flexconn.rest"

#: ``startTime`` and ``endTime`` must lie within 7 days of each other where the documents say so.
MAX_WINDOW_MS: Final = 7 * 24 * 3600 * 1000
#: Orders per ``/v2/orders/place|modify|cancel`` request.
MAX_ORDERS_PER_REQUEST: Final = 8
#: The two documented answers of ``DELETE /v2.1/delivery/orders/{id}``.
DELIVERY_CANCEL_OK: Final = "Cancel of user order was successful"
DELIVERY_CANCEL_FAILED: Final = "Cancel exception please try again"


@attrs.frozen(kw_only=True)
class PageRule:
    """The documented ``limit`` default and maximum of a listing endpoint, and its time window.

    Attributes:
        default: what the exchange uses when ``limit`` is omitted.
        maximum: the largest accepted ``limit`` (``None``: not documented, not enforced).
        max_window_ms: the largest ``endTime - startTime`` (``None``: unbounded).
        default_span_ms: how far back ``startTime`` defaults from ``endTime``.
    """

    default: int
    maximum: int | None
    max_window_ms: int | None = MAX_WINDOW_MS
    default_span_ms: int = 24 * 3600 * 1000


ACCOUNT_TRADES_PAGE: Final = PageRule(default=500, maximum=1000)
PUBLIC_TRADES_PAGE: Final = PageRule(default=100, maximum=300)
ORDERS_V21_PAGE: Final = PageRule(default=100, maximum=100)
DELIVERY_ORDERS_PAGE: Final = PageRule(default=200, maximum=500)
CANDLES_PAGE: Final = PageRule(default=500, maximum=5000, max_window_ms=None)
FUNDING_RATES_PAGE: Final = PageRule(
    default=50, maximum=None, max_window_ms=None, default_span_ms=7 * 24 * 3600 * 1000
)
PUBLIC_FUNDING_PAGE: Final = PageRule(default=100, maximum=500)


# --- the REST field conventions ---------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _FieldWire:
    raw: bool = False
    omit_none: bool = False
    shape: str | None = None  # "list": one object is a list of one; "one": a list of one is it
    codec: tuple[Callable[[Any], Any], Callable[[Any], Any]] | None = None


def rest_meta(
    name: str | None = None,
    *,
    raw: bool = False,
    omit_none: bool = False,
    aliases: tuple[str, ...] = (),
    shape: str | None = None,
    codec: tuple[Callable[[Any], Any], Callable[[Any], Any]] | None = None,
) -> dict[str, object]:
    """attrs field metadata for a REST field.

    Args:
        name: the wire name when it is not the camelCase of the attribute.
        raw: write the value as the JSON number/int it is, not as a string.
        omit_none: leave the key out when the value is ``None`` (else write ``null``).
        aliases: other wire names accepted when decoding (older spellings).
        shape: ``"list"`` accepts a lone object (or ``{}``) for a list field; ``"one"`` accepts a
            one-element list for an object field.
        codec: a (decode, encode) pair replacing the conventions for this field.
    """
    meta = wire(name, aliases=aliases)
    meta[_META] = _FieldWire(raw=raw, omit_none=omit_none, shape=shape, codec=codec)
    return meta


_OMIT: Final = rest_meta(omit_none=True)


def _field_wire(field: attrs.Attribute[Any]) -> _FieldWire:
    found = field.metadata.get(_META)
    return found if isinstance(found, _FieldWire) else _FieldWire()


def _strip_optional(tp: Any) -> Any:
    if get_origin(tp) in (UnionType, Union):
        rest = [a for a in get_args(tp) if a is not NoneType]
        if len(rest) == 1:
            return rest[0]
    return tp


def _none_or(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def hook(value: Any) -> Any:
        return None if value is None else fn(value)

    return hook


def _unstructure_decimal_str(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"cannot encode non-finite number {value}")
    return format(value, "f")


def _unstructure_bool_str(value: bool) -> str:
    return "true" if value else "false"


def _as_list(value: Any) -> Any:
    if isinstance(value, Mapping):
        return [value] if value else []
    return [] if value is None else value


def _as_one(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def _structure_hook(field: attrs.Attribute[Any], fw: _FieldWire) -> Callable[[Any, Any], Any]:
    tp: Any = field.type
    base = _strip_optional(tp)
    if fw.codec is not None:
        decode = _none_or(fw.codec[0])
        return lambda value, _tp: decode(value)
    if base is bool:
        decode = _none_or(structure_bool)
        return lambda value, _tp: decode(value)
    if fw.shape == "list":
        return lambda value, _tp: converter.structure(_as_list(value), tp)
    if fw.shape == "one":
        return lambda value, _tp: converter.structure(_as_one(value), tp)
    return converter.get_structure_hook(tp)


def _unstructure_hook(field: attrs.Attribute[Any], fw: _FieldWire) -> Callable[[Any], Any] | None:
    base = _strip_optional(field.type)
    if fw.codec is not None:
        return _none_or(fw.codec[1])
    if fw.raw:
        return None
    if base is Decimal:
        return _none_or(_unstructure_decimal_str)
    if base is int:
        return _none_or(str)
    if base is bool:
        return _none_or(_unstructure_bool_str)
    if get_origin(base) is dict and get_args(base) == (str, Decimal):
        return _none_or(lambda d: {k: _unstructure_decimal_str(v) for k, v in d.items()})
    return None


C = TypeVar("C", bound=type)


def _rest_model(cls: C) -> C:
    """Register ``cls``'s REST structure/unstructure hooks on the shared converter."""
    attrs.resolve_types(cls)
    fields = attrs.fields(cls)
    structure_overrides: dict[str, Any] = {}
    unstructure_overrides: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    for field in fields:
        fw = _field_wire(field)
        name = wire_name(field)
        structure_overrides[field.name] = override(
            rename=name, struct_hook=_structure_hook(field, fw)
        )
        unstructure_overrides[field.name] = override(
            rename=name,
            omit_if_default=fw.omit_none and field.default is None,
            unstruct_hook=_unstructure_hook(field, fw),
        )
        for alias in wire_aliases(field):
            aliases[alias] = name
    plain: Callable[[Any, Any], Any] = make_dict_structure_fn(cls, converter, **structure_overrides)

    def with_aliases(data: Any, tp: Any) -> Any:
        if isinstance(data, Mapping):
            extra = {new: data[old] for old, new in aliases.items() if old in data}
            data = {**extra, **data}
        return plain(data, tp)

    converter.register_structure_hook(cls, with_aliases if aliases else plain)
    converter.register_unstructure_hook(
        cls, make_dict_unstructure_fn(cls, converter, **unstructure_overrides)
    )
    return cls


def query_params(params: object) -> dict[str, str]:
    """A query model as URL parameters: wire names, strings, ``None`` fields left out."""
    data = converter.unstructure(params)
    return {key: str(value) for key, value in data.items() if value is not None}


# --- shared shapes ----------------------------------------------------------------------------


@_rest_model
@attrs.frozen(kw_only=True)
class RestErrorReply:
    """The failure body: ``{"event", "success": false, "code", "message", "timestamp"}``.

    The REST documents show this envelope on the 2020-12 ``accountinfo`` reply (``success``,
    ``code``, ``message``) and the WebSocket failure format; the simulator answers every refused
    request with it, with an HTTP status saying what kind of failure it is.
    """

    event: str | None = attrs.field(default=None, metadata=_OMIT)
    success: bool = attrs.field(default=False, metadata=rest_meta(raw=True))
    code: str | None = None
    message: str | None = None
    timestamp: int | None = attrs.field(default=None, metadata=_OMIT)


@_rest_model
@attrs.frozen(kw_only=True)
class Ping:
    """``GET /v2/ping``: ``{"success": "true"}`` when the API is up."""

    success: bool


# --- account ----------------------------------------------------------------------------------


@_rest_model
@attrs.frozen(kw_only=True)
class AccountInfo:
    """One entry of ``GET /v2/accountinfo``; ``risk_ratio`` is null while no margin is used."""

    account_id: str
    trade_type: str
    margin_currency: str
    total_balance: Decimal
    collateral_balance: Decimal
    available_balance: Decimal
    portfolio_var_margin: Decimal
    risk_ratio: Decimal | None = None
    timestamp: int


@_rest_model
@attrs.frozen(kw_only=True)
class AccountInfoReply:
    """``GET /v2/accountinfo`` (the 2020-12 form adds ``success``/``message``/``code``)."""

    event: str = "accountinfo"
    timestamp: int | None = attrs.field(default=None, metadata=_OMIT)
    account_id: str | None = attrs.field(default=None, metadata=_OMIT)
    data: tuple[AccountInfo, ...] = attrs.field(metadata=rest_meta(shape="list"))
    success: bool | None = attrs.field(default=None, metadata=rest_meta(raw=True, omit_none=True))
    code: str | None = attrs.field(default=None, metadata=_OMIT)
    message: str | None = attrs.field(default=None, metadata=_OMIT)


@_rest_model
@attrs.frozen(kw_only=True)
class Balance:
    """One coin balance of ``GET /v2/balances[/{instrumentId}]``."""

    instrument_id: str
    total: Decimal
    available: Decimal
    reserved: Decimal
    quantity_last_updated: int


@_rest_model
@attrs.frozen(kw_only=True)
class BalancesReply:
    """``GET /v2/balances`` (event ``balances``) and ``/v2/balances/{id}`` (``balancesById``).

    ``data`` is always a list here; the by-id reply may arrive as a lone object.
    """

    event: str = "balances"
    timestamp: int
    account_id: str
    trade_type: str | None = None
    data: tuple[Balance, ...] = attrs.field(metadata=rest_meta(shape="list"))


@_rest_model
@attrs.frozen(kw_only=True)
class Position:
    """One position of ``GET /v2/positions[/{instrumentId}]``."""

    instrument_id: str
    quantity: Decimal
    last_updated: int
    contract_val_currency: str | None = None
    entry_price: Decimal
    position_pnl: Decimal
    est_liquidation_price: Decimal | None = attrs.field(
        default=None, metadata=rest_meta(aliases=("estLiqPrice",))
    )


@_rest_model
@attrs.frozen(kw_only=True)
class PositionsReply:
    """``GET /v2/positions`` (``positions``) and ``/v2/positions/{id}`` (``positionsById``).

    An empty by-id answer (``{}``, formerly ``null``) decodes as an empty list.
    """

    event: str = "positions"
    timestamp: int
    account_id: str
    data: tuple[Position, ...] = attrs.field(metadata=rest_meta(shape="list"))


@_rest_model
@attrs.frozen(kw_only=True)
class AccountTrade:
    """One own trade of ``GET /v2/trades/{marketCode}``."""

    match_id: int
    match_timestamp: int
    market_code: str
    match_quantity: Decimal
    match_price: Decimal
    total: Decimal
    order_match_type: MatchType
    fees: Decimal
    fee_instrument_id: str | None = None
    order_id: int
    side: Side
    client_order_id: int | None = None


@_rest_model
@attrs.frozen(kw_only=True)
class AccountTradesReply:
    """``GET /v2/trades/{marketCode}``."""

    event: str = "trades"
    timestamp: int
    account_id: str
    data: tuple[AccountTrade, ...]


# --- orders -----------------------------------------------------------------------------------


@_rest_model
@attrs.frozen(kw_only=True)
class OpenOrder:
    """One open order of ``GET /v2/orders``; the three times are JSON ints in the later form."""

    order_id: int
    market_code: str
    client_order_id: int | None = None
    side: Side
    order_type: OrderType
    quantity: Decimal
    remaining_quantity: Decimal = attrs.field(metadata=rest_meta(aliases=("remainQuantity",)))
    price: Decimal | None = None
    stop_price: Decimal | None = None
    limit_price: Decimal | None = None
    order_created: int = attrs.field(metadata=rest_meta(raw=True))
    last_modified: int | None = attrs.field(default=None, metadata=rest_meta(raw=True))
    last_trade_timestamp: int | None = attrs.field(default=None, metadata=rest_meta(raw=True))
    time_in_force: TimeInForce


@_rest_model
@attrs.frozen(kw_only=True)
class OpenOrdersReply:
    """``GET /v2/orders``."""

    event: str = "orders"
    timestamp: int
    account_id: str
    data: tuple[OpenOrder, ...]


class OrderRecordStatus(StrEnum):
    """``status`` of a ``GET /v2.1/orders`` record."""

    OPENED = "OrderOpened"
    PARTIALLY_MATCHED = "OrderPartiallyMatched"
    MATCHED = "OrderMatched"
    CLOSED = "OrderClosed"


@attrs.frozen(kw_only=True)
class OrderMatch:
    """One fill of a v2.1 order record; on the wire ``{"<matchId>": {...}}``."""

    match_id: int
    match_quantity: Decimal
    match_price: Decimal
    timestamp: int
    order_match_type: MatchType


attrs.resolve_types(OrderMatch)


def _decode_matches(value: Any) -> tuple[OrderMatch, ...]:
    matches: list[OrderMatch] = []
    for entry in value:
        for match_id, body in entry.items():
            matches.append(
                OrderMatch(
                    match_id=structure_int(match_id),
                    match_quantity=converter.structure(body["matchQuantity"], Decimal),
                    match_price=converter.structure(body["matchPrice"], Decimal),
                    timestamp=structure_int(body["timestamp"]),
                    order_match_type=converter.structure(body["orderMatchType"], MatchType),
                )
            )
    return tuple(matches)


def _encode_matches(matches: tuple[OrderMatch, ...]) -> list[dict[str, dict[str, str]]]:
    return [
        {
            str(m.match_id): {
                "matchQuantity": _unstructure_decimal_str(m.match_quantity),
                "matchPrice": _unstructure_decimal_str(m.match_price),
                "timestamp": str(m.timestamp),
                "orderMatchType": m.order_match_type.value,
            }
        }
        for m in matches
    ]


@_rest_model
@attrs.frozen(kw_only=True)
class OrderRecord:
    """One order of ``GET /v2.1/orders``: the latest state of an open or recently done order."""

    status: OrderRecordStatus
    order_id: int
    client_order_id: int | None = attrs.field(default=None, metadata=_OMIT)
    market_code: str
    side: Side
    order_type: OrderType
    price: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    last_traded_price: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    avg_fill_price: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    stop_price: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    limit_price: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    quantity: Decimal
    filled_quantity: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    remain_quantity: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    match_ids: tuple[OrderMatch, ...] | None = attrs.field(
        default=None, metadata=rest_meta(omit_none=True, codec=(_decode_matches, _encode_matches))
    )
    fees: dict[str, Decimal] | None = attrs.field(default=None, metadata=_OMIT)
    time_in_force: TimeInForce | None = attrs.field(default=None, metadata=_OMIT)
    is_triggered: bool | None = attrs.field(default=None, metadata=_OMIT)
    order_opened_timestamp: int | None = attrs.field(default=None, metadata=_OMIT)
    order_modified_timestamp: int | None = attrs.field(default=None, metadata=_OMIT)
    order_closed_timestamp: int | None = attrs.field(default=None, metadata=_OMIT)


@_rest_model
@attrs.frozen(kw_only=True)
class OrderRecordsReply:
    """``GET /v2.1/orders``: newest first."""

    event: str = "orders"
    timestamp: int
    account_id: str
    data: tuple[OrderRecord, ...]


@_rest_model
@attrs.frozen(kw_only=True)
class CancelAllAck:
    """The confirmation inside a cancel-all reply (``marketCode`` for the by-market form)."""

    market_code: str | None = attrs.field(default=None, metadata=_OMIT)
    msg: str


@_rest_model
@attrs.frozen(kw_only=True)
class CancelAllReply:
    """``DELETE /v2/cancel/orders[/{marketCode}]``; ``data`` is an object (formerly a list)."""

    event: str = "orders"
    timestamp: int
    account_id: str
    market_code: str | None = attrs.field(default=None, metadata=_OMIT)
    data: CancelAllAck = attrs.field(metadata=rest_meta(shape="one"))


class ResponseType(StrEnum):
    """``responseType`` of the REST order endpoints."""

    FULL = "FULL"
    ACK = "ACK"


@_rest_model
@attrs.frozen(kw_only=True)
class RestPlaceOrder:
    """One order of ``POST /v2/orders/place``."""

    client_order_id: int = attrs.field(metadata=rest_meta(raw=True))
    market_code: str
    side: Side
    quantity: Decimal
    time_in_force: TimeInForce | None = attrs.field(default=None, metadata=_OMIT)
    order_type: OrderType
    price: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    stop_price: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    limit_price: Decimal | None = attrs.field(default=None, metadata=_OMIT)


@_rest_model
@attrs.frozen(kw_only=True)
class RestModifyOrder:
    """One order of ``POST /v2/orders/modify`` (``orderId`` is a string on the wire)."""

    order_id: int
    market_code: str
    client_order_id: int | None = attrs.field(
        default=None, metadata=rest_meta(raw=True, omit_none=True)
    )
    side: Side | None = attrs.field(default=None, metadata=_OMIT)
    quantity: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    price: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    stop_price: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    limit_price: Decimal | None = attrs.field(default=None, metadata=_OMIT)


@_rest_model
@attrs.frozen(kw_only=True)
class RestCancelOrder:
    """One order of ``DELETE /v2/orders/cancel``: ``orderId`` or ``clientOrderId``."""

    market_code: str
    order_id: int | None = attrs.field(default=None, metadata=_OMIT)
    client_order_id: int | None = attrs.field(
        default=None, metadata=rest_meta(raw=True, omit_none=True)
    )


@_rest_model
@attrs.frozen(kw_only=True)
class PlaceOrdersRequest:
    """The body of ``POST /v2/orders/place`` (``timestamp`` is a STRING in its table)."""

    recv_window: int | None = attrs.field(
        default=None, metadata=rest_meta(raw=True, omit_none=True)
    )
    response_type: ResponseType = ResponseType.FULL
    timestamp: int | None = attrs.field(default=None, metadata=_OMIT)
    orders: tuple[RestPlaceOrder, ...]


@_rest_model
@attrs.frozen(kw_only=True)
class ModifyOrdersRequest:
    """The body of ``POST /v2/orders/modify``."""

    recv_window: int | None = attrs.field(
        default=None, metadata=rest_meta(raw=True, omit_none=True)
    )
    response_type: ResponseType = ResponseType.FULL
    timestamp: int | None = attrs.field(default=None, metadata=_OMIT)
    orders: tuple[RestModifyOrder, ...]


@_rest_model
@attrs.frozen(kw_only=True)
class CancelOrdersRequest:
    """The body of ``DELETE /v2/orders/cancel`` (``timestamp`` is a LONG in its table)."""

    recv_window: int | None = attrs.field(
        default=None, metadata=rest_meta(raw=True, omit_none=True)
    )
    response_type: ResponseType = ResponseType.FULL
    timestamp: int | None = attrs.field(default=None, metadata=rest_meta(raw=True, omit_none=True))
    orders: tuple[RestCancelOrder, ...]


@_rest_model
@attrs.frozen(kw_only=True)
class OrderResult:
    """One entry of a place/modify/cancel reply: an accepted order's state or a refusal.

    A refusal has ``success`` false with ``code`` and ``message``; the batch itself succeeded,
    so the client returns refusals as data rather than raising.
    """

    success: bool
    timestamp: int | None = attrs.field(default=None, metadata=_OMIT)
    code: str | None = attrs.field(default=None, metadata=_OMIT)
    message: str | None = attrs.field(default=None, metadata=_OMIT)
    client_order_id: int | None = attrs.field(default=None, metadata=_OMIT)
    order_id: int | None = attrs.field(default=None, metadata=_OMIT)
    price: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    quantity: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    side: Side | None = attrs.field(default=None, metadata=_OMIT)
    status: OrderStatus | None = attrs.field(default=None, metadata=_OMIT)
    market_code: str | None = attrs.field(default=None, metadata=_OMIT)
    time_in_force: TimeInForce | None = attrs.field(default=None, metadata=_OMIT)
    match_id: int | None = attrs.field(default=None, metadata=_OMIT)
    last_traded_price: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    match_quantity: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    order_match_type: MatchType | None = attrs.field(default=None, metadata=_OMIT)
    remain_quantity: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    notice: OrderNotice | None = attrs.field(default=None, metadata=_OMIT)
    order_type: OrderType | None = attrs.field(default=None, metadata=_OMIT)
    fees: Decimal | None = attrs.field(default=None, metadata=_OMIT)
    fee_instrument_id: str | None = attrs.field(default=None, metadata=_OMIT)
    is_triggered: bool | None = attrs.field(default=None, metadata=_OMIT)


@_rest_model
@attrs.frozen(kw_only=True)
class OrderResultsReply:
    """``POST /v2/orders/place`` (``placeOrder``), ``/modify`` (``modifyOrder``) and
    ``DELETE /v2/orders/cancel`` (``cancelOrder``)."""

    account_id: str
    event: str
    timestamp: int
    data: tuple[OrderResult, ...]


# --- delivery ---------------------------------------------------------------------------------


@_rest_model
@attrs.frozen(kw_only=True)
class DeliveryOrder:
    """One entry of the delivery history ``GET /v2.1/delivery/orders``."""

    timestamp: int
    instrument_id: str
    status: str
    quantity: Decimal | None = None
    deliver_price: Decimal
    transfer_asset: str
    transfer_qty: Decimal
    instrument_id_deliver: str
    deliver_qty: Decimal
    deliver_order_id: int
    client_order_id: int | None = None


@_rest_model
@attrs.frozen(kw_only=True)
class DeliveryOrdersReply:
    """``GET /v2.1/delivery/orders``."""

    event: str = "deliverOrders"
    timestamp: int
    data: tuple[DeliveryOrder, ...]


@_rest_model
@attrs.frozen(kw_only=True)
class DeliveryRequest:
    """The body of ``POST /v2.1/delivery/orders``."""

    instrument_id: str
    qty_deliver: Decimal


@_rest_model
@attrs.frozen(kw_only=True)
class DeliverySubmission:
    """The accepted delivery request in a ``POST /v2.1/delivery/orders`` reply."""

    deliver_order_id: int
    account_id: str
    client_order_id: int | None = None
    instrument_id: str
    deliver_price: Decimal
    deliver_position: Decimal
    deliver_type: str
    instrument_id_deliver: str
    deliver_qty: Decimal
    remaining_qty: Decimal
    remaining_position: Decimal
    transfer_asset: str
    transfer_qty: Decimal
    auction_time: int
    created: int
    last_updated: int
    status: str


@_rest_model
@attrs.frozen(kw_only=True)
class DeliverySubmitReply:
    """``POST /v2.1/delivery/orders``."""

    event: str = "delivery"
    timestamp: int
    account_id: str
    data: tuple[DeliverySubmission, ...] = attrs.field(metadata=rest_meta(shape="list"))


@_rest_model
@attrs.frozen(kw_only=True)
class DeliveryCancelReply:
    """``DELETE /v2.1/delivery/orders/{id}``: ``data`` holds the server's message."""

    event: str = "delivery"
    timestamp: int
    account_id: str
    data: tuple[str, ...]

    @property
    def cancelled(self) -> bool:
        """Whether the server reported the cancel as successful."""
        return DELIVERY_CANCEL_OK in self.data


@_rest_model
@attrs.frozen(kw_only=True)
class DeliverAuction:
    """One market of ``GET /v2.1/deliver-auction[/{instrumentId}]``."""

    instrument_id: str
    auction_time: int
    net_deliver: Decimal
    est_funding_rate: Decimal


@_rest_model
@attrs.frozen(kw_only=True)
class DeliverAuctionReply:
    """``GET /v2.1/deliver-auction[/{instrumentId}]``."""

    event: str = "deliverAuction"
    timestamp: int
    data: tuple[DeliverAuction, ...] = attrs.field(metadata=rest_meta(shape="list"))


# --- public market data -----------------------------------------------------------------------


@_rest_model
@attrs.frozen(kw_only=True)
class Market:
    """One market of ``GET /v2/all/markets`` (later form: ``listingDate``/``endDate`` ints)."""

    market_id: int | None = attrs.field(default=None, metadata=_OMIT)
    market_code: str
    name: str
    reference_pair: str | None = None
    base: str
    counter: str
    type: str
    tick_size: Decimal
    qty_increment: Decimal
    listing_date: int | None = attrs.field(default=None, metadata=rest_meta(raw=True))
    end_date: int | None = attrs.field(default=None, metadata=rest_meta(raw=True))
    margin_currency: str | None = None
    contract_val_currency: str | None = None
    upper_price_bound: Decimal | None = None
    lower_price_bound: Decimal | None = None
    market_price: Decimal | None = None
    market_price_last_updated: int | None = attrs.field(default=None, metadata=_OMIT)


@_rest_model
@attrs.frozen(kw_only=True)
class MarketsReply:
    """``GET /v2/all/markets``."""

    event: str = "markets"
    timestamp: int
    data: tuple[Market, ...]


@_rest_model
@attrs.frozen(kw_only=True)
class Asset:
    """One asset (coin or contract) of ``GET /v2/all/assets``."""

    instrument_id: str
    name: str
    base: str | None = None
    counter: str | None = None
    type: str
    margin_currency: str | None = None
    contract_val_currency: str | None = None
    delivery_date: str | None = None
    delivery_instrument: str | None = None


@_rest_model
@attrs.frozen(kw_only=True)
class AssetsReply:
    """``GET /v2/all/assets``."""

    event: str = "assets"
    timestamp: int
    data: tuple[Asset, ...]


@_rest_model
@attrs.frozen(kw_only=True)
class PublicTrade:
    """One trade of ``GET /v2/publictrades/{marketCode}`` (``side`` is the taker's)."""

    match_id: int
    match_quantity: Decimal
    match_price: Decimal
    side: Side
    match_timestamp: int


@_rest_model
@attrs.frozen(kw_only=True)
class PublicTradesReply:
    """``GET /v2/publictrades/{marketCode}``."""

    event: str = "publicTrades"
    timestamp: int
    market_code: str
    data: tuple[PublicTrade, ...]


@_rest_model
@attrs.frozen(kw_only=True)
class Ticker:
    """One market of ``GET /v2/ticker``."""

    market_code: str
    last: Decimal | None = None
    mark_price: Decimal | None = None
    open24h: Decimal | None = None
    volume24h: Decimal | None = None
    currency_volume24h: Decimal | None = None
    high24h: Decimal | None = None
    low24h: Decimal | None = None
    open_interest: Decimal | None = None
    last_qty: Decimal | None = None


@_rest_model
@attrs.frozen(kw_only=True)
class TickerReply:
    """``GET /v2/ticker``."""

    event: str = "ticker"
    timestamp: int
    data: tuple[Ticker, ...]


@_rest_model
@attrs.frozen(kw_only=True)
class DepthSnapshot:
    """A book snapshot: ``[price, quantity]`` pairs as JSON numbers, best first."""

    asks: tuple[tuple[Decimal, Decimal], ...] = attrs.field(metadata=rest_meta(raw=True))
    bids: tuple[tuple[Decimal, Decimal], ...] = attrs.field(metadata=rest_meta(raw=True))
    market_code: str
    timestamp: int


@_rest_model
@attrs.frozen(kw_only=True)
class DepthReply:
    """``GET /v2/depth/{marketCode}/{level}``; ``event`` is ``depthL<level>``."""

    event: str
    timestamp: int
    data: tuple[DepthSnapshot, ...] = attrs.field(metadata=rest_meta(shape="list"))


@_rest_model
@attrs.frozen(kw_only=True)
class Candle:
    """One candle of ``GET /v2/candles/{marketCode}``; ``timestamp`` is its start."""

    timestamp: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume24h: Decimal
    currency_volume24h: Decimal


@_rest_model
@attrs.frozen(kw_only=True)
class CandlesReply:
    """``GET /v2/candles/{marketCode}``."""

    event: str = "candles"
    timestamp: int
    timeframe: CandleGranularity
    data: tuple[Candle, ...]


@_rest_model
@attrs.frozen(kw_only=True)
class FundingRate:
    """One funding record of ``GET /v2/funding-rates/{marketCode}``."""

    funding_rate: Decimal
    index: Decimal
    mark_price: Decimal
    market_code: str
    timestamp: int


@_rest_model
@attrs.frozen(kw_only=True)
class FundingRatesReply:
    """``GET /v2/funding-rates/{marketCode}``: newest first."""

    event: str = "fundingRates"
    timestamp: int
    data: tuple[FundingRate, ...]


_FUNDING_TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"


def _decode_funding_time(value: Any) -> int:
    if isinstance(value, str) and not value.isdigit():
        parsed = datetime.strptime(value, _FUNDING_TIME_FORMAT).replace(tzinfo=UTC)
        return int(parsed.timestamp()) * 1000
    return structure_int(value)


def _encode_funding_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime(_FUNDING_TIME_FORMAT)


_FUNDING_TIME: Final = rest_meta(codec=(_decode_funding_time, _encode_funding_time))


@_rest_model
@attrs.frozen(kw_only=True)
class PublicFunding:
    """One entry of ``GET /v2/delivery/public/funding`` (a bare JSON list).

    ``timestamp`` is ``"YYYY-MM-DD hh:mm:ss"`` (UTC) on the wire and milliseconds here.
    """

    timestamp: int = attrs.field(metadata=_FUNDING_TIME)
    instrument_id: str
    funding_rate: Decimal


# --- query parameters -------------------------------------------------------------------------


@_rest_model
@attrs.frozen(kw_only=True)
class TimeWindowQuery:
    """``limit``/``startTime``/``endTime`` of own trades, public trades, delivery orders and
    funding rates."""

    limit: int | None = attrs.field(default=None, metadata=_OMIT)
    start_time: int | None = attrs.field(default=None, metadata=_OMIT)
    end_time: int | None = attrs.field(default=None, metadata=_OMIT)


@_rest_model
@attrs.frozen(kw_only=True)
class OrdersQuery:
    """The query of ``GET /v2.1/orders``."""

    market_code: str | None = attrs.field(default=None, metadata=_OMIT)
    order_id: int | None = attrs.field(default=None, metadata=_OMIT)
    client_order_id: int | None = attrs.field(default=None, metadata=_OMIT)
    limit: int | None = attrs.field(default=None, metadata=_OMIT)
    start_time: int | None = attrs.field(default=None, metadata=_OMIT)
    end_time: int | None = attrs.field(default=None, metadata=_OMIT)


@_rest_model
@attrs.frozen(kw_only=True)
class CandlesQuery:
    """The query of ``GET /v2/candles/{marketCode}``."""

    timeframe: CandleGranularity | None = attrs.field(default=None, metadata=_OMIT)
    limit: int | None = attrs.field(default=None, metadata=_OMIT)
    start_time: int | None = attrs.field(default=None, metadata=_OMIT)
    end_time: int | None = attrs.field(default=None, metadata=_OMIT)


_FUNDING_TIME_OPT: Final = rest_meta(
    omit_none=True, codec=(_decode_funding_time, _encode_funding_time)
)


@_rest_model
@attrs.frozen(kw_only=True)
class PublicFundingQuery:
    """The query of ``GET /v2/delivery/public/funding`` (times go out as datetime strings)."""

    instrument_id: str | None = attrs.field(default=None, metadata=_OMIT)
    limit: int | None = attrs.field(default=None, metadata=_OMIT)
    start_time: int | None = attrs.field(default=None, metadata=_FUNDING_TIME_OPT)
    end_time: int | None = attrs.field(default=None, metadata=_FUNDING_TIME_OPT)
