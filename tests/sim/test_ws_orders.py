"""Order commands over the WebSocket: replies, order-channel notices and every error code."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
import trio
import trio.testing
from conftest import Client, Json, connect
from hypothesis import given
from hypothesis import strategies as st

from flexconn.errors import ERROR_CODES
from flexconn.models.enums import OrderType, Side
from flexconn.sim import DEFAULT_MARKETS, Simulator
from flexconn.sim.ws_validate import (
    ModifyCommand,
    PlaceCommand,
    Rejection,
    parse_cancel,
    parse_modify,
    parse_place,
)

MARKET = "BTC-USD-SWAP-LIN"


def limit(
    side: str = "BUY", price: Any = 40000, quantity: Any = 1.5, **extra: Any
) -> dict[str, Any]:
    return {
        "clientOrderId": 1,
        "marketCode": MARKET,
        "side": side,
        "orderType": "LIMIT",
        "quantity": quantity,
        "timeInForce": "GTC",
        "price": price,
        **extra,
    }


async def place(client: Client, data: dict[str, Any], *, tag: int = 123) -> Json:
    await client.send({"op": "placeorder", "tag": tag, "data": data})
    return await client.reply("placeorder")


async def notice(client: Client, kind: str) -> Json:
    message = await client.recv_until(
        lambda m: m.get("table") == "order" and m["data"][0]["notice"] == kind
    )
    assert len(message["data"]) == 1
    entry: Json = message["data"][0]
    return entry


def _failure_keys(reply: Json) -> None:
    assert list(reply) == ["event", "submitted", "tag", "message", "code", "timestamp", "data"]
    assert reply["submitted"] is False


# --- placeorder --------------------------------------------------------------------------------


async def test_limit_order_reply_and_order_opened_notice(trader: Client) -> None:
    await trader.subscribe("order:all")
    reply = await place(trader, limit())
    assert list(reply) == ["event", "submitted", "tag", "timestamp", "data"]
    assert reply["event"] == "placeorder"
    assert reply["submitted"] is True
    assert reply["tag"] == "123"
    data = reply["data"]
    order_id = data.pop("orderId")
    assert order_id.isdigit()
    assert data == {
        "clientOrderId": "1",
        "marketCode": MARKET,
        "side": "BUY",
        "orderType": "LIMIT",
        "quantity": "1.5",
        "timeInForce": "GTC",
        "price": "40000",
        "source": 0,
    }
    opened = await notice(trader, "OrderOpened")
    assert opened == {
        "notice": "OrderOpened",
        "accountId": "1001",
        "clientOrderId": "1",
        "orderId": order_id,
        "price": "40000",
        "quantity": "1.5",
        "side": "BUY",
        "status": "OPEN",
        "marketCode": MARKET,
        "timeInForce": "GTC",
        "timestamp": opened["timestamp"],
        "orderType": "LIMIT",
        "isTriggered": "False",
    }


async def test_market_order_against_a_resting_order_matches_both_sides(
    sim: Simulator, trader: Client
) -> None:
    await trader.subscribe("order:all", f"trade:{MARKET}")
    resting = await place(trader, limit("SELL", price=50000, quantity=2))
    await notice(trader, "OrderOpened")
    reply = await place(
        trader,
        {
            "clientOrderId": 2,
            "marketCode": MARKET,
            "side": "BUY",
            "orderType": "MARKET",
            "quantity": 0.5,
        },
    )
    assert reply["data"] == {
        "clientOrderId": "2",
        "marketCode": MARKET,
        "side": "BUY",
        "orderType": "MARKET",
        "quantity": "0.5",
        "orderId": reply["data"]["orderId"],
        "source": 0,
    }
    opened = await notice(trader, "OrderOpened")
    assert "price" not in opened and "timeInForce" not in opened
    taker = await notice(trader, "OrderMatched")
    maker = await notice(trader, "OrderMatched")
    assert taker["orderId"] == reply["data"]["orderId"]
    assert taker["orderMatchType"] == "TAKER" and taker["status"] == "FILLED"
    assert maker["orderId"] == resting["data"]["orderId"]
    assert maker["orderMatchType"] == "MAKER" and maker["status"] == "PARTIAL_FILL"
    assert maker["matchId"] == taker["matchId"]
    assert maker["matchPrice"] == "50000" and maker["matchQuantity"] == "0.5"
    assert maker["remainQuantity"] == "1.5"
    assert maker["feeInstrumentId"] == "USD"
    assert Decimal(maker["fees"]) == Decimal("5")
    assert list(maker)[-1] == "isTriggered"
    trade = await trader.table("trade")
    assert trade["data"] == [
        {
            "side": "buy",
            "tradeId": taker["matchId"],
            "price": "50000",
            "quantity": "0.5",
            "marketCode": MARKET,
            "timestamp": trade["data"][0]["timestamp"],
        }
    ]


@pytest.mark.parametrize("spelling", ["STOP_LIMIT", "STOP"])
async def test_stop_limit_order_echoes_and_notices_its_spelling(
    trader: Client, spelling: str
) -> None:
    await trader.subscribe("order:all")
    data = {
        "clientOrderId": 1,
        "marketCode": MARKET,
        "side": "BUY",
        "orderType": spelling,
        "quantity": 10,
        "timeInForce": "MAKER_ONLY_REPRICE",
        "stopPrice": 60000,
        "limitPrice": 60010,
    }
    reply = await place(trader, data)
    assert reply["submitted"] is True
    assert reply["data"]["orderType"] == spelling
    assert reply["data"]["stopPrice"] == "60000" and reply["data"]["limitPrice"] == "60010"
    opened = await notice(trader, "OrderOpened")
    assert opened["orderType"] == spelling
    assert opened["stopPrice"] == "60000" and opened["limitPrice"] == "60010"
    assert "price" not in opened
    assert opened["isTriggered"] == "False"


async def test_batch_place_replies_per_order_in_order(trader: Client) -> None:
    await trader.send(
        {
            "op": "placeorders",
            "tag": 9,
            "dataArray": [
                limit(price=40000),
                limit(side="HOLD"),
                limit(price=40001, clientOrderId=3),
            ],
        }
    )
    first = await trader.reply("placeorder")
    second = await trader.reply("placeorder")
    third = await trader.reply("placeorder")
    assert first["submitted"] is True and first["tag"] == "9"
    _failure_keys(second)
    assert second["code"] == "20016" and second["tag"] == "9"
    assert second["data"]["side"] == "HOLD"
    assert "orderId" not in second["data"]
    assert third["submitted"] is True and third["data"]["clientOrderId"] == "3"


_BASE: dict[str, Any] = limit()


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in _BASE.items() if k != key}


_STOP = {
    "marketCode": MARKET,
    "side": "BUY",
    "orderType": "STOP_LIMIT",
    "quantity": 1,
    "stopPrice": 100,
    "limitPrice": 120,
}

NOT_LONG = "clientOrderId is not long type"

VALIDATION_CASES: list[tuple[str, dict[str, Any], str, str | None]] = [
    ("quantity zero", {**_BASE, "quantity": 0}, "20006", "Quantity must be greater than zero"),
    ("quantity text", {**_BASE, "quantity": "lots"}, "20006", "Quantity must be greater than zero"),
    (
        "client id zero",
        {**_BASE, "clientOrderId": 0},
        "20008",
        "clientOrderId must be greater than zero if provided",
    ),
    (
        "client id text",
        {**_BASE, "clientOrderId": "abc"},
        "20014",
        "clientOrderId is not long type",
    ),
    ("client id float", {**_BASE, "clientOrderId": 1.5}, "20014", "clientOrderId is not long type"),
    (
        "client id too big",
        {**_BASE, "clientOrderId": 2**63},
        "20014",
        "clientOrderId is not long type",
    ),
    ("no market", _without("marketCode"), "20011", "marketCode is required"),
    ("no side", _without("side"), "20012", "side is required"),
    ("no type", _without("orderType"), "20013", "orderType is required"),
    ("bad market", {**_BASE, "marketCode": "DOGE-USD"}, "20015", "marketCode is invalid"),
    ("bad side", {**_BASE, "side": "buy"}, "20016", "side is invalid"),
    ("bad type", {**_BASE, "orderType": "ICEBERG"}, "20017", "orderType is invalid"),
    ("bad tif", {**_BASE, "timeInForce": "GTD"}, "20018", "timeInForce is invalid"),
    ("bad stop", {**_STOP, "stopPrice": "x"}, "20020", "stopPrice or limitPrice is invalid"),
    (
        "no limit",
        {k: v for k, v in _STOP.items() if k != "limitPrice"},
        "20020",
        "stopPrice or limitPrice is invalid",
    ),
    ("bad price", {**_BASE, "price": "cheap"}, "20021", "price is invalid"),
    ("no price", _without("price"), "20022", "price is required for LIMIT order"),
    (
        "price zero",
        {**_BASE, "price": 0},
        "20028",
        "price or stopPrice or limitPrice must be greater than zero",
    ),
    (
        "stop negative",
        {**_STOP, "stopPrice": -1},
        "20028",
        "price or stopPrice or limitPrice must be greater than zero",
    ),
    (
        "buy stop above limit",
        {**_STOP, "stopPrice": 130},
        "20029",
        "stopPrice must be less than limitPrice for Buy Stop Order",
    ),
    (
        "sell limit above stop",
        {**_STOP, "side": "SELL", "stopPrice": 100, "limitPrice": 110},
        "20030",
        "limitPrice must be less than stopPrice for Sell Stop Order",
    ),
    ("bad trigger", {**_STOP, "triggerType": "MOON"}, "20033", "triggerType is invalid"),
    (
        "late",
        {**_BASE, "timestamp": 1_600_000_000_000, "recvWindow": 500},
        "20024",
        "timestamp exceeds the threshold",
    ),
    ("off tick", {**_BASE, "price": "40000.3"}, "20021", None),
    ("below bound", {**_BASE, "price": 100}, "710002", None),
]


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [pytest.param(d, c, m, id=name) for name, d, c, m in VALIDATION_CASES],
)
async def test_placeorder_validation_codes(
    trader: Client, data: dict[str, Any], code: str, message: str | None
) -> None:
    reply = await place(trader, data, tag=5)
    _failure_keys(reply)
    assert reply["event"] == "placeorder"
    assert reply["tag"] == "5"
    assert reply["code"] == code
    if message is not None:
        assert reply["message"] == message
    assert reply["data"]["source"] == 0
    for key in ("marketCode", "side", "orderType"):
        if key in data:
            assert reply["data"][key] == str(data[key])


async def test_fresh_timestamp_within_recv_window_is_accepted(trader: Client) -> None:
    now = int(time.time() * 1000)
    reply = await place(trader, {**_BASE, "timestamp": now, "recvWindow": 5000})
    assert reply["submitted"] is True
    assert "timestamp" not in reply["data"] and "recvWindow" not in reply["data"]


async def test_zero_quantity_also_pushes_the_2020_order_rejected_notice(trader: Client) -> None:
    await trader.subscribe("order:all")
    reply = await place(trader, {**_BASE, "quantity": 0})
    assert reply["code"] == "20006"
    rejected = await notice(trader, "OrderRejected")
    assert rejected["status"] == "REJECT_QUANTITY_ZERO"
    assert rejected["quantity"] == "0" and rejected["clientOrderId"] == "1"
    assert rejected["accountId"] == "1001"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({**_BASE, "quantity": 0}, "REJECT_QUANTITY_ZERO"),
        ({**_BASE, "orderType": "ICEBERG"}, "REJECT_UNKNOW_ORDER_ACTION"),
        (_without("price"), "REJECT_LIMITE_ORDER_WITH_MARKET_PRICE"),
        ({**_STOP, "stopPrice": 130}, "STOP_PRICE_LARGER_THAN_LIMIT_PRICE"),
        ({**_STOP, "side": "SELL", "limitPrice": 110}, "STOP_PRICE_LESS_THAN_LIMIT_PRICE"),
    ],
)
async def test_every_2020_order_rejected_status(
    trader: Client, data: dict[str, Any], status: str
) -> None:
    await trader.subscribe("order:all")
    reply = await place(trader, data)
    assert reply["submitted"] is False
    rejected = await notice(trader, "OrderRejected")
    assert rejected["status"] == status
    assert list(rejected)[:2] == ["notice", "accountId"]
    assert list(rejected)[-2:] == ["status", "timestamp"]


async def test_tag_over_32_on_an_order_is_20034_in_the_order_shape(trader: Client) -> None:
    await trader.send({"op": "placeorder", "tag": "t" * 33, "data": limit()})
    reply = await trader.recv()
    _failure_keys(reply)
    assert reply["code"] == "20034"
    assert reply["message"] == "The size of tag must be less than 32"
    assert reply["data"]["marketCode"] == MARKET and reply["data"]["source"] == 0


async def test_stop_relation_pushes_order_rejected_with_stop_fields(trader: Client) -> None:
    await trader.subscribe("order:all")
    await place(trader, {**_STOP, "stopPrice": 130})
    rejected = await notice(trader, "OrderRejected")
    assert rejected["status"] == "STOP_PRICE_LARGER_THAN_LIMIT_PRICE"
    assert rejected["stopPrice"] == "130" and rejected["limitPrice"] == "120"
    assert rejected["side"] == "BUY" and rejected["orderType"] == "STOP_LIMIT"


async def test_orders_need_login_20026(client: Client) -> None:
    await client.send({"op": "placeorder", "tag": 1, "data": limit()})
    reply = await client.recv()
    _failure_keys(reply)
    assert reply["code"] == "20026"
    assert reply["message"] == "Token is invalid or expired"


@pytest.mark.parametrize("op", ["placeorder", "cancelorder", "modifyorder"])
async def test_read_only_key_cannot_trade_05001(sim: Simulator, op: str) -> None:
    async with connect(sim) as client:
        await client.login(sim.read_only_key)
        await client.send({"op": op, "tag": 1, "data": {"marketCode": MARKET, "orderId": 5}})
        reply = await client.recv()
        _failure_keys(reply)
        assert reply["event"] == op
        assert reply["code"] == "05001"
        assert reply["message"] == "Your operation authority is invalid"


async def test_injected_failure_hits_the_next_order_only(sim: Simulator, trader: Client) -> None:
    sim.faults.fail_next("placeorder", "20032")
    first = await place(trader, limit())
    assert first["code"] == "20032"
    assert first["message"] == "Failed to submit due to timeout in server side"
    second = await place(trader, limit())
    assert second["submitted"] is True


# --- cancelorder -------------------------------------------------------------------------------


async def test_cancel_reply_and_order_closed_notice(trader: Client) -> None:
    await trader.subscribe("order:all")
    placed = await place(trader, limit())
    order_id = placed["data"]["orderId"]
    await trader.send(
        {"op": "cancelorder", "tag": 456, "data": {"marketCode": MARKET, "orderId": int(order_id)}}
    )
    reply = await trader.reply("cancelorder")
    assert list(reply) == ["event", "submitted", "tag", "timestamp", "data"]
    assert reply["submitted"] is True and reply["tag"] == "456"
    assert reply["data"] == {"marketCode": MARKET, "clientOrderId": "1", "orderId": order_id}
    closed = await notice(trader, "OrderClosed")
    assert closed["orderId"] == order_id
    assert closed["status"] == "CANCELED_BY_USER"
    assert closed["remainQuantity"] == "1.5"
    assert list(closed)[-2:] == ["orderType", "isTriggered"]


async def test_cancel_by_client_order_id(trader: Client) -> None:
    placed = await place(trader, limit(clientOrderId=77))
    await trader.send(
        {"op": "cancelorder", "tag": 1, "data": {"marketCode": MARKET, "clientOrderId": 77}}
    )
    reply = await trader.reply("cancelorder")
    assert reply["data"]["orderId"] == placed["data"]["orderId"]


async def test_cancel_of_an_unknown_order_is_100005(trader: Client) -> None:
    await trader.send(
        {"op": "cancelorder", "tag": 4, "data": {"marketCode": MARKET, "orderId": 12}}
    )
    reply = await trader.reply("cancelorder")
    _failure_keys(reply)
    assert reply["code"] == "100005"
    assert reply["data"] == {"marketCode": MARKET, "orderId": "12"}


async def test_cancel_of_another_accounts_order_is_100006(sim: Simulator, trader: Client) -> None:
    sim.exchange.open_account("other", {"USD": Decimal(10**6)})
    theirs = sim.exchange.engine.place(
        "other",
        market_code=MARKET,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal(1),
        price=Decimal(40000),
    )
    sim.exchange.flush()
    await trader.send(
        {"op": "cancelorder", "tag": 4, "data": {"marketCode": MARKET, "orderId": theirs.order_id}}
    )
    reply = await trader.reply("cancelorder")
    assert reply["code"] == "100006"


async def test_cancel_of_a_filled_order_gets_the_cancel_failure_notice(trader: Client) -> None:
    await trader.subscribe("order:all")
    resting = await place(trader, limit("SELL", price=50000, quantity=1))
    await place(trader, limit("BUY", price=50000, quantity=1, clientOrderId=2))
    order_id = int(resting["data"]["orderId"])
    await trader.send(
        {"op": "cancelorder", "tag": 8, "data": {"marketCode": MARKET, "orderId": order_id}}
    )
    reply = await trader.reply("cancelorder")
    assert reply["submitted"] is True
    failure = await trader.reply("CANCEL")
    assert list(failure) == ["event", "submitted", "message", "code", "timestamp", "data"]
    assert failure["submitted"] is False
    assert failure["code"] == "100004"
    assert failure["message"] == "Order request was rejected : REJECT_CANCEL_ORDER_ID_NOT_FOUND"
    data = failure["data"]
    assert data["orderId"] == order_id and data["clientOrderId"] == 1
    assert data["status"] == "REJECT_CANCEL_ORDER_ID_NOT_FOUND"
    assert data["side"] == "SELL" and data["marketCode"] == MARKET
    assert data["isTriggered"] is False and data["matchedType"] == "MAKER"
    assert isinstance(data["timestampEpochMs"], int)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"orderId": 1}, "20011"),
        ({"marketCode": "NOPE", "orderId": 1}, "20015"),
        ({"marketCode": MARKET}, "20010"),
        ({"marketCode": MARKET, "orderId": "abc"}, "20019"),
        ({"marketCode": MARKET, "orderId": -3}, "20019"),
    ],
)
async def test_cancel_validation_codes(trader: Client, data: dict[str, Any], code: str) -> None:
    await trader.send({"op": "cancelorder", "tag": 2, "data": data})
    reply = await trader.reply("cancelorder")
    _failure_keys(reply)
    assert reply["code"] == code


async def test_batch_cancel_replies_per_order(trader: Client) -> None:
    a = await place(trader, limit(price=40000))
    b = await place(trader, limit(price=40001))
    await trader.send(
        {
            "op": "cancelorders",
            "tag": 456,
            "dataArray": [
                {"marketCode": MARKET, "orderId": int(a["data"]["orderId"])},
                {"marketCode": MARKET, "orderId": 34},
                {"marketCode": MARKET, "orderId": int(b["data"]["orderId"])},
            ],
        }
    )
    replies = [await trader.reply("cancelorder") for _ in range(3)]
    assert [r["submitted"] for r in replies] == [True, False, True]
    assert replies[1]["code"] == "100005"
    assert all(r["tag"] == "456" for r in replies)


# --- modifyorder -------------------------------------------------------------------------------


async def test_reducing_quantity_modifies_in_place(trader: Client) -> None:
    await trader.subscribe("order:all")
    placed = await place(trader, limit(quantity=2))
    order_id = placed["data"]["orderId"]
    await trader.send(
        {
            "op": "modifyorder",
            "tag": 1,
            "data": {"marketCode": MARKET, "orderId": int(order_id), "quantity": 1},
        }
    )
    reply = await trader.reply("modifyorder")
    assert list(reply) == ["event", "submitted", "tag", "timestamp", "data"]
    assert reply["data"] == {
        "orderId": order_id,
        "side": "BUY",
        "quantity": "1",
        "price": "40000",
        "orderType": "LIMIT",
        "marketCode": MARKET,
    }
    modified = await notice(trader, "OrderModified")
    assert modified["orderId"] == order_id and modified["quantity"] == "1"
    assert modified["status"] == "OPEN"


async def test_changing_price_closes_by_amend_and_opens_a_new_order(trader: Client) -> None:
    await trader.subscribe("order:all")
    placed = await place(trader, limit())
    await notice(trader, "OrderOpened")
    order_id = placed["data"]["orderId"]
    await trader.send(
        {
            "op": "modifyorder",
            "tag": 1,
            "data": {"marketCode": MARKET, "orderId": int(order_id), "price": 40100},
        }
    )
    reply = await trader.reply("modifyorder")
    assert reply["data"]["price"] == "40100" and reply["data"]["orderId"] == order_id
    closed = await notice(trader, "OrderClosed")
    assert closed["orderId"] == order_id and closed["status"] == "CANCELED_BY_AMEND"
    reopened = await notice(trader, "OrderOpened")
    assert reopened["orderId"] != order_id and reopened["price"] == "40100"


async def test_modify_of_a_filled_order_gets_the_amend_failure_notice(trader: Client) -> None:
    await trader.subscribe("order:all")
    resting = await place(trader, limit("SELL", price=50000, quantity=1))
    await place(trader, limit("BUY", price=50000, quantity=1, clientOrderId=2))
    order_id = int(resting["data"]["orderId"])
    await trader.send(
        {
            "op": "modifyorder",
            "tag": 1,
            "data": {"marketCode": MARKET, "orderId": order_id, "price": 51000},
        }
    )
    reply = await trader.reply("modifyorder")
    assert reply["submitted"] is True
    failure = await trader.reply("AMEND")
    assert failure["code"] == "100004"
    assert failure["message"] == "Order request was rejected : REJECT_AMEND_ORDER_ID_NOT_FOUND"
    assert failure["data"]["status"] == "REJECT_AMEND_ORDER_ID_NOT_FOUND"
    assert failure["data"]["price"] == 51000.0


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"orderId": 1}, "20011"),
        ({"marketCode": MARKET}, "20010"),
        ({"marketCode": MARKET, "orderId": "x"}, "20019"),
        ({"marketCode": MARKET, "orderId": 1, "side": "UP"}, "20016"),
        ({"marketCode": MARKET, "orderId": 1, "price": "x"}, "20021"),
        ({"marketCode": MARKET, "orderId": 1, "price": -1}, "20028"),
        ({"marketCode": MARKET, "orderId": 1, "quantity": 0}, "20006"),
        ({"marketCode": MARKET, "orderId": 1, "price": 40000}, "100005"),
    ],
)
async def test_modify_validation_codes(trader: Client, data: dict[str, Any], code: str) -> None:
    await trader.send({"op": "modifyorder", "tag": 2, "data": data})
    reply = await trader.reply("modifyorder")
    _failure_keys(reply)
    assert reply["code"] == code


async def test_batch_modify_accepts_the_documented_order_id_spelling(trader: Client) -> None:
    a = await place(trader, limit(price=40000, quantity=2))
    await trader.send(
        {
            "op": "modifyorders",
            "tag": 123,
            "dataArray": [
                {"marketCode": MARKET, "orderID": int(a["data"]["orderId"]), "quantity": 1},
                {"marketCode": MARKET, "orderID": 304304315061864646, "price": 10001},
            ],
        }
    )
    first = await trader.reply("modifyorder")
    second = await trader.reply("modifyorder")
    assert first["submitted"] is True and first["data"]["quantity"] == "1"
    assert second["submitted"] is False and second["code"] == "100005"
    assert second["data"]["orderId"] == "304304315061864646"


# --- account-wide behaviour --------------------------------------------------------------------


async def test_notices_reach_every_socket_of_the_account_and_only_those(
    sim: Simulator, trader: Client
) -> None:
    async with connect(sim) as second, connect(sim) as market_only, connect(sim) as stranger:
        await second.login(sim.demo_key)
        await second.subscribe("order:all")
        await market_only.login(sim.read_only_key)
        await market_only.subscribe("order:ETH-USD-SWAP-LIN", f"order:{MARKET}")
        sim.exchange.open_account("someone", {"USD": Decimal(10**6)})
        await stranger.login(sim.exchange.create_api_key("someone"))
        await stranger.subscribe("order:all")
        placed = await place(trader, limit())
        assert (await notice(second, "OrderOpened"))["orderId"] == placed["data"]["orderId"]
        assert (await notice(market_only, "OrderOpened"))["orderId"] == placed["data"]["orderId"]
        await stranger.send("ping")
        assert await stranger.recv_text() == "pong"


async def test_orders_placed_outside_the_socket_are_pushed_on_flush(
    sim: Simulator, trader: Client
) -> None:
    await trader.subscribe(f"order:{MARKET}")
    order = sim.exchange.engine.place(
        "1001",
        market_code=MARKET,
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        quantity=Decimal(1),
        price=Decimal(60000),
    )
    sim.exchange.flush()
    assert (await notice(trader, "OrderOpened"))["orderId"] == str(order.order_id)
    sim.exchange.engine.cancel_all("1001")
    sim.exchange.flush()
    sim.exchange.broadcast_cancel_notice("1001")
    assert (await notice(trader, "OrderClosed"))["status"] == "CANCELED_BY_USER"
    cancel = await trader.reply("CANCEL")
    assert list(cancel) == ["event", "submitted", "timestamp"]
    assert cancel["submitted"] is True


async def test_account_order_rate_limit_is_20007(
    trader: Client, autojump_clock: trio.testing.MockClock
) -> None:
    await trader.send(
        {"op": "placeorders", "tag": 1, "dataArray": [limit(price=30000 + i) for i in range(20)]}
    )
    await trader.send(
        {"op": "placeorders", "tag": 2, "dataArray": [limit(price=31000 + i) for i in range(20)]}
    )
    await trader.send(
        {"op": "placeorders", "tag": 3, "dataArray": [limit(price=32000 + i) for i in range(20)]}
    )
    replies = [await trader.reply("placeorder") for _ in range(60)]
    codes = [r.get("code") for r in replies]
    assert codes[:50] == [None] * 50
    assert codes[50:] == ["20007"] * 10


# --- validation invariants ---------------------------------------------------------------------

_MARKETS = {spec.market_code: spec for spec in DEFAULT_MARKETS}
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
_plausible = {
    "marketCode": st.sampled_from([MARKET, "BTC-USD", "", "NOPE"]),
    "side": st.sampled_from(["BUY", "SELL", "buy", ""]),
    "orderType": st.sampled_from(["LIMIT", "MARKET", "STOP", "STOP_LIMIT", "OCO"]),
    "quantity": st.sampled_from([1, 0, -1, 0.5, "2", "x"]),
    "price": st.sampled_from([40000, 0, -5, "40000.5", 1e-9, "nan"]),
    "stopPrice": st.sampled_from([100, 120, 0, "y"]),
    "limitPrice": st.sampled_from([100, 120, -1]),
    "clientOrderId": st.sampled_from([1, 0, -1, 2**63, "7", 1.5]),
    "timeInForce": st.sampled_from(["GTC", "IOC", "FOK", "MAKER_ONLY", "DAY"]),
    "orderId": st.sampled_from([1, 0, "12", "x", 2**64]),
}
_orders = st.fixed_dictionaries(
    {}, optional={key: values | _json for key, values in _plausible.items()}
)


@given(_orders | _json)
def test_validation_never_raises_and_only_returns_documented_codes(data: Any) -> None:
    now = int(time.time() * 1000)
    for result in (
        parse_place(data, _MARKETS, now),
        parse_cancel(data, _MARKETS),
        parse_modify(data, _MARKETS, now),
    ):
        if isinstance(result, Rejection):
            assert result.code in ERROR_CODES
            assert result.message == ERROR_CODES[result.code][0]


@pytest.mark.parametrize("field", ["timeInForce", "triggerType"])
@pytest.mark.parametrize("value", [[], {}, ["GTC"]])
def test_unhashable_enum_values_are_refused_not_raised(field: str, value: Any) -> None:
    # Found by hypothesis: a JSON list as timeInForce once raised TypeError inside the server.
    order = {
        "marketCode": "BTC-USD-SWAP-LIN",
        "side": "BUY",
        "orderType": "STOP",
        "quantity": "1",
        "stopPrice": "100",
        "limitPrice": "101",
        field: value,
    }
    result = parse_place(order, _MARKETS, int(time.time() * 1000))
    assert isinstance(result, Rejection)
    assert result.code == ("20018" if field == "timeInForce" else "20033")


@given(_orders)
def test_accepted_orders_satisfy_every_documented_rule(data: dict[str, Any]) -> None:
    result = parse_place(data, _MARKETS, int(time.time() * 1000))
    if not isinstance(result, PlaceCommand):
        return
    assert result.market_code in _MARKETS
    assert result.quantity > 0
    assert result.client_order_id is None or 0 < result.client_order_id < 2**63
    if result.order_type is OrderType.LIMIT:
        assert result.price is not None and result.price > 0
    if result.order_type is OrderType.STOP:
        assert result.stop_price is not None and result.limit_price is not None
        assert result.stop_price > 0 and result.limit_price > 0
        if result.side is Side.BUY:
            assert result.stop_price <= result.limit_price
        else:
            assert result.limit_price <= result.stop_price
    modify = parse_modify(data, _MARKETS, int(time.time() * 1000))
    if isinstance(modify, ModifyCommand):
        assert modify.order_id > 0
