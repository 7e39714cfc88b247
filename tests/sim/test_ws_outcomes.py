"""The exchange evidence the outbox settles order outcomes on, checked against the simulator.

Each test plays one row of the outcome table with a plain client (no flexconn code in the loop):
the reply's ``orderId``; ``OrderClosed`` with ``CANCELED_BY_USER`` for a cancel; ``OrderMatched``
with status ``FILLED`` for a fill (the documents give fills no ``OrderClosed``); a queue-changing
modify as ``OrderClosed(CANCELED_BY_AMEND)`` then ``OrderOpened`` with a new id and the same
``clientOrderId``; the ``CANCEL``/``AMEND`` failure notices (code 100004) for commands on orders
no longer open; 20024 for a place or modify read after ``timestamp + recvWindow``; and a stalled
socket's buffered frames executed when the stall ends, even after the client closed it.
"""

from __future__ import annotations

import socket
import struct
import time
from decimal import Decimal
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from conftest import Client, Json, login_request
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from flexconn.sim import Simulator
from flexconn.sim.exchange import DEMO_ACCOUNT_ID

MARKET = "BTC-USD-SWAP-LIN"


def _limit(side: str, price: int, quantity: str = "1", client_order_id: int = 1) -> Json:
    return {
        "clientOrderId": client_order_id,
        "marketCode": MARKET,
        "side": side,
        "orderType": "LIMIT",
        "quantity": quantity,
        "timeInForce": "GTC",
        "price": price,
    }


async def _place(client: Client, data: Json, tag: int = 1) -> Json:
    await client.send({"op": "placeorder", "tag": tag, "data": data})
    return await client.reply("placeorder")


async def _cancel(client: Client, order_id: int, tag: int = 2) -> Json:
    await client.send(
        {"op": "cancelorder", "tag": tag, "data": {"marketCode": MARKET, "orderId": order_id}}
    )
    return await client.reply("cancelorder")


async def _modify(client: Client, order_id: int, tag: int = 3, **changes: Any) -> Json:
    data = {"marketCode": MARKET, "orderId": order_id, **changes}
    await client.send({"op": "modifyorder", "tag": tag, "data": data})
    return await client.reply("modifyorder")


async def _order_notice(client: Client, notice: str, order_id: int) -> Json:
    def match(message: Json) -> bool:
        if message.get("table") != "order":
            return False
        item = message["data"][0]
        return bool(item["notice"] == notice and int(item["orderId"]) == order_id)

    message = await client.recv_until(match)
    entry: Json = message["data"][0]
    return entry


async def _failure(client: Client, event: str, order_id: int) -> Json:
    return await client.recv_until(
        lambda m: m.get("event") == event and m.get("data", {}).get("orderId") == order_id
    )


def _assert_failure_notice(notice: Json, event: str, order_id: int, client_order_id: int) -> None:
    status = f"REJECT_{'CANCEL' if event == 'CANCEL' else 'AMEND'}_ORDER_ID_NOT_FOUND"
    assert notice["event"] == event and notice["submitted"] is False
    assert notice["code"] == "100004"
    assert notice["message"] == f"Order request was rejected : {status}"
    data = notice["data"]
    assert data["orderId"] == order_id and data["clientOrderId"] == client_order_id
    assert data["status"] == status and data["marketCode"] == MARKET


@pytest.fixture
async def watcher(trader: Client) -> Client:
    """The trader, subscribed to its order channel."""
    await trader.subscribe("order:all")
    return trader


async def test_place_reply_names_the_order_id_of_its_order_opened(watcher: Client) -> None:
    reply = await _place(watcher, _limit("BUY", 40000, client_order_id=41))
    assert reply["submitted"] is True
    order_id = reply["data"]["orderId"]
    assert isinstance(order_id, str) and order_id.isdigit()
    opened = await _order_notice(watcher, "OrderOpened", int(order_id))
    assert opened["clientOrderId"] == "41" and opened["status"] == "OPEN"


async def test_cancelling_twice_closes_once_then_gets_the_cancel_failure_notice(
    watcher: Client,
) -> None:
    order_id = int(
        (await _place(watcher, _limit("BUY", 40000, client_order_id=7)))["data"]["orderId"]
    )
    first = await _cancel(watcher, order_id)
    assert first["submitted"] is True
    closed = await _order_notice(watcher, "OrderClosed", order_id)
    assert closed["status"] == "CANCELED_BY_USER"
    second = await _cancel(watcher, order_id, tag=9)
    assert second["submitted"] is True and second["tag"] == "9"  # accepted for processing only
    _assert_failure_notice(await _failure(watcher, "CANCEL", order_id), "CANCEL", order_id, 7)


async def test_a_fill_ends_with_order_matched_filled_then_cancel_and_modify_fail(
    watcher: Client,
) -> None:
    maker = int(
        (await _place(watcher, _limit("SELL", 50000, client_order_id=5)))["data"]["orderId"]
    )
    await _place(watcher, _limit("BUY", 50000, client_order_id=6), tag=4)
    matched = await _order_notice(watcher, "OrderMatched", maker)
    assert matched["status"] == "FILLED" and matched["remainQuantity"] == "0"
    reply = await _cancel(watcher, maker)
    assert reply["submitted"] is True
    _assert_failure_notice(await _failure(watcher, "CANCEL", maker), "CANCEL", maker, 5)
    reply = await _modify(watcher, maker, price=49000)
    assert reply["submitted"] is True
    _assert_failure_notice(await _failure(watcher, "AMEND", maker), "AMEND", maker, 5)


async def test_a_replacing_modify_closes_by_amend_and_reopens_with_the_same_client_order_id(
    watcher: Client,
) -> None:
    order_id = int(
        (await _place(watcher, _limit("BUY", 40000, client_order_id=88)))["data"]["orderId"]
    )
    reply = await _modify(watcher, order_id, price=40100, quantity="2")
    assert reply["submitted"] is True
    closed = await _order_notice(watcher, "OrderClosed", order_id)
    assert closed["status"] == "CANCELED_BY_AMEND" and closed["clientOrderId"] == "88"
    opened = await watcher.recv_until(
        lambda m: m.get("table") == "order" and m["data"][0]["notice"] == "OrderOpened"
    )
    replacement = opened["data"][0]
    assert int(replacement["orderId"]) != order_id
    assert replacement["clientOrderId"] == "88"
    assert (replacement["price"], replacement["quantity"]) == ("40100", "2")
    # The replaced id is no longer open: both commands on it get their failure notice.
    assert (await _modify(watcher, order_id, price=40200))["submitted"] is True
    _assert_failure_notice(await _failure(watcher, "AMEND", order_id), "AMEND", order_id, 88)
    assert (await _cancel(watcher, order_id))["submitted"] is True
    _assert_failure_notice(await _failure(watcher, "CANCEL", order_id), "CANCEL", order_id, 88)


async def test_place_and_modify_after_their_recv_window_are_20024_and_change_nothing(
    sim: Simulator, watcher: Client
) -> None:
    engine = sim.exchange.engine
    late = int(time.time() * 1000) - 10_000
    reply = await _place(
        watcher, {**_limit("BUY", 40000, client_order_id=3), "timestamp": late, "recvWindow": 3000}
    )
    assert reply["submitted"] is False and reply["code"] == "20024"
    assert engine.open_orders(DEMO_ACCOUNT_ID) == []
    order_id = int(
        (await _place(watcher, _limit("BUY", 40000, client_order_id=4)))["data"]["orderId"]
    )
    reply = await _modify(watcher, order_id, price=40500, timestamp=late, recvWindow=3000)
    assert reply["submitted"] is False and reply["code"] == "20024"
    (still,) = engine.open_orders(DEMO_ACCOUNT_ID)
    assert (still.order_id, still.price) == (order_id, Decimal(40000))
    fresh = int(time.time() * 1000)
    reply = await _modify(watcher, order_id, quantity="0.5", timestamp=fresh, recvWindow=3000)
    assert reply["submitted"] is True
    modified = await _order_notice(watcher, "OrderModified", order_id)
    assert modified["quantity"] == "0.5"


# --- stalls: frames buffered before the client gave up are still executed ----------------------


class _RawClient:
    """A WebSocket client on a bare TCP stream, so a test controls every write and the close."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)

    @classmethod
    async def open(cls, sim: Simulator) -> _RawClient:
        host, _, rest = sim.ws_url.removeprefix("ws://").partition(":")
        port = int(rest.partition("/")[0])
        client = cls(await trio.open_tcp_stream(host, port))
        await client.stream.send_all(client.ws.send(Request(host=host, target="/v2/websocket")))
        return client

    async def next_text(self) -> Json:
        while True:
            for event in self.ws.events():
                if isinstance(event, AcceptConnection):
                    continue
                if isinstance(event, TextMessage):
                    message: Json = orjson.loads(event.data)
                    return message
            data = await self.stream.receive_some(65536)
            assert data, "server closed"
            self.ws.receive_data(data)

    async def send(self, message: Json) -> None:
        await self.stream.send_all(self.ws.send(TextMessage(orjson.dumps(message).decode())))


@pytest.mark.parametrize(
    "closing", ["close frame then FIN", "reset", "reset, output pending", "reset, timed stall"]
)
async def test_frames_buffered_during_a_stall_run_after_the_client_closed(
    sim: Simulator, autojump_clock: trio.testing.MockClock, closing: str
) -> None:
    engine = sim.exchange.engine
    client = await _RawClient.open(sim)
    assert "nonce" in await client.next_text()
    await client.send(login_request(sim.demo_key))
    assert (await client.next_text())["success"] is True
    timed = closing.endswith("timed stall")
    assert sim.faults.stall(10.0 if timed else None) == 1
    # Two commands written separately, a second apart, while nothing is read.
    await client.send({"op": "placeorder", "tag": 1, "data": _limit("BUY", 40000, "1", 11)})
    await trio.sleep(1.0)
    await client.send({"op": "placeorder", "tag": 2, "data": _limit("BUY", 40001, "1", 12)})
    await trio.sleep(1.0)
    if closing == "reset, output pending":
        # Output queued on the stalled socket: writing it after the stall fails, which must not
        # cut short the reading of what the client sent before it left.
        assert sim.faults.inject('{"event":"pending"}') == 1
    # The client gives up on the silent socket.
    if closing.startswith("reset"):
        client.stream.socket.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
    else:
        await client.stream.send_all(client.ws.send(CloseConnection(code=1001)))
    await client.stream.aclose()
    await trio.sleep(5.0)
    assert engine.open_orders(DEMO_ACCOUNT_ID) == []  # still stalled: nothing executed yet
    if not timed:
        sim.faults.resume()
    with trio.fail_after(5):
        while len(engine.open_orders(DEMO_ACCOUNT_ID)) < 2:  # noqa: ASYNC110 - engine state
            await trio.sleep(0.01)
        while sim.faults.connection_count:  # noqa: ASYNC110 - and the connection then ends
            await trio.sleep(0.01)
    placed = engine.open_orders(DEMO_ACCOUNT_ID)
    assert sorted(o.client_order_id or 0 for o in placed) == [11, 12]
