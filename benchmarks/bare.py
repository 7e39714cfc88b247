"""The bare clients every flexconn contender is compared with. Nothing here imports flexconn.

* :func:`asyncio_feed` / :func:`asyncio_roundtrip` / :func:`asyncio_sustained`: asyncio and
  ``websockets`` (its asyncio client, defaults) with ``orjson``: the fastest common peer, and the
  baseline of the feed, round-trip and outbox benchmarks.
* :func:`trio_sansio_feed` / :func:`trio_sansio_roundtrip`: trio over a TCP stream with websockets'
  sans-IO ``ClientProtocol`` and ``orjson``: the floor of what a trio client can do.
* :func:`discard_reader`: a blocking socket that reads and throws the bytes away (no WebSocket
  parsing, no JSON): what the server can push at all, i.e. its capacity.

Each feed loop logs in and subscribes with prepared commands, reads for a warm-up, then counts
the messages it parses in a timed window; ``depth=True`` also reads every level of every depth
snapshot as :class:`~decimal.Decimal` (as flexconn's typed snapshot does: a float goes through its
shortest ``repr``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import socket
import struct
import time
from decimal import Decimal
from typing import Any

import orjson

__all__ = [
    "asyncio_feed",
    "asyncio_roundtrip",
    "asyncio_sustained",
    "discard_reader",
    "login_command",
    "read_levels",
    "trio_sansio_feed",
    "trio_sansio_roundtrip",
]

WS_LOGIN_SUFFIX = "GET/auth/self/verify"  # the documented login signature suffix


def login_command(api_key: str, api_secret: str, tag: int = 1) -> str:
    """A login command signed the documented way: HMAC-SHA256 of ``timestamp + suffix``."""
    ts = str(time.time_ns() // 1_000_000)
    digest = hmac.new(api_secret.encode(), (ts + WS_LOGIN_SUFFIX).encode(), hashlib.sha256)
    signature = base64.b64encode(digest.digest()).decode()
    data = {"apiKey": api_key, "timestamp": ts, "signature": signature}
    return orjson.dumps({"op": "login", "tag": tag, "data": data}).decode()


def read_levels(message: Any) -> int:
    """Read every level of a depth message as Decimal pairs; returns how many levels."""
    n = 0
    for snapshot in message.get("data", ()):  # replies (login, subscribe) have no data
        for side in (snapshot["asks"], snapshot["bids"]):
            levels = [(Decimal(repr(level[0])), Decimal(repr(level[1]))) for level in side]
            for _price, _quantity in levels:
                n += 1
    return n


def _result(count: int, start: float, end: float) -> dict[str, float]:
    return {"rate": count / (end - start), "count": count, "elapsed": end - start}


# -- asyncio + websockets ---------------------------------------------------------------------


def asyncio_feed(
    url: str, commands: list[str], seconds: float, warmup: float, depth: bool
) -> dict[str, float]:
    """Messages/s parsed (and levels read) by a bare asyncio websockets loop."""
    from websockets.asyncio.client import connect

    async def run() -> dict[str, float]:
        loads = orjson.loads
        # close_timeout: leaving does not wait for a firehose to drain past the closing handshake
        async with connect(url, close_timeout=0.2, max_size=2**22) as ws:
            for command in commands:
                await ws.send(command)
            deadline = time.perf_counter() + warmup
            while time.perf_counter() < deadline:
                loads(await ws.recv())
            count = 0
            start = time.perf_counter()
            deadline = start + seconds
            while True:
                for _ in range(64):
                    message = loads(await ws.recv())
                    if depth:
                        read_levels(message)
                count += 64
                now = time.perf_counter()
                if now >= deadline:
                    return _result(count, start, now)

    return asyncio.run(run())


async def _until_event(ws: Any, event: str) -> dict[str, Any]:
    while True:
        message = orjson.loads(await ws.recv())
        if isinstance(message, dict) and message.get("event") == event:
            return message


def _placed(text: str | bytes | bytearray) -> bool:
    """Whether a frame is a ``placeorder`` reply (asserting success)."""
    raw = text.encode() if isinstance(text, str) else bytes(text)
    if b'"placeorder"' not in raw:
        return False
    message = orjson.loads(raw)
    if not isinstance(message, dict) or message.get("event") != "placeorder":
        return False
    if message.get("submitted") is not True:
        raise AssertionError(f"order refused: {message}")
    return True


def asyncio_roundtrip(url: str, login: str, orders: list[str], pause: float) -> list[float]:
    """Seconds from send to the ``placeorder`` reply, one prepared order at a time.

    Logged in and subscribed to ``order:all`` as flexconn's connection is, so that the exchange
    does the same work (and sends the same notices) for both.
    """
    from websockets.asyncio.client import connect

    async def run() -> list[float]:
        latencies = []
        async with connect(url) as ws:
            await ws.send(login)
            await _until_event(ws, "login")
            await ws.send('{"op":"subscribe","tag":2,"args":["order:all"]}')
            await _until_event(ws, "subscribe")
            for text in orders:
                start = time.perf_counter()
                await ws.send(text)
                while not _placed(await ws.recv()):
                    pass
                latencies.append(time.perf_counter() - start)
                await asyncio.sleep(pause)
        return latencies

    return asyncio.run(run())


def asyncio_sustained(
    url: str,
    login: str,
    commands: list[str],
    orders_per_command: int,
    commands_per_second: float,
    warmup: float,
    window: float,
) -> dict[str, float]:
    """Orders acknowledged per second by a bare asyncio client batching by hand.

    It sends ``commands`` (each ``placeorder`` or ``placeorders`` of ``orders_per_command``) at
    ``commands_per_second`` from one task and counts the successful ``placeorder`` replies in
    another, over ``window`` seconds after ``warmup``; ``rate_limited`` counts 20007 replies.
    """
    from websockets.asyncio.client import connect

    async def run() -> dict[str, float]:
        async with connect(url, close_timeout=0.5) as ws:
            await ws.send(login)
            await _until_event(ws, "login")
            await ws.send('{"op":"subscribe","tag":2,"args":["order:all"]}')
            await _until_event(ws, "subscribe")
            acked: list[float] = []
            refused = [0]
            stop = time.perf_counter() + warmup + window

            async def sender() -> None:
                interval = 1 / commands_per_second
                due = time.perf_counter()
                for text in commands:
                    now = time.perf_counter()
                    if now >= stop:
                        return
                    if due > now:
                        await asyncio.sleep(due - now)
                    await ws.send(text)
                    due += interval

            async def receiver() -> None:
                while time.perf_counter() < stop:
                    try:
                        raw = await asyncio.wait_for(ws.recv(), stop - time.perf_counter())
                    except TimeoutError:
                        return
                    if '"placeorder"' not in raw:
                        continue
                    message = orjson.loads(raw)
                    if message.get("event") != "placeorder":
                        continue
                    if message.get("submitted") is True:
                        acked.append(time.perf_counter())
                    elif str(message.get("code")) == "20007":
                        refused[0] += 1

            begin = time.perf_counter() + warmup
            await asyncio.gather(sender(), receiver())
            counted = sum(1 for t in acked if begin <= t < stop)
            return {"rate": counted / window, "rate_limited": refused[0]}

    return asyncio.run(run())


# -- trio + websockets' sans-IO core ----------------------------------------------------------


async def _trio_open(url: str) -> tuple[Any, Any, list[Any]]:
    import trio
    from websockets.client import ClientProtocol
    from websockets.protocol import CONNECTING
    from websockets.uri import parse_uri

    uri = parse_uri(url)
    stream = await trio.open_tcp_stream(uri.host, uri.port)
    protocol = ClientProtocol(uri, max_size=2**22)
    protocol.send_request(protocol.connect())
    await stream.send_all(b"".join(protocol.data_to_send()))
    events: list[Any] = []
    while protocol.state is CONNECTING:
        protocol.receive_data(await stream.receive_some(65536))
        events += protocol.events_received()
    if protocol.handshake_exc is not None:
        raise protocol.handshake_exc
    return stream, protocol, [e for e in events if hasattr(e, "opcode")]


async def _trio_send(stream: Any, protocol: Any, text: str) -> None:
    protocol.send_text(text.encode())
    await stream.send_all(b"".join(protocol.data_to_send()))


def trio_sansio_feed(
    url: str, commands: list[str], seconds: float, warmup: float, depth: bool
) -> dict[str, float]:
    """Messages/s parsed by trio + websockets' sans-IO core + orjson (one read per chunk)."""
    import trio
    from websockets.frames import TEXT

    async def run() -> dict[str, float]:
        loads = orjson.loads
        stream, protocol, _ = await _trio_open(url)
        for command in commands:
            await _trio_send(stream, protocol, command)
        count = 0
        measuring = False
        start = time.perf_counter()
        deadline = start + warmup
        try:
            while True:
                protocol.receive_data(await stream.receive_some(262144))
                for event in protocol.events_received():
                    if event.opcode is TEXT:
                        message = loads(event.data)
                        if depth:
                            read_levels(message)
                        count += 1
                pending = protocol.data_to_send()
                if pending:
                    await stream.send_all(b"".join(pending))
                now = time.perf_counter()
                if now >= deadline:
                    if measuring:
                        return _result(count, start, now)
                    measuring, count, start, deadline = True, 0, now, now + seconds
        finally:
            await trio.aclose_forcefully(stream)

    return trio.run(run)


def trio_sansio_roundtrip(url: str, login: str, orders: list[str], pause: float) -> list[float]:
    """:func:`asyncio_roundtrip` on trio + websockets' sans-IO core."""
    import trio
    from websockets.frames import TEXT

    async def run() -> list[float]:
        stream, protocol, early = await _trio_open(url)
        queue = [e.data for e in early if e.opcode is TEXT]

        async def receive() -> bytes:
            while not queue:
                protocol.receive_data(await stream.receive_some(262144))
                queue.extend(e.data for e in protocol.events_received() if e.opcode is TEXT)
                pending = protocol.data_to_send()
                if pending:
                    await stream.send_all(b"".join(pending))
            data: bytes = queue.pop(0)
            return data

        async def until(event: str) -> None:
            while orjson.loads(await receive()).get("event") != event:
                pass

        latencies = []
        try:
            await _trio_send(stream, protocol, login)
            await until("login")
            await _trio_send(stream, protocol, '{"op":"subscribe","tag":2,"args":["order:all"]}')
            await until("subscribe")
            for text in orders:
                start = time.perf_counter()
                await _trio_send(stream, protocol, text)
                while not _placed(await receive()):
                    pass
                latencies.append(time.perf_counter() - start)
                await trio.sleep(pause)
        finally:
            await trio.aclose_forcefully(stream)
        return latencies

    return trio.run(run)


# -- the server's capacity --------------------------------------------------------------------


def _masked(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    keys = (mask * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")
    return header + mask + body


def discard_reader(
    url: str, commands: list[str], seconds: float, warmup: float, frame_bytes: float
) -> dict[str, float]:
    """Bytes/s the server pushes to a reader that parses nothing; ``rate`` in frames/s
    (bytes over the mean frame size on the wire, ``frame_bytes``)."""
    host_port, _, path = url.split("//", 1)[1].partition("/")
    host, port = host_port.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade"
        f"\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(65536)
    for command in commands:
        sock.sendall(_masked(command))
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    received = 0
    measuring = False
    start = time.perf_counter()
    deadline = start + warmup
    try:
        while True:
            received += sock.recv_into(view)
            now = time.perf_counter()
            if now >= deadline:
                if measuring:
                    elapsed = now - start
                    return {
                        "rate": received / frame_bytes / elapsed,
                        "bytes_per_s": received / elapsed,
                        "elapsed": elapsed,
                    }
                measuring, received, start, deadline = True, 0, now, now + seconds
    finally:
        sock.close()
