"""Both WebSocket transports against scripted servers: one test body, each transport.

The servers are small wsproto endpoints written here, each playing one scenario (echo, a burst
of frames, a fragmented message, a ping, a close with a code, a refused handshake, TLS...). They
write server frames byte for byte where the scenario needs it (fragments, invalid UTF-8), so the
transports are checked against the wire, not against each other. A few tests only concern the
sans-IO transport (its size limit and what an interrupted write does to it).
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)

from flexconn._socket import DisconnectReason, SocketClosed
from flexconn.errors import ConnectionClosed, ConnectTimeout, TransportError
from flexconn.transport import (
    DEFAULT_TRANSPORT,
    Transport,
    TransportFactory,
    open_sansio_websocket,
    open_trio_websocket,
)

TLS = Path(__file__).parent / "tls"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING = 0x0, 0x1, 0x2, 0x8, 0x9


def server_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """An unmasked server frame, byte for byte."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


class Peer:
    """The server's end of one connection: wsproto reads the client, raw bytes go out."""

    def __init__(self, stream: trio.abc.Stream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self._pending: list[Event] = []

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def text(self, message: str) -> None:
        await self.send(server_frame(OP_TEXT, message.encode()))

    async def event(self) -> Event | None:
        """The client's next event; ``None`` once the client closed the TCP connection."""
        while not self._pending:
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                return None
            if not data:
                return None
            self.ws.receive_data(bytes(data))
            self._pending.extend(self.ws.events())
        return self._pending.pop(0)

    async def close(self, code: int, reason: str = "") -> None:
        await self.send(server_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()))


Script = Callable[[Peer], Awaitable[None]]


@asynccontextmanager
async def scripted_server(
    script: Script,
    *,
    tls: ssl.SSLContext | None = None,
    reject: int | None = None,
    answer: bool = True,
) -> AsyncIterator[str]:
    """Serve ``script`` to every connection; yields the ``ws://`` (or ``wss://``) URL.

    ``reject`` refuses the handshake with that HTTP status; ``answer=False`` accepts TCP
    connections and never says a word.
    """

    async def handle(stream: trio.abc.Stream) -> None:
        if tls is not None:
            stream = trio.SSLStream(stream, tls, server_side=True)
        if not answer:
            await trio.sleep_forever()
        ws = WSConnection(ConnectionType.SERVER)
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                ws.receive_data(bytes(data))
                if any(isinstance(event, Request) for event in ws.events()):
                    break
            if reject is not None:
                await stream.send_all(ws.send(RejectConnection(status_code=reject)))
                return
            await stream.send_all(ws.send(AcceptConnection()))
            await script(Peer(stream, ws))
        except trio.BrokenResourceError:
            pass  # a TLS client that refused our certificate
        finally:
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        yield f"{'wss' if tls else 'ws'}://127.0.0.1:{port}/v2/websocket"
        nursery.cancel_scope.cancel()


def trio_websocket_defect(
    request: pytest.FixtureRequest, transport: TransportFactory, reason: str
) -> None:
    """Expect this test to fail on trio-websocket (strictly: a fix there turns it red)."""
    if transport is open_trio_websocket:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


async def echo(peer: Peer) -> None:
    """Echo text, answer pings and close frames."""
    while True:
        event = await peer.event()
        if event is None:
            return
        if isinstance(event, TextMessage):
            await peer.text(event.data)
        elif isinstance(event, Ping | CloseConnection):
            await peer.send(peer.ws.send(event.response()))
            if isinstance(event, CloseConnection):
                return


async def test_the_default_transport_is_the_sansio_one() -> None:
    assert DEFAULT_TRANSPORT is open_sansio_websocket


async def test_messages_round_trip_in_order(transport: TransportFactory) -> None:
    async with (
        scripted_server(echo) as url,
        transport(url, ssl_context=None, connect_timeout=5) as ws,
    ):
        for text in ("one", "zwei", "три"):
            await ws.send(text)
        assert [await ws.receive() for _ in range(3)] == ["one", "zwei", "три"]


async def test_a_burst_of_frames_in_one_write_arrives_whole_and_in_order(
    transport: TransportFactory,
) -> None:
    big = "x" * (1 << 20)

    async def burst(peer: Peer) -> None:
        frames = [server_frame(OP_TEXT, f"message {i}".encode()) for i in range(2000)]
        frames.append(server_frame(OP_TEXT, big.encode()))
        await peer.send(b"".join(frames))
        await echo(peer)

    async with (
        scripted_server(burst) as url,
        transport(url, ssl_context=None, connect_timeout=5) as ws,
    ):
        assert [await ws.receive() for _ in range(2000)] == [f"message {i}" for i in range(2000)]
        assert await ws.receive() == big


async def test_a_fragmented_message_is_reassembled(transport: TransportFactory) -> None:
    async def fragments(peer: Peer) -> None:
        # "fragménted", its "é" (two bytes in UTF-8) split across frames
        await peer.send(server_frame(OP_TEXT, b"frag", fin=False))
        await peer.send(server_frame(OP_PING, b"between"))  # control frames may interleave
        await peer.send(server_frame(OP_CONT, b"m\xc3", fin=False))
        await peer.send(server_frame(OP_CONT, b"\xa9nted", fin=True))
        await echo(peer)

    async with (
        scripted_server(fragments) as url,
        transport(url, ssl_context=None, connect_timeout=5) as ws,
    ):
        assert await ws.receive() == "fragménted"


async def test_a_binary_message_is_read_as_text(transport: TransportFactory) -> None:
    async def binary(peer: Peer) -> None:
        await peer.send(server_frame(OP_BINARY, b'{"nonce": "1"}'))
        await echo(peer)

    async with (
        scripted_server(binary) as url,
        transport(url, ssl_context=None, connect_timeout=5) as ws,
    ):
        assert await ws.receive() == '{"nonce": "1"}'


async def test_a_server_ping_is_answered_with_its_payload(transport: TransportFactory) -> None:
    pongs: list[bytes] = []

    async def pinging(peer: Peer) -> None:
        await peer.send(server_frame(OP_PING, b"are you there"))
        event = await peer.event()
        assert isinstance(event, Pong)
        pongs.append(bytes(event.payload))
        await peer.text("thanks")
        await echo(peer)

    async with (
        scripted_server(pinging) as url,
        transport(url, ssl_context=None, connect_timeout=5) as ws,
    ):
        assert await ws.receive() == "thanks"
    assert pongs == [b"are you there"]


async def test_ping_returns_once_its_pong_is_read(transport: TransportFactory) -> None:
    async with (
        scripted_server(echo) as url,
        transport(url, ssl_context=None, connect_timeout=5) as ws,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(ws.receive)  # a reader, as the connection always runs
        with trio.fail_after(5):
            await ws.ping()
            await ws.ping()
        nursery.cancel_scope.cancel()


async def test_a_pending_ping_fails_when_the_connection_drops(
    transport: TransportFactory, request: pytest.FixtureRequest
) -> None:
    trio_websocket_defect(
        request, transport, "trio-websocket 0.12 never wakes a ping whose connection closed"
    )

    async def drop_on_ping(peer: Peer) -> None:
        while not isinstance(await peer.event(), Ping):
            pass  # never answered: the TCP connection is closed instead

    async with (
        scripted_server(drop_on_ping) as url,
        transport(url, ssl_context=None, connect_timeout=5) as ws,
    ):

        async def read() -> None:
            with pytest.raises(ConnectionClosed):
                await ws.receive()

        with trio.fail_after(1):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                with pytest.raises(ConnectionClosed):
                    await ws.ping()


async def test_a_close_frame_ends_receiving_after_the_messages_before_it(
    transport: TransportFactory,
) -> None:
    async def goodbye(peer: Peer) -> None:
        await peer.text("last words")
        await peer.close(4000, "maintenance")
        await peer.event()

    async with (
        scripted_server(goodbye) as url,
        transport(url, ssl_context=None, connect_timeout=5) as ws,
    ):
        assert await ws.receive() == "last words"
        with pytest.raises(SocketClosed, match=r"code 4000 \(maintenance\)") as info:
            await ws.receive()
        assert info.value.disconnect is DisconnectReason.CLOSED_BY_SERVER
        assert info.value.close_code == 4000
        with pytest.raises(ConnectionClosed):
            await ws.send("anyone?")


async def test_a_dropped_tcp_connection_raises_connection_closed(
    transport: TransportFactory,
) -> None:
    async def hang_up(peer: Peer) -> None:
        await peer.text("hello")

    async with (
        scripted_server(hang_up) as url,
        transport(url, ssl_context=None, connect_timeout=5) as ws,
    ):
        assert await ws.receive() == "hello"
        with pytest.raises(SocketClosed) as info:
            await ws.receive()
        assert info.value.disconnect is DisconnectReason.CONNECTION_LOST
        assert info.value.close_code is None


async def test_aclose_performs_the_closing_handshake_and_is_idempotent(
    transport: TransportFactory,
) -> None:
    closes: list[tuple[int, str]] = []

    async def record(peer: Peer) -> None:
        while True:
            event = await peer.event()
            if isinstance(event, CloseConnection):
                closes.append((event.code, event.reason or ""))
                await peer.send(peer.ws.send(event.response()))
                return

    async with (
        scripted_server(record) as url,
        transport(url, ssl_context=None, connect_timeout=5) as ws,
    ):
        with trio.fail_after(5):
            await ws.aclose("done")
            await ws.aclose("again")
        with pytest.raises(ConnectionClosed):
            await ws.send("after close")
        with pytest.raises(ConnectionClosed):
            await ws.receive()
    assert closes == [(1000, "done")]


async def test_a_refused_handshake_is_a_transport_error_naming_the_status(
    transport: TransportFactory,
) -> None:
    async with scripted_server(echo, reject=503) as url:
        with pytest.raises(TransportError, match="HTTP 503"):
            async with transport(url, ssl_context=None, connect_timeout=5):
                pytest.fail("must not connect")


async def test_a_silent_server_is_a_connect_timeout(
    transport: TransportFactory, request: pytest.FixtureRequest
) -> None:
    trio_websocket_defect(
        request,
        transport,
        "trio-websocket 0.12 waits for its reader task after a connect timeout, forever when "
        "the server keeps the TCP connection open without answering",
    )
    # Real time (a short timeout): the connect runs on real sockets.
    async with scripted_server(echo, answer=False) as url:
        start = trio.current_time()
        with trio.fail_after(1), pytest.raises(ConnectTimeout):
            async with transport(url, ssl_context=None, connect_timeout=0.3):
                pytest.fail("must not connect")
        assert trio.current_time() - start >= 0.3


async def test_nothing_listening_is_a_transport_error(transport: TransportFactory) -> None:
    async with scripted_server(echo) as url:
        pass  # the port is free again
    with pytest.raises(TransportError):
        async with transport(url, ssl_context=None, connect_timeout=5):
            pytest.fail("must not connect")


async def test_invalid_utf8_in_a_text_message_closes_the_connection(
    transport: TransportFactory, request: pytest.FixtureRequest
) -> None:
    trio_websocket_defect(
        request,
        transport,
        "trio-websocket 0.12 closes with 1007 but then hangs leaving its context, ignoring its "
        "disconnect timeout",
    )

    async def garbage(peer: Peer) -> None:
        await peer.send(server_frame(OP_TEXT, b"\xff\xfe not utf-8"))
        await echo(peer)

    async with scripted_server(garbage) as url:
        with trio.fail_after(1):
            async with transport(url, ssl_context=None, connect_timeout=5) as ws:
                with pytest.raises(SocketClosed) as info:
                    await ws.receive()
                assert info.value.disconnect is DisconnectReason.PROTOCOL_ERROR
                assert info.value.close_code == 1007


async def test_a_message_over_the_size_limit_closes_with_1009_unread(
    transport: TransportFactory,
) -> None:
    closes: list[int] = []

    async def oversized(peer: Peer) -> None:
        await peer.text("small")
        await peer.send(server_frame(OP_TEXT, b"y" * 2000))
        while (event := await peer.event()) is not None:
            if isinstance(event, CloseConnection):
                closes.append(event.code)
                await peer.send(peer.ws.send(event.response()))
                return

    async with (
        scripted_server(oversized) as url,
        transport(url, ssl_context=None, connect_timeout=5, max_frame_bytes=1000) as ws,
    ):
        assert await ws.receive() == "small"
        with trio.fail_after(5), pytest.raises(SocketClosed, match="frame too large") as info:
            await ws.receive()
        assert info.value.disconnect is DisconnectReason.FRAME_TOO_LARGE
        assert info.value.close_code == 1009
    assert closes == [1009]


def _server_tls() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TLS / "localhost.pem", TLS / "localhost.key")
    return context


async def test_wss_verifies_the_certificate_by_default(transport: TransportFactory) -> None:
    async with scripted_server(echo, tls=_server_tls()) as url:
        # (trio-websocket notices the refused handshake only when connect_timeout expires)
        with pytest.raises(TransportError):
            async with transport(url, ssl_context=None, connect_timeout=1):
                pytest.fail("a self-signed certificate must not be trusted by default")
        trusting = ssl.create_default_context(cafile=str(TLS / "localhost.pem"))
        async with transport(url, ssl_context=trusting, connect_timeout=5) as ws:
            await ws.send("over TLS")
            assert await ws.receive() == "over TLS"


# -- the sans-IO transport only ------------------------------------------------------------------


async def test_sansio_refuses_an_oversized_frame_from_its_header() -> None:
    # Only the header of a 1 GiB frame is ever sent: refusing it must not wait for the payload.
    async def announces_a_huge_frame(peer: Peer) -> None:
        await peer.send(struct.pack("!BBQ", 0x80 | OP_TEXT, 127, 1 << 30) + b"y" * 100)
        await echo(peer)

    async with (
        scripted_server(announces_a_huge_frame) as url,
        open_sansio_websocket(url) as ws,
    ):
        with trio.fail_after(5), pytest.raises(SocketClosed) as info:
            await ws.receive()
        assert info.value.disconnect is DisconnectReason.FRAME_TOO_LARGE


async def test_sansio_reports_a_refused_certificate_at_once() -> None:
    async with scripted_server(echo, tls=_server_tls()) as url:
        with trio.fail_after(5), pytest.raises(TransportError, match=r"TLS error.*certificate"):
            async with open_sansio_websocket(url, connect_timeout=30):
                pytest.fail("a self-signed certificate must not be trusted by default")


async def test_sansio_write_interrupted_midway_fails_every_operation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def deaf(peer: Peer) -> None:
        await trio.sleep_forever()  # never reads: the client's writes back up

    async with scripted_server(deaf) as url, open_sansio_websocket(url) as ws:
        receiving: list[BaseException] = []

        async def read(ws: Transport) -> None:
            try:
                await ws.receive()
            except ConnectionClosed as exc:
                receiving.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read, ws)
            with trio.move_on_after(1) as scope:
                while True:
                    await ws.send("z" * (1 << 20))  # until the socket buffers fill up
            assert scope.cancelled_caught
        assert len(receiving) == 1, "the pending receive must fail too"
        with pytest.raises(ConnectionClosed, match="interrupted"):
            await ws.send("more")
