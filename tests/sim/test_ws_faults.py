"""Fault injection, each fault observed by a plain client; and the slow-client policy."""

from __future__ import annotations

import json
import struct
from decimal import Decimal

import pytest
import trio
import trio.lowlevel
import trio.testing
from conftest import Client, close_code, connect
from trio_websocket import ConnectionClosed, ConnectionRejected
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from flexconn.models.enums import OrderType, Side
from flexconn.sim import Simulator, WsOptions, serve

MARKET = "BTC-USD-SWAP-LIN"


async def _closed(client: Client) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await client.ws.get_message()
    return close_code(closed.value)


async def test_drop_all_abruptly(sim: Simulator, client: Client, trader: Client) -> None:
    assert sim.faults.drop_all() == 2
    assert await _closed(client) == 1006
    assert await _closed(trader) == 1006
    async with connect(sim) as again:
        await again.send("ping")
        assert await again.recv_text() == "pong"


async def test_drop_all_with_a_close_code(sim: Simulator, client: Client) -> None:
    sim.faults.drop_all(close_code=1012)
    assert await _closed(client) == 1012


async def test_drop_one_accounts_connections(
    sim: Simulator, client: Client, trader: Client
) -> None:
    assert sim.faults.drop_all(account_id="1001") == 1
    assert await _closed(trader) == 1006
    await client.send("ping")
    assert await client.recv_text() == "pong"


async def test_drop_after_n_frames(
    sim: Simulator, client: Client, autojump_clock: trio.testing.MockClock
) -> None:
    await client.subscribe("ticker:BTC-USD")
    await client.table("ticker")
    assert sim.faults.drop_after(3) == 1
    received = 0
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await client.ws.get_message()
            received += 1
    assert received == 3
    assert close_code(closed.value) == 1006


async def test_stall_makes_a_half_open_connection_until_resumed(
    sim: Simulator, client: Client, autojump_clock: trio.testing.MockClock
) -> None:
    await client.subscribe("ticker:BTC-USD")
    sim.faults.stall()
    await client.send("ping")
    start = trio.current_time()
    pong = False
    with trio.move_on_after(300.0):
        while not pong:
            pong = await client.recv_text() == "pong"
    assert not pong, "a stalled server must not answer"
    assert trio.current_time() - start == pytest.approx(300.0)
    sim.faults.resume()
    while await client.recv_text() != "pong":
        pass


async def test_stall_for_a_while_resumes_by_itself(
    sim: Simulator, client: Client, autojump_clock: trio.testing.MockClock
) -> None:
    sim.faults.stall(5.0)
    start = trio.current_time()
    await client.send("ping")
    assert await client.recv_text() == "pong"
    assert trio.current_time() - start == pytest.approx(5.0)


async def test_pushes_resume_after_a_timed_stall_without_client_traffic(
    sim: Simulator, client: Client, autojump_clock: trio.testing.MockClock
) -> None:
    await client.subscribe("ticker:BTC-USD")
    await client.table("ticker")
    sim.faults.stall(5.0)
    start = trio.current_time()
    await client.table("ticker")
    assert 5.0 <= trio.current_time() - start <= 5.0 + 0.1 + 1e-9


async def test_refused_connections_get_503_until_the_window_ends(
    sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    sim.faults.refuse_connections(10.0)
    with pytest.raises(ConnectionRejected) as rejected:
        async with connect(sim):
            pass
    assert rejected.value.status_code == 503
    await trio.sleep(10.0)
    async with connect(sim):
        pass


async def test_refusal_without_a_response_closes_the_socket(sim: Simulator) -> None:
    sim.faults.refuse_connections(10.0, http_status=None)
    host_port = sim.ws_url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    ws = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(ws.send(Request(host=host_port, target="/v2/websocket")))
    with trio.fail_after(5):
        assert await stream.receive_some(1024) == b""
    await stream.aclose()


async def test_inject_garbage_and_binary_to_everyone(
    sim: Simulator, client: Client, trader: Client
) -> None:
    assert sim.faults.inject('{"broken":') == 2
    assert await client.recv_text() == '{"broken":'
    assert await trader.recv_text() == '{"broken":'
    sim.faults.inject(b"\x00\xff")
    assert await client.ws.get_message() == b"\x00\xff"


async def test_inject_an_unknown_message_to_one_account(
    sim: Simulator, client: Client, trader: Client
) -> None:
    assert sim.faults.inject('{"event":"surprise"}', account_id="1001") == 1
    assert await trader.recv() == {"event": "surprise"}
    await client.send("ping")
    assert await client.recv_text() == "pong"


async def test_delayed_replies_arrive_late_but_notices_do_not(
    sim: Simulator, trader: Client, autojump_clock: trio.testing.MockClock
) -> None:
    await trader.subscribe("order:all")
    sim.faults.delay_replies(2.0)
    start = trio.current_time()
    await trader.send(
        {
            "op": "placeorder",
            "tag": 1,
            "data": {
                "marketCode": MARKET,
                "side": "BUY",
                "orderType": "LIMIT",
                "quantity": 1,
                "price": 40000,
            },
        }
    )
    first = await trader.recv()
    assert first["table"] == "order" and first["data"][0]["notice"] == "OrderOpened"
    assert trio.current_time() == start
    reply = await trader.recv()
    assert reply["event"] == "placeorder" and reply["submitted"] is True
    assert trio.current_time() - start == pytest.approx(2.0)
    sim.faults.delay_replies(0)
    await trader.send("ping")
    assert await trader.recv_text() == "pong"


async def test_clear_disarms_request_faults(sim: Simulator, trader: Client) -> None:
    sim.faults.fail_next("subscribe", "20001", times=3)
    sim.faults.clear()
    (reply,) = await trader.subscribe("ticker:all")
    assert reply["success"] is True


# --- the slow-client policy --------------------------------------------------------------------


class RawClient:
    """A WebSocket client on a bare TCP stream that reads only when told to."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    @classmethod
    async def open(cls, url: str, *, receive_buffer: int | None = None) -> RawClient:
        host_port = url.split("//", 1)[1].split("/", 1)[0]
        host, port = host_port.rsplit(":", 1)
        sock = trio.socket.socket()
        if receive_buffer is not None:
            # A small window, so the kernel buffers little and the server's outbox fills fast.
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, receive_buffer)
        await sock.connect((host, int(port)))
        stream = trio.SocketStream(sock)
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host=host_port, target="/v2/websocket")))
        client = cls(stream)
        while True:
            ws.receive_data(await stream.receive_some(65536))
            if any(isinstance(e, AcceptConnection) for e in ws.events()):
                break
        return client

    async def send_text(self, text: str) -> None:
        payload = text.encode()
        assert len(payload) < 126
        mask = b"\x01\x02\x03\x04"
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await self.stream.send_all(bytes((0x81, 0x80 | len(payload))) + mask + masked)

    async def frame(self) -> tuple[int, bytes]:
        """The next (opcode, payload); raises EOFError when the server closed the socket."""
        while True:
            if len(self.buffer) >= 2:
                length = self.buffer[1] & 0x7F
                offset = 2
                if length == 126:
                    (length,) = struct.unpack_from("!H", self.buffer, 2)
                    offset = 4
                elif length == 127:
                    (length,) = struct.unpack_from("!Q", self.buffer, 2)
                    offset = 10
                if len(self.buffer) >= offset + length:
                    opcode = self.buffer[0] & 0x0F
                    payload = bytes(self.buffer[offset : offset + length])
                    del self.buffer[: offset + length]
                    return opcode, payload
            data = await self.stream.receive_some(1 << 20)
            if not data:
                raise EOFError
            self.buffer += data


async def test_a_client_that_stops_reading_is_disconnected_and_others_are_not(
    autojump_clock: trio.testing.MockClock,
) -> None:
    options = WsOptions(outbox_limit=256 * 1024)
    async with serve(participants_rate=None, rest_port=None, ws_options=options) as sim:
        slow = await RawClient.open(sim.ws_url)
        async with connect(sim) as fast:
            big = "x" * 100_000
            for _ in range(200):  # 20 MB: more than the socket buffers and the outbox hold
                sim.faults.inject(big)
                assert await fast.recv_text() == big
                await trio.lowlevel.checkpoint()
            assert sim.faults.connection_count == 1
            await fast.send("ping")
            assert await fast.recv_text() == "pong"
        with pytest.raises(EOFError):
            while True:
                await slow.frame()


LEVELS = 500


async def test_depth_is_conflated_for_a_slow_reader(
    autojump_clock: trio.testing.MockClock,
) -> None:
    options = WsOptions(outbox_limit=64 * 1024)
    async with serve(participants_rate=None, rest_port=None, ws_options=options) as sim:
        slow = await RawClient.open(sim.ws_url, receive_buffer=4096)
        await slow.send_text('{"op":"subscribe","args":["depth:BTC-USD-SWAP-LIN"]}')
        engine = sim.exchange.engine
        for i in range(LEVELS):  # a deep, changing book: far more depth data than the outbox holds
            engine.place(
                "1001",
                market_code=MARKET,
                side=Side.BUY,
                order_type=OrderType.LIMIT,
                quantity=Decimal("0.001"),
                price=Decimal(30000 + i),
            )
            sim.exchange.flush()
            await trio.sleep(0.05)
        assert sim.faults.connection_count == 1
        seqs = []
        last_bids = 0
        while last_bids < LEVELS:
            _, payload = await slow.frame()
            message = json.loads(payload)
            if message.get("table") == "depth":
                entry = message["data"][0]
                seqs.append(entry["seqNum"])
                last_bids = len(entry["bids"])
        assert seqs == sorted(set(seqs))
        assert len(seqs) < LEVELS / 2  # most snapshots were conflated away
