"""Decode the exchange's frames into exactly one typed message each (sans-IO).

:func:`decode` takes a text (or bytes) frame and returns one message object. It never returns
``None`` and never drops a frame:

* the text frame ``pong`` -> :class:`~flexconn.models.Pong`;
* ``{"table": ...}`` -> the channel update for that table (unknown table: ``UnknownMessage``);
* ``{"event": ...}`` -> the reply or notice for that event (unknown event: ``UnknownMessage``);
* an object with a ``nonce`` and neither ``table`` nor ``event`` -> :class:`Greeting`: the
  documents' examples show the exchange greeting a new connection with such an object before any
  command (clients wait for it before logging in); only the ``nonce`` is known, so only it is kept;
* any other JSON object -> :class:`UnknownMessage` (raw frame and parsed payload);
* anything malformed (not JSON, not an object, or a known table/event whose fields cannot be read)
  raises :class:`~flexconn.errors.RemoteProtocolError` carrying the raw frame. This module is the
  one place where structuring errors (``KeyError``, ``ValueError``, cattrs errors...) are
  translated; none escapes.

Routing rule (what the connection manager does with a message):

* **Channel updates** (:class:`~flexconn.models.ChannelUpdate` subclasses) route by subscription
  key ``<channel>:<selector>``: ``update.channel`` is the subscription name (``trade``,
  ``depthL25``, ``futures/depth``, ``candles60s``, ``ticker``, ``market``, ``balance``,
  ``position``, ``order``) and each item's selector is its market code (``market_code``; wire
  ``marketCode`` or ``instrumentId``), its asset (``Balance.instrument_id``), or ``all`` for an
  order notice without a market. ``update.split()`` gives ``(key, update)`` pairs, one per key.
  Channels in :data:`flexconn.channels.WILDCARD_CHANNELS` also deliver every key to the
  ``<channel>:all`` subscription.
* **Order notices sent as events** route to the order channel: an :class:`OrderFailureNotice`
  to ``order:<its market code>`` (else ``order:all``), a :class:`CancelAllNotice` to ``order:all``.
* **Replies** correlate with their command by ``event`` and ``tag`` (``LoginReply``,
  ``SubscribeReply``/``UnsubscribeReply`` also by ``channels``, ``OrderReply`` by ``action`` and
  ``tag``); an :class:`ErrorReply` may carry no tag at all.
* **Connection messages** (``Pong``, ``Greeting``) and ``UnknownMessage`` go to the connection.

:mod:`flexconn.protocol.routing` implements these rules as functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeAlias

import attrs
import orjson

from flexconn.errors import RemoteProtocolError
from flexconn.models.account import BalanceUpdate, PositionUpdate
from flexconn.models.enums import CandleGranularity, DepthLevel
from flexconn.models.market import (
    Candle,
    CandleUpdate,
    DepthSnapshot,
    DepthUpdate,
    MarketInfo,
    MarketUpdate,
    Ticker,
    TickerUpdate,
    Trade,
    TradeUpdate,
    check_raw_levels,
    parse_depth_timestamp,
)
from flexconn.models.notices import (
    CancelAllNotice,
    OrderEvent,
    OrderFailureNotice,
    OrderUpdate,
)
from flexconn.models.replies import (
    ErrorReply,
    Greeting,
    LoginReply,
    OrderReply,
    Pong,
    SubscribeReply,
    UnknownMessage,
    UnsubscribeReply,
)
from flexconn.protocol.codec import converter, describe_error, structure_int, structure_str

__all__ = ["PONG_FRAME", "ChannelMessage", "Message", "decode", "encode_message"]

#: The text frame answering a text ``ping``.
PONG_FRAME: Final = "pong"

#: Every channel update :func:`decode` produces.
ChannelMessage: TypeAlias = (
    DepthUpdate
    | TradeUpdate
    | TickerUpdate
    | CandleUpdate
    | MarketUpdate
    | BalanceUpdate
    | PositionUpdate
    | OrderUpdate
)

#: Everything :func:`decode` returns.
Message: TypeAlias = (
    ChannelMessage
    | LoginReply
    | SubscribeReply
    | UnsubscribeReply
    | OrderReply
    | ErrorReply
    | OrderFailureNotice
    | CancelAllNotice
    | Pong
    | Greeting
    | UnknownMessage
)

_PONG: Final = Pong()

_Handler: TypeAlias = Callable[[dict[str, Any]], Message]


_ITEM_HOOKS: dict[Any, Callable[[Any, Any], Any]] = {}


def _items(obj: dict[str, Any], cls: Any) -> tuple[Any, ...]:
    data = obj["data"]
    if type(data) is not list:
        raise TypeError("data must be a list")
    hook = _ITEM_HOOKS.get(cls)
    if hook is None:
        hook = _ITEM_HOOKS[cls] = converter.get_structure_hook(cls)
    if len(data) == 1:  # the common case, without building a comprehension
        return (hook(data[0], cls),)
    return tuple([hook(item, cls) for item in data])


def _snapshot(item: Any, level: DepthLevel) -> DepthSnapshot:
    if type(item) is not dict:
        raise TypeError("a depth snapshot must be an object")
    asks = item["asks"]
    bids = item["bids"]
    numeric = check_raw_levels(asks)
    numeric = check_raw_levels(bids) and numeric
    market = item.get("instrumentId")
    if market is None:
        market = item["marketCode"]
    seq_num = item.get("seqNum")
    checksum = item.get("checksum")
    snapshot = DepthSnapshot(
        market_code=structure_str(market),
        level=level,
        timestamp=parse_depth_timestamp(item["timestamp"]),
        seq_num=None if seq_num is None else structure_int(seq_num),
        checksum=None if checksum is None else structure_int(checksum),
        raw_asks=asks,
        raw_bids=bids,
    )
    if not numeric:
        # String levels (2020-12) are converted now: that is how they are validated.
        _ = snapshot.asks, snapshot.bids
    return snapshot


def _depth_handler(level: DepthLevel) -> _Handler:
    def handle(obj: dict[str, Any]) -> DepthUpdate:
        data = obj["data"]
        if type(data) is not list:
            raise TypeError("data must be a list")
        return DepthUpdate(level=level, data=tuple([_snapshot(item, level) for item in data]))

    return handle


def _candle_handler(granularity: CandleGranularity) -> _Handler:
    def handle(obj: dict[str, Any]) -> CandleUpdate:
        return CandleUpdate(granularity=granularity, data=_items(obj, Candle))

    return handle


def _account_handler(cls: type[BalanceUpdate] | type[PositionUpdate]) -> _Handler:
    def handle(obj: dict[str, Any]) -> Message:
        # Structured whole: accountId, timestamp (and tradeType) sit beside ``data``.
        if type(obj["data"]) is not list:
            raise TypeError("data must be a list")
        result: BalanceUpdate | PositionUpdate = converter.structure(obj, cls)
        return result

    return handle


def _items_handler(update_cls: type[Any], item_cls: Any) -> _Handler:
    # ``update_cls(data=...)`` without the keyword-call overhead: the update classes have no
    # validators, so setting the two slots directly is what their __init__ does.
    new = object.__new__
    set_data = update_cls.data.__set__
    set_table = update_cls.table.__set__
    table = attrs.fields(update_cls).table.default

    def handle(obj: dict[str, Any]) -> Message:
        update: Message = new(update_cls)
        set_data(update, _items(obj, item_cls))
        set_table(update, table)
        return update

    return handle


_TABLES: Final[dict[str, _Handler]] = {
    "trade": _items_handler(TradeUpdate, Trade),
    "ticker": _items_handler(TickerUpdate, Ticker),
    "market": _items_handler(MarketUpdate, MarketInfo),
    "order": _items_handler(OrderUpdate, OrderEvent),
    "balance": _account_handler(BalanceUpdate),
    "position": _account_handler(PositionUpdate),
    **{level.value: _depth_handler(level) for level in DepthLevel},
    # The table is ``candle60s``; ``candles60s`` (the channel name) is accepted too.
    **{f"candle{g.value}": _candle_handler(g) for g in CandleGranularity},
    **{f"candles{g.value}": _candle_handler(g) for g in CandleGranularity},
}


def _structured(cls: type[Any]) -> _Handler:
    def handle(obj: dict[str, Any]) -> Message:
        result: Message = converter.structure(obj, cls)
        return result

    return handle


def _cancel_event(obj: dict[str, Any]) -> Message:
    if obj.get("data") is None:
        result: Message = converter.structure(obj, CancelAllNotice)
    else:
        result = converter.structure(obj, OrderFailureNotice)
    return result


_EVENTS: Final[dict[str, _Handler]] = {
    "login": _structured(LoginReply),
    "subscribe": _structured(SubscribeReply),
    "unsubscribe": _structured(UnsubscribeReply),
    "placeorder": _structured(OrderReply),
    "cancelorder": _structured(OrderReply),
    "modifyorder": _structured(OrderReply),
    "placeorders": _structured(OrderReply),
    "cancelorders": _structured(OrderReply),
    "modifyorders": _structured(OrderReply),
    "error": _structured(ErrorReply),
    "CANCEL": _cancel_event,
    "AMEND": _structured(OrderFailureNotice),
}


def _route(obj: dict[str, Any], frame: str | bytes) -> Message:
    table = obj.get("table")
    if table is not None:
        handler = _TABLES.get(table) if isinstance(table, str) else None
        if handler is None:
            return UnknownMessage(raw=frame, payload=obj)
        return handler(obj)
    event = obj.get("event")
    if event is not None:
        handler = None
        if isinstance(event, str):
            handler = _EVENTS.get(event) or _EVENTS.get(event.lower())
        if handler is None:
            return UnknownMessage(raw=frame, payload=obj)
        return handler(obj)
    if "nonce" in obj:
        return Greeting(nonce=structure_str(obj["nonce"]))
    return UnknownMessage(raw=frame, payload=obj)


def decode(frame: str | bytes) -> Message:
    """Decode one frame from the exchange into one typed message (see the module notes).

    Raises:
        RemoteProtocolError: the frame is malformed; ``raw`` holds it unchanged.
    """
    if frame == PONG_FRAME or frame == b"pong":
        return _PONG
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        if isinstance(frame, str | bytes) and frame.strip() in (PONG_FRAME, b"pong"):
            return _PONG
        raise RemoteProtocolError(f"frame is not JSON: {exc}", frame) from None
    except TypeError:
        raise RemoteProtocolError("frame is neither text nor bytes", frame) from None
    if type(obj) is not dict:
        raise RemoteProtocolError(f"frame is JSON but not an object: {type(obj).__name__}", frame)
    try:
        return _route(obj, frame)
    except Exception as exc:  # the one boundary: any structuring failure is the peer's fault
        what = obj.get("table") or obj.get("event")
        raise RemoteProtocolError(
            f"malformed {what!r} message: {describe_error(exc)}", frame
        ) from exc


def encode_message(message: Message) -> str:
    """The text frame the exchange would send for ``message`` (the simulator's side).

    Channel updates use the later API's form (numeric depth levels with ``seqNum``/``checksum``)
    except ``futures/depth``, which keeps its 2020-12 form. ``UnknownMessage`` is sent as received.
    """
    if isinstance(message, Pong):
        return PONG_FRAME
    if isinstance(message, UnknownMessage):
        raw = message.raw
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return orjson.dumps(converter.unstructure(message)).decode()
