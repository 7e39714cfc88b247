"""Message-level rules: malformed input, ping/pong, rate limits, the idle rule, the endpoint."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from conftest import Client, close_code, connect, login_request
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from flexconn.sim import RateLimits, Simulator, serve


def _generic_failure(reply: dict[str, object], event: str, code: str, message: str) -> None:
    assert reply["event"] == event
    assert reply["success"] is False
    assert reply["code"] == code
    assert reply["message"] == message
    assert isinstance(reply["timestamp"], str)


async def test_greeting_carries_a_nonce(sim: Simulator) -> None:
    async with connect(sim, greeting=False) as client:
        hello = await client.recv()
        assert list(hello) == ["nonce"] and len(hello["nonce"]) == 32


async def test_invalid_json_is_20009(client: Client) -> None:
    await client.send('{"op": "subscribe", "args": [')
    reply = await client.recv()
    assert list(reply) == ["event", "success", "message", "code", "timestamp"]
    _generic_failure(reply, "error", "20009", "JSON data format is invalid")


async def test_json_that_is_not_an_object_is_20009(client: Client) -> None:
    await client.send("[1, 2, 3]")
    _generic_failure(await client.recv(), "error", "20009", "JSON data format is invalid")


async def test_binary_message_is_20009(client: Client) -> None:
    await client.ws.send_message(b'{"op": "subscribe"}')
    _generic_failure(await client.recv(), "error", "20009", "JSON data format is invalid")


async def test_unknown_op_is_20003(client: Client) -> None:
    await client.send({"op": "explode", "tag": 3})
    reply = await client.recv()
    assert list(reply) == ["event", "success", "tag", "message", "code", "timestamp"]
    _generic_failure(reply, "explode", "20003", "Unrecognized operation")
    assert reply["tag"] == "3"


async def test_missing_op_is_20003(trader: Client) -> None:
    await trader.send({"args": ["ticker:all"]})
    _generic_failure(await trader.recv(), "error", "20003", "Unrecognized operation")


def _padded(length: int) -> str:
    head = '{"op":"subscribe","tag":1,"args":["liquidationRFQ"],"pad":"'
    text = head + "x" * (length - len(head) - 2) + '"}'
    assert len(text) == length
    return text


async def test_message_over_4096_characters_is_20027(trader: Client) -> None:
    await trader.send(_padded(4097))
    reply = await trader.recv()
    _generic_failure(
        reply, "subscribe", "20027", "The length of the message exceeds the maximum length"
    )
    await trader.send(_padded(4096))
    assert (await trader.recv())["success"] is True


async def test_the_limit_counts_utf8_bytes_not_characters(trader: Client) -> None:
    head = '{"op":"subscribe","tag":1,"args":["liquidationRFQ"],"pad":"'
    text = head + "\u00e9" * 2100 + '"}'  # 2,162 characters, 4,262 bytes
    await trader.send(text)
    assert (await trader.recv())["code"] == "20027"


async def test_over_long_batch_is_refused_per_order(trader: Client) -> None:
    order = {
        "clientOrderId": 1,
        "marketCode": "BTC-USD-SWAP-LIN",
        "side": "BUY",
        "orderType": "LIMIT",
        "quantity": 1,
        "price": 40000,
        "timeInForce": "GTC",
    }
    await trader.send({"op": "placeorders", "tag": 1, "dataArray": [order] * 40})
    replies = [await trader.reply("placeorder") for _ in range(40)]
    assert {r["code"] for r in replies} == {"20027"}
    assert all(r["submitted"] is False for r in replies)


async def test_text_ping_gets_text_pong(client: Client) -> None:
    await client.send("ping")
    assert await client.recv_text() == "pong"


async def test_websocket_ping_frame_gets_a_pong(client: Client) -> None:
    with trio.fail_after(5):
        await client.ws.ping(b"hello")


# --- rate limits -------------------------------------------------------------------------------


async def test_unauthenticated_socket_may_send_one_message_per_second(
    client: Client, autojump_clock: trio.testing.MockClock
) -> None:
    await client.send({"op": "subscribe", "tag": 1, "args": ["liquidationRFQ"]})
    assert (await client.recv())["success"] is True
    await client.send({"op": "subscribe", "tag": 2, "args": ["liquidationRFQ"]})
    reply = await client.recv()
    _generic_failure(reply, "subscribe", "20007", "You are accessing server too rapidly")
    assert reply["tag"] == "2"
    await trio.sleep(1.0)
    await client.send({"op": "subscribe", "tag": 3, "args": ["liquidationRFQ"]})
    assert (await client.recv())["success"] is True


async def test_pings_are_not_rate_limited(client: Client) -> None:
    for _ in range(20):
        await client.send("ping")
        assert await client.recv_text() == "pong"
    await client.send({"op": "subscribe", "tag": 1, "args": ["liquidationRFQ"]})
    assert (await client.recv())["success"] is True


async def test_authenticated_socket_may_send_fifty_messages_per_second(
    trader: Client, autojump_clock: trio.testing.MockClock
) -> None:
    request = {"op": "subscribe", "tag": 1, "args": ["liquidationRFQ"]}
    for _ in range(51):
        await trader.send(request)
    replies = [await trader.reply("subscribe") for _ in range(51)]
    assert [r["success"] for r in replies] == [True] * 50 + [False]
    assert replies[-1]["code"] == "20007"
    await trio.sleep(0.1)  # the bucket refills at 50/s: five more
    for _ in range(6):
        await trader.send(request)
    replies = [await trader.reply("subscribe") for _ in range(6)]
    assert [r["success"] for r in replies] == [True] * 5 + [False]


async def test_new_connections_beyond_the_limit_are_refused_with_20007(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limits = RateLimits(connections_per_minute=3)
    async with serve(participants_rate=None, rest_port=None, rate_limits=limits) as sim:
        for _ in range(3):
            async with connect(sim):
                pass
        async with open_websocket_url(sim.ws_url) as ws:
            client = Client(ws)
            reply = await client.recv()
            _generic_failure(reply, "error", "20007", "You are accessing server too rapidly")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert close_code(closed.value) == 1008
        await trio.sleep(20.0)  # 3 per minute: one more after 20 s
        async with connect(sim):
            pass


# --- the idle rule -----------------------------------------------------------------------------


async def _closed_after(client: Client) -> tuple[float, int | None]:
    start = trio.current_time()
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await client.ws.get_message()
    return trio.current_time() - start, close_code(closed.value)


async def test_silent_connection_is_closed_after_60_seconds(
    client: Client, autojump_clock: trio.testing.MockClock
) -> None:
    elapsed, code = await _closed_after(client)
    assert elapsed == pytest.approx(60.0, abs=1e-6)
    assert code == 1000


async def test_replies_do_not_keep_a_connection_alive(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    async with connect(sim) as client:
        start = trio.current_time()
        await client.send(login_request(sim.demo_key))
        await client.recv()
        await trio.sleep(30.0)
        await client.send({"op": "explode"})
        await client.recv()
        with pytest.raises(ConnectionClosed):
            while True:
                await client.ws.get_message()
        assert trio.current_time() - start == pytest.approx(60.0, abs=1e-6)


@pytest.mark.parametrize("style", ["text", "frame"])
async def test_pings_keep_a_connection_alive(
    client: Client, autojump_clock: trio.testing.MockClock, style: str
) -> None:
    for _ in range(4):
        await trio.sleep(50.0)
        if style == "text":
            await client.send("ping")
            assert await client.recv_text() == "pong"
        else:
            await client.ws.ping()
    elapsed, _ = await _closed_after(client)
    assert elapsed == pytest.approx(60.0, abs=1e-6)


async def test_pushed_data_keeps_a_connection_alive(
    client: Client, autojump_clock: trio.testing.MockClock
) -> None:
    await client.subscribe("depthL5:BTC-USD")
    start = trio.current_time()
    while trio.current_time() - start < 180.0:
        await client.table("depthL5")
    await client.send("ping")
    assert await client.recv_text() == "pong"


async def test_other_paths_are_not_found(sim: Simulator) -> None:
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(sim.ws_url.replace("/v2/websocket", "/v1/websocket")):
            pass
    assert rejected.value.status_code == 404
