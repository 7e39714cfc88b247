"""A raw pre-framed WebSocket server: a server that cannot be the bottleneck of a feed benchmark.

Before anything is timed it builds realistic CoinFLEX messages with distinct values in every one
of them (no frame is repeated until the whole set has gone out once, so no client's cache stays
warm on one frame), encodes each as a server WebSocket frame and joins them into one buffer,
split into chunks of about 128 KiB at frame boundaries. While streaming it only hands the next
chunk to ``socket.send``: no encoding, no per-message work.

Streams (chosen by the URL path):

* ``/orders``: order-channel notices of one account, an ``OrderOpened``, an ``OrderMatched``
  (partial fill) and an ``OrderClosed`` per order, ~400 B each on average, every order with its
  own id, client order id, price, quantity, match id, fees and timestamps.
* ``/depth``: ``depthL25`` snapshots of one market, 25 levels a side: a mid price on a random
  walk, fresh quantities per level per snapshot, increasing ``seqNum`` and ``timestamp``, and the
  correct checksum, encoded by the simulator's own encoder.

The protocol side is the least a client needs: the WebSocket handshake; a ``login`` is answered
with success, a ``subscribe`` with one success per channel, after which the stream starts; a ping
gets its pong, a close its close. Control replies are written only between chunks (at frame
boundaries). One connection is served at a time (the benchmark's clients take turns).

Run in its own process (:func:`serve`), pinned to the server CPU.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import select
import socket
import struct
import time
from collections import deque
from decimal import Decimal
from multiprocessing.connection import Connection as Pipe
from typing import Any

import orjson

__all__ = ["MARKET", "build_streams", "serve"]

MARKET = "BTC-USD-SWAP-LIN"
ACCOUNT = "1001"
CHUNK = 128 * 1024
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_KEY = re.compile(rb"(?i)sec-websocket-key:\s*(\S+)")


def _frame(payload: bytes, opcode: int = 0x1) -> bytes:
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return header + payload


def order_notices(orders: int, rng: random.Random) -> list[bytes]:
    """Three notices per order (opened, partly matched, closed), all values distinct."""
    from flexconn.sim import ws_messages as msg

    payloads = []
    ts = 1_700_000_000_000
    for i in range(orders):
        price = Decimal(30000) + Decimal("0.5") * rng.randrange(20000)
        quantity = Decimal(rng.randrange(1, 50000)) / 1000
        matched = (quantity * Decimal(rng.randrange(1, 100)) / 100).quantize(Decimal("0.001"))
        matched = max(matched, Decimal("0.001"))
        remain = quantity - matched
        side = "BUY" if rng.random() < 0.5 else "SELL"
        ts += rng.randrange(1, 5)
        base = {
            "accountId": ACCOUNT,
            "clientOrderId": str(10_000_000 + i),
            "orderId": str(1_000_000_000 + 7 * i),
        }
        tail = {
            "price": msg.dec(price),
            "quantity": msg.dec(quantity),
            "side": side,
        }
        opened = {
            "notice": "OrderOpened",
            **base,
            **tail,
            "status": "OPEN",
            "marketCode": MARKET,
            "timeInForce": "GTC",
            "timestamp": str(ts),
            "orderType": "LIMIT",
            "isTriggered": "False",
        }
        match = {
            "notice": "OrderMatched",
            **base,
            **tail,
            "status": "PARTIAL_FILL",
            "marketCode": MARKET,
            "timeInForce": "GTC",
            "timestamp": str(ts + 1),
            "matchId": str(500_000_000 + i),
            "matchPrice": msg.dec(price),
            "matchQuantity": msg.dec(matched),
            "orderMatchType": "MAKER" if rng.random() < 0.7 else "TAKER",
            "remainQuantity": msg.dec(remain),
            "orderType": "LIMIT",
            "fees": msg.dec((price * matched * Decimal("0.0002")).quantize(Decimal("0.00000001"))),
            "feeInstrumentId": "USD",
            "isTriggered": "False",
        }
        closed = {
            "notice": "OrderClosed",
            **base,
            **tail,
            "status": "CANCELED_BY_USER",
            "marketCode": MARKET,
            "timeInForce": "GTC",
            "timestamp": str(ts + 2),
            "remainQuantity": msg.dec(remain),
            "orderType": "LIMIT",
            "isTriggered": "False",
        }
        payloads += [orjson.dumps(msg.table("order", [entry])) for entry in (opened, match, closed)]
    return payloads


def depth_snapshots(count: int, rng: random.Random) -> list[bytes]:
    """``depthL25`` snapshots of :data:`MARKET`, all values distinct, checksums correct."""
    from flexconn.sim import ws_messages as msg

    tick = Decimal("0.5")
    mid = 60000
    seq = 1_700_000_000_000_000
    ts = 1_700_000_000_000
    payloads = []
    for _ in range(count):
        mid += rng.choice((-2, -1, 0, 0, 1, 2))
        seq += rng.randrange(1, 40)
        ts += rng.randrange(1, 20)
        best_ask = Decimal(mid) * tick + tick
        best_bid = Decimal(mid) * tick
        asks = [(best_ask + tick * i, Decimal(rng.randrange(1, 250000)) / 10000) for i in range(25)]
        bids = [(best_bid - tick * i, Decimal(rng.randrange(1, 250000)) / 10000) for i in range(25)]
        body = msg.depth_body(bids, asks)
        payloads.append(msg.depth_message(MARKET, seq, ts, body, table="depthL25"))
    return payloads


def build_streams(orders: int, depth: int, seed: int = 20240613) -> dict[str, dict[str, Any]]:
    """Every stream's chunks, frame count and mean frame size (bytes on the wire)."""
    rng = random.Random(seed)
    streams = {}
    for name, payloads in (
        ("orders", order_notices(orders, rng)),
        ("depth", depth_snapshots(depth, rng)),
    ):
        frames = [_frame(p) for p in payloads]
        chunks: list[bytes] = []
        current: list[bytes] = []
        size = 0
        for frame in frames:
            current.append(frame)
            size += len(frame)
            if size >= CHUNK:
                chunks.append(b"".join(current))
                current, size = [], 0
        if current:
            chunks.append(b"".join(current))
        total = sum(len(f) for f in frames)
        streams[name] = {
            "chunks": chunks,
            "frames": len(frames),
            "frame_bytes": total / len(frames),
            "payload_bytes": sum(len(p) for p in payloads) / len(payloads),
        }
    return streams


def _client_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Complete (masked) client frames at the start of ``buffer``, removed from it."""
    frames = []
    i = 0
    size = len(buffer)
    while size - i >= 2:
        opcode = buffer[i] & 0x0F
        length = buffer[i + 1] & 0x7F
        header = 2
        if length == 126:
            if size - i < 4:
                break
            length, header = struct.unpack_from("!H", buffer, i + 2)[0], 4
        elif length == 127:
            if size - i < 10:
                break
            length, header = struct.unpack_from("!Q", buffer, i + 2)[0], 10
        masked = buffer[i + 1] & 0x80
        start = i + header + (4 if masked else 0)
        if size < start + length:
            break
        payload = bytes(buffer[start : start + length])
        if masked:
            mask = bytes(buffer[i + header : i + header + 4])
            keys = (mask * (length // 4 + 1))[:length]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(
                length, "big"
            )
        frames.append((opcode, payload))
        i = start + length
    del buffer[:i]
    return frames


def _replies(payload: bytes) -> tuple[list[bytes], bool]:
    """The reply frames to one text command, and whether the stream should start."""
    try:
        command = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return [], False
    if not isinstance(command, dict):
        return [], False
    op = command.get("op")
    tag = command.get("tag")
    ts = str(time.time_ns() // 1_000_000)
    base: dict[str, Any] = {"event": op, "success": True}
    if tag is not None:
        base["tag"] = str(tag)
    if op == "login":
        return [_frame(orjson.dumps({**base, "timestamp": ts}))], False
    if op in ("subscribe", "unsubscribe"):
        replies = [
            _frame(orjson.dumps({**base, "channel": channel, "timestamp": ts}))
            for channel in command.get("args", [])
        ]
        return replies, op == "subscribe"
    return [], False


def _serve_one(conn: socket.socket, streams: dict[str, dict[str, Any]]) -> None:
    head = b""
    while b"\r\n\r\n" not in head:
        data = conn.recv(65536)
        if not data:
            return
        head += data
    head, _, rest = head.partition(b"\r\n\r\n")
    path = head.split(b" ", 2)[1].decode().strip("/").split("?")[0]
    found = _KEY.search(head)
    if found is None or path not in streams:
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return
    accept = base64.b64encode(hashlib.sha1(found.group(1) + _GUID).digest()).decode()
    conn.sendall(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
        ).encode()
    )
    chunks = streams[path]["chunks"]
    conn.setblocking(False)
    inbound = bytearray(rest)
    control: deque[bytes] = deque()
    pending = memoryview(b"")
    streaming = closing = False
    index = 0
    while True:
        for opcode, payload in _client_frames(inbound):
            if opcode == 0x1:
                replies, start = _replies(payload)
                control.extend(replies)
                streaming = streaming or start
            elif opcode == 0x9:
                control.append(_frame(payload, 0xA))
            elif opcode == 0x8:
                control.append(_frame(payload[:2], 0x8))
                closing = True
        writing = bool(pending) or bool(control) or (streaming and not closing)
        readable, writable, _ = select.select([conn], [conn] if writing else [], [], 1.0)
        if readable:
            try:
                data = conn.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = b"-"
            except OSError:
                return
            if not data:
                return
            if data != b"-":
                inbound += data
        if writable:
            if not pending:
                if control:
                    pending = memoryview(control.popleft())
                elif closing:
                    return
                else:
                    pending = memoryview(chunks[index])
                    index = (index + 1) % len(chunks)
            try:
                sent = conn.send(pending)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                return
            pending = pending[sent:]


def serve(pipe: Pipe, orders: int, depth: int, cpu_role: str = "server") -> None:
    """Child process: pin, build the streams, listen, report the port and frame sizes, serve
    until the pipe says stop (or closes)."""
    from harness import pin

    pin(cpu_role)
    streams = build_streams(orders, depth)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    pipe.send(
        {
            "url": f"ws://127.0.0.1:{port}",
            "streams": {
                name: {k: v for k, v in s.items() if k != "chunks"} for name, s in streams.items()
            },
        }
    )
    while True:
        ready, _, _ = select.select([listener.fileno(), pipe.fileno()], [], [])
        if pipe.fileno() in ready:
            return
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            _serve_one(conn, streams)
        finally:
            conn.close()
