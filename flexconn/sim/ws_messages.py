"""Every message the simulator's WebSocket server sends, built from engine data (sans-IO).

Shapes follow the later WebSocket document (field names, key order, strings where it shows
strings); where an example contradicts the parameter table, the table wins. Decisions:

* ``tag`` is echoed as a string when the request carried one (``1`` -> ``"1"``), else omitted.
* Timestamps are millisecond strings, except ``seqNum``/``checksum`` and the numeric fields of
  the ``CANCEL``/``AMEND`` failure notices, which the document shows as JSON numbers.
* Decimals are written positionally without trailing zeros (``Decimal("9600.0")`` -> ``"9600"``).
* Order notices name stop orders ``STOP_LIMIT`` (the later spelling) unless the order was placed
  as ``STOP`` (the 2020-12 spelling): a client reads back the spelling it used.
* ``isTriggered`` is the string ``"True"``/``"False"`` in notices and a boolean in failure
  notices, as documented. MARKET orders carry no ``price`` and no ``timeInForce``.
* The trade channel's ``side`` is the taker's side in lower case, as both documents show it.

Depth checksum. Every ``depth``/``depthL5``/``depthL10``/``depthL25`` message carries
``checksum``: the CRC-32 (``zlib.crc32``, unsigned, 0..2**32-1) of the UTF-8 string formed by
interleaving the message's own levels, best first: ``bid1price:bid1qty:ask1price:ask1qty:
bid2price:...``, each number written exactly as in the message's JSON text; when one side is
longer its extra levels continue the string alone. An empty book has checksum 0. A client checks
it by rebuilding the string from the levels it decoded (formatting each number as the exact
decimal it received) and comparing ``zlib.crc32``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

import orjson

from flexconn._codec import plain_decimal as dec
from flexconn.models.enums import OrderType
from flexconn.sim.orders import Order, OrderMatched, PublicTrade

__all__ = [
    "STOP_LIMIT",
    "DepthBody",
    "cancel_all_notice",
    "command_failure",
    "command_success",
    "dec",
    "depth_body",
    "depth_checksum",
    "depth_message",
    "depth_payload",
    "dumps",
    "failure_notice",
    "futures_depth_message",
    "login_failure",
    "login_success",
    "order_notice",
    "order_rejected",
    "subscription_failure",
    "subscription_success",
    "table",
    "trade_payload",
]

#: The later documents' spelling of a stop-limit order type.
STOP_LIMIT: Final = "STOP_LIMIT"

dumps = orjson.dumps


def _tagged(message: dict[str, Any], tag: str | None) -> dict[str, Any]:
    if tag is not None:
        message["tag"] = tag
    return message


# --- replies ---------------------------------------------------------------------------------


def login_success(tag: str | None, ts: int) -> dict[str, Any]:
    """``{"event":"login","success":true,"tag":..,"timestamp":..}``."""
    return {**_tagged({"event": "login", "success": True}, tag), "timestamp": str(ts)}


def login_failure(tag: str | None, code: str, message: str, ts: int) -> dict[str, Any]:
    """The login failure reply: event, success, code, message, tag, timestamp."""
    reply = {"event": "login", "success": False, "code": code, "message": message}
    return {**_tagged(reply, tag), "timestamp": str(ts)}


def subscription_success(event: str, tag: str | None, channel: str, ts: int) -> dict[str, Any]:
    """One (un)subscribe success reply: event, success, tag, channel, timestamp."""
    reply = _tagged({"event": event, "success": True}, tag)
    reply["channel"] = channel
    reply["timestamp"] = str(ts)
    return reply


def subscription_failure(
    event: str, tag: str | None, code: str, message: str, ts: int
) -> dict[str, Any]:
    """The generic failure reply (subscriptions, unknown ops, malformed messages).

    Event, success, tag, message, code, timestamp; ``event`` is the request's op, or ``"error"``
    when the message had none that could be read.
    """
    reply = _tagged({"event": event, "success": False}, tag)
    reply["message"] = message
    reply["code"] = code
    reply["timestamp"] = str(ts)
    return reply


def command_success(
    event: str, tag: str | None, ts: int, data: Mapping[str, Any]
) -> dict[str, Any]:
    """An order command's success reply: event, submitted, tag, timestamp, data."""
    reply = _tagged({"event": event, "submitted": True}, tag)
    reply["timestamp"] = str(ts)
    reply["data"] = data
    return reply


def command_failure(
    event: str, tag: str | None, code: str, message: str, ts: int, data: Mapping[str, Any]
) -> dict[str, Any]:
    """An order command's failure reply: event, submitted, tag, message, code, timestamp, data."""
    reply = _tagged({"event": event, "submitted": False}, tag)
    reply["message"] = message
    reply["code"] = code
    reply["timestamp"] = str(ts)
    reply["data"] = data
    return reply


# --- order channel ---------------------------------------------------------------------------


def type_name(order_type: OrderType, stop_name: str = STOP_LIMIT) -> str:
    """The wire name of an order type; ``stop_name`` picks the stop spelling."""
    return stop_name if order_type is OrderType.STOP else order_type.value


def order_notice(
    notice: str,
    order: Order,
    *,
    stop_name: str = STOP_LIMIT,
    status: str | None = None,
    match: OrderMatched | None = None,
) -> dict[str, Any]:
    """One entry of an order-channel message (``OrderOpened``, ``OrderClosed``...).

    Args:
        notice: the ``notice`` value.
        order: the order's state.
        stop_name: how to spell a stop order's type.
        status: overrides the order's status (``OrderClosed`` carries the closing reason).
        match: for ``OrderMatched``, the match details.
    """
    kind = order.order_type
    entry: dict[str, Any] = {"notice": notice, "accountId": order.account_id}
    if order.client_order_id is not None:
        entry["clientOrderId"] = str(order.client_order_id)
    entry["orderId"] = str(order.order_id)
    if kind is OrderType.LIMIT and order.price is not None:
        entry["price"] = dec(order.price)
    entry["quantity"] = dec(order.quantity)
    entry["side"] = order.side.value
    entry["status"] = status if status is not None else order.status.value
    entry["marketCode"] = order.market_code
    if kind is not OrderType.MARKET:
        entry["timeInForce"] = order.time_in_force.value
    entry["timestamp"] = str(order.timestamp)
    if match is not None:
        entry["matchId"] = str(match.match_id)
        entry["matchPrice"] = dec(match.match_price)
        entry["matchQuantity"] = dec(match.match_quantity)
        entry["orderMatchType"] = match.match_type.value
    if notice in ("OrderClosed", "OrderMatched"):
        entry["remainQuantity"] = dec(order.remaining)
    if kind is OrderType.STOP:
        if order.stop_price is not None:
            entry["stopPrice"] = dec(order.stop_price)
        if order.limit_price is not None:
            entry["limitPrice"] = dec(order.limit_price)
    entry["orderType"] = type_name(kind, stop_name)
    if match is not None:
        entry["fees"] = dec(match.fees)
        entry["feeInstrumentId"] = match.fee_instrument
    entry["isTriggered"] = "True" if order.triggered else "False"
    return entry


def table(name: str, data: list[Any]) -> dict[str, Any]:
    """``{"table": name, "data": data}``."""
    return {"table": name, "data": data}


def order_rejected(
    status: str,
    ts: int,
    *,
    account_id: str,
    fields: Mapping[str, str],
) -> dict[str, Any]:
    """A 2020-12 ``OrderRejected`` order-channel entry: notice, accountId, the request's own
    identifying fields (strings), status, timestamp."""
    entry: dict[str, Any] = {"notice": "OrderRejected", "accountId": account_id}
    entry.update(fields)
    entry["status"] = status
    entry["timestamp"] = str(ts)
    return entry


def failure_notice(
    event: str,
    status: str,
    ts: int,
    *,
    order_id: int | None,
    market_code: str,
    client_order_id: int | None = None,
    side: str | None = None,
    order_type: str = "LIMIT",
    time_in_force: str = "GTC",
    price: Decimal | None = None,
    quantity: Decimal | None = None,
) -> dict[str, Any]:
    """The ``CANCEL``/``AMEND`` failure notice: an order that could not be closed or modified
    because it is no longer open. Numbers are JSON numbers, as documented; fields the server
    cannot know (the side of an order it never saw) are omitted."""
    data: dict[str, Any] = {}
    if client_order_id is not None:
        data["clientOrderId"] = client_order_id
    if order_id is not None:
        data["orderId"] = order_id
    qty = float(quantity) if quantity is not None else 0.0
    data["displayQuantity"] = qty
    data["lastMatchPrice"] = 0.0
    data["lastMatchQuantity"] = 0.0
    data["lastMatchedOrderId"] = 0
    data["lastMatchedOrderId2"] = 0
    data["matchedId"] = 0
    data["matchedType"] = "MAKER"
    data["remainQuantity"] = 0.0
    if side is not None:
        data["side"] = side
    data["status"] = status
    data["timeCondition"] = time_in_force
    data["marketCode"] = market_code
    data["timestampEpochMs"] = ts
    data["orderType"] = order_type
    data["price"] = float(price) if price is not None else 0.0
    data["quantity"] = qty
    data["isTriggered"] = False
    return {
        "event": event,
        "submitted": False,
        "message": f"Order request was rejected : {status}",
        "code": "100004",
        "timestamp": str(ts),
        "data": data,
    }


def cancel_all_notice(ts: int) -> dict[str, Any]:
    """``{"event":"CANCEL","submitted":true,"timestamp":..}`` after a REST cancel-all."""
    return {"event": "CANCEL", "submitted": True, "timestamp": str(ts)}


# --- public channels -------------------------------------------------------------------------


def trade_payload(trades: Sequence[PublicTrade]) -> bytes:
    """One trade-channel message carrying ``trades`` (all of one market)."""
    return dumps(
        {
            "table": "trade",
            "data": [
                {
                    "side": t.side.value.lower(),
                    "tradeId": str(t.trade_id),
                    "price": dec(t.price),
                    "quantity": dec(t.quantity),
                    "marketCode": t.market_code,
                    "timestamp": str(t.timestamp),
                }
                for t in trades
            ],
        }
    )


Levels = Iterable[tuple[Decimal, Decimal]]


def _level_texts(levels: Levels) -> list[tuple[str, str]]:
    return [(dec(price), dec(qty)) for price, qty in levels]


def depth_checksum(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> int:
    """The checksum of a depth message's levels, given as their JSON number texts."""
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts.extend(bids[i])
        if i < len(asks):
            parts.extend(asks[i])
    return zlib.crc32(":".join(parts).encode())


class DepthBody:
    """The encoded levels of one book snapshot, reusable while the book does not change.

    ``asks``/``bids`` are the JSON arrays' text (numbers for the later ``depth`` channels,
    strings for 2020-12 ``futures/depth``) and ``checksum`` the later channels' checksum.
    """

    __slots__ = ("asks", "bids", "checksum")

    def __init__(self, asks: str, bids: str, checksum: int) -> None:
        self.asks = asks
        self.bids = bids
        self.checksum = checksum


def depth_body(bids: Levels, asks: Levels, *, strings: bool = False) -> DepthBody:
    """Encode a snapshot's levels once (``strings``: the 2020-12 four-string form)."""
    bid_texts = _level_texts(bids)
    ask_texts = _level_texts(asks)
    if strings:
        level = '["{}","{}","0","0"]'
        checksum = 0
    else:
        level = "[{},{},0,0]"
        checksum = depth_checksum(bid_texts, ask_texts)
    return DepthBody(
        ",".join(level.format(p, q) for p, q in ask_texts),
        ",".join(level.format(p, q) for p, q in bid_texts),
        checksum,
    )


def depth_message(
    market_code: str, seq_num: int, ts: int, body: DepthBody, *, table: str = "depth"
) -> bytes:
    """A later-era depth message: numbers as JSON numbers, with checksum.

    ``table`` is the subscribed channel's name (``depth``, ``depthL5``, ``depthL10`` or
    ``depthL25``): the document's field table lists ``depth`` for its ``depth`` example, and
    naming the variant lets a client subscribed to two variants of one market tell them apart.
    """
    # Market codes are plain ASCII identifiers, so no JSON escaping is needed.
    return (
        f'{{"table":"{table}","data":[{{"instrumentId":"{market_code}","seqNum":{seq_num},'
        f'"timestamp":"{ts}","checksum":{body.checksum},"asks":[{body.asks}],'
        f'"bids":[{body.bids}]}}]}}'
    ).encode()


def futures_depth_message(market_code: str, ts: int, body: DepthBody) -> bytes:
    """A 2020-12 ``futures/depth`` message: levels as four strings, no seqNum or checksum."""
    return (
        f'{{"table":"futures/depth","data":[{{"asks":[{body.asks}],"bids":[{body.bids}],'
        f'"instrumentId":"{market_code}","timestamp":"{ts}"}}]}}'
    ).encode()


def depth_payload(market_code: str, seq_num: int, ts: int, bids: Levels, asks: Levels) -> bytes:
    """A later-era depth message built straight from levels."""
    return depth_message(market_code, seq_num, ts, depth_body(bids, asks))
