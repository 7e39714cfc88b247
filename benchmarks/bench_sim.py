"""Simulator throughput, measured by bare clients in other processes.

Two questions, each asked ``--rounds`` times on a fresh simulator and reported as min/median/max:

* **fan-out**: how many frames per second the simulator pushes in firehose mode (synthetic
  participants flat out, depth published on every book change) to 1 and to 10 connections, each
  subscribed to ``depthL25`` and ``trade`` of every market. The readers run in separate
  processes on raw sockets and only walk frame headers (payloads are never decoded), so they
  are cheap; what they count is what the server delivered. The server's own count
  (:class:`~flexconn.sim.WsStatistics`) is reported beside it, with the depth snapshots it
  conflated for readers that fell behind (the server produces more than a reader takes).
* **orders**: how many orders per second one WebSocket connection gets matched: ``placeorder``
  commands (and ``placeorders`` batches of 20) pipelined 64 deep, every SELL crossing the BUY
  before it, replies counted by the client. Baseline in the same run: the same orders through
  ``Engine.place`` directly, with no server.

Rate limits are off. Run: ``.venv/bin/python benchmarks/bench_sim.py [--rounds 3] [--seconds 2]``
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import math
import multiprocessing
import os
import selectors
import socket
import statistics
import struct
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from multiprocessing.connection import Connection
from typing import Any

import trio
from benchjson import add_json_option, dump, group

from flexconn.models.enums import OrderType, Side
from flexconn.sim import Cadences, RateLimits, Simulator, serve
from flexconn.sim.engine import Engine

MARKET = "BTC-USD-SWAP-LIN"
WINDOW = 64
BATCH = 20


# --- a bare client (stdlib only: it runs in the reader processes) -----------------------------


def _ws_open(url: str) -> tuple[socket.socket, bytearray]:
    """TCP connect and WebSocket handshake; returns the socket and any bytes read past it."""
    host_port, _, path = url.split("//", 1)[1].partition("/")
    host, port = host_port.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("handshake failed")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise ConnectionError(head.decode(errors="replace"))
    return sock, bytearray(rest)


def _masked(text: str) -> bytes:
    """A client text frame (masked, as clients must)."""
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    repeated = (mask * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")
    return header + mask + body


def _count_frames(buffer: bytearray) -> int:
    """Count the complete frames at the start of ``buffer`` and remove them."""
    i = 0
    n = 0
    size = len(buffer)
    while size - i >= 2:
        length = buffer[i + 1] & 0x7F
        if length < 126:
            header = 2
        elif length == 126:
            if size - i < 4:
                break
            length = (buffer[i + 2] << 8) | buffer[i + 3]
            header = 4
        else:
            if size - i < 10:
                break
            length = int.from_bytes(buffer[i + 2 : i + 10], "big")
            header = 10
        if size - i < header + length:
            break
        i += header + length
        n += 1
    del buffer[:i]
    return n


def _reader(url: str, sockets: int, channels: list[str], control: Connection) -> None:
    """A reader process: subscribe ``sockets`` connections, count frames and bytes, and answer
    every ``"mark"`` on ``control`` with the totals so far; stop on ``"stop"``."""
    selector = selectors.DefaultSelector()
    frames = [0] * sockets
    received = [0] * sockets
    buffers: list[bytearray] = []
    socks: list[socket.socket] = []
    for index in range(sockets):
        sock, rest = _ws_open(url)
        sock.sendall(_masked(json.dumps({"op": "subscribe", "args": channels})))
        sock.setblocking(False)
        buffers.append(rest)
        socks.append(sock)
        selector.register(sock, selectors.EVENT_READ, index)
    selector.register(control, selectors.EVENT_READ, -1)
    control.send("ready")
    while True:
        for key, _ in selector.select():
            index = key.data
            if index == -1:
                command = control.recv()
                if command == "stop":
                    return
                control.send((sum(frames), sum(received)))
                continue
            sock = socks[index]
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                continue
            if not data:
                selector.unregister(sock)
                continue
            received[index] += len(data)
            buffer = buffers[index]
            buffer += data
            frames[index] += _count_frames(buffer)


def _login_frame(api_key: str, api_secret: str) -> bytes:
    ts = str(int(time.time() * 1000))
    signature = base64.b64encode(
        hmac.new(api_secret.encode(), f"{ts}GET/auth/self/verify".encode(), hashlib.sha256).digest()
    ).decode()
    request = {"op": "login", "data": {"apiKey": api_key, "timestamp": ts, "signature": signature}}
    return _masked(json.dumps(request))


def _order(side: str) -> dict[str, Any]:
    return {
        "marketCode": MARKET,
        "side": side,
        "orderType": "LIMIT",
        "quantity": "0.001",
        "price": "50000",
        "timeInForce": "GTC",
    }


def _trader(url: str, api_key: str, api_secret: str, batch: int, control: Connection) -> None:
    """An order client process: log in, then keep ``WINDOW`` commands in flight (each a
    ``placeorder``, or a ``placeorders`` of ``batch`` orders) and count the replies."""
    sock, buffer = _ws_open(url)
    sock.sendall(_login_frame(api_key, api_secret))
    frames = 0
    while frames < 2:  # the greeting and the login reply
        buffer += sock.recv(65536)
        frames += _count_frames(buffer)
    if batch == 1:
        commands = [
            _masked(json.dumps({"op": "placeorder", "data": _order(side)}))
            for side in ("BUY", "SELL")
        ]
    else:
        orders = [_order("BUY" if i % 2 == 0 else "SELL") for i in range(batch)]
        commands = [_masked(json.dumps({"op": "placeorders", "dataArray": orders}))]
    sent = 0
    replies = 0
    sock.sendall(b"".join(commands[i % len(commands)] for i in range(WINDOW)))
    sent = WINDOW
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ, 0)
    selector.register(control, selectors.EVENT_READ, -1)
    control.send("ready")
    while True:
        for key, _ in selector.select():
            if key.data == -1:
                if control.recv() == "stop":
                    return
                control.send((replies, 0))
                continue
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                continue
            buffer += data
            replies += _count_frames(buffer)
            due = replies // batch + WINDOW - sent
            if due > 0:
                sock.sendall(b"".join(commands[(sent + i) % len(commands)] for i in range(due)))
                sent += due


# --- the measuring side -------------------------------------------------------------------------


async def _measure(
    sim: Simulator,
    target: Callable[..., None],
    args: Sequence[Any],
    processes: int,
    *,
    warmup: float,
    seconds: float,
) -> tuple[float, float, float]:
    """Start client processes, then return (client frames/s, server frames/s, conflated/s)."""
    context = multiprocessing.get_context("spawn")
    pipes = []
    workers = []
    for _ in range(processes):
        mine, theirs = context.Pipe()
        worker = context.Process(target=target, args=(*args, theirs), daemon=True)
        worker.start()
        pipes.append(mine)
        workers.append(worker)
    try:
        for pipe in pipes:
            assert await trio.to_thread.run_sync(pipe.recv) == "ready"
        await trio.sleep(warmup)

        async def mark() -> tuple[int, int, int, float]:
            for pipe in pipes:
                pipe.send("mark")
            counts = [await trio.to_thread.run_sync(pipe.recv) for pipe in pipes]
            stats = sim.ws_server.statistics()
            return (
                sum(c[0] for c in counts),
                stats.frames_sent,
                stats.frames_conflated,
                trio.current_time(),
            )

        c0, s0, x0, t0 = await mark()
        await trio.sleep(seconds)
        c1, s1, x1, t1 = await mark()
        elapsed = t1 - t0
        return (c1 - c0) / elapsed, (s1 - s0) / elapsed, (x1 - x0) / elapsed
    finally:
        for pipe in pipes:
            pipe.send("stop")
        for worker in workers:
            await trio.to_thread.run_sync(worker.join, 5)
            if worker.is_alive():
                worker.kill()


#: Every summarised measurement, for ``--json``: (label, samples, unit).
MEASURED: list[tuple[str, list[float], str]] = []


def _summary(label: str, values: list[float], unit: str) -> str:
    MEASURED.append((label, values, unit))
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{label:<44} {low:>11,.0f} {mid:>11,.0f} {high:>11,.0f}  {unit}"


async def _fanout(connections: int, rounds: int, seconds: float) -> list[str]:
    client: list[float] = []
    server: list[float] = []
    conflated: list[float] = []
    for _ in range(rounds):
        async with serve(
            participants_rate=math.inf,
            rest_port=None,
            rate_limits=RateLimits.unlimited(),
            cadences=Cadences.firehose(),
        ) as sim:
            markets = list(sim.exchange.markets)
            channels = [f"depthL25:{m}" for m in markets] + [f"trade:{m}" for m in markets]
            processes = 1 if connections == 1 else 2
            per_process = connections // processes
            got, sent, dropped = await _measure(
                sim,
                _reader,
                (sim.ws_url, per_process, channels),
                processes,
                warmup=0.5,
                seconds=seconds,
            )
        client.append(got)
        server.append(sent)
        conflated.append(dropped)
    return [
        _summary(f"fan-out to {connections}: frames/s received", client, "frames/s"),
        _summary(f"fan-out to {connections}: frames/s sent (server)", server, "frames/s"),
        _summary(f"fan-out to {connections}: depth conflated (server)", conflated, "frames/s"),
    ]


async def _orders(batch: int, rounds: int, seconds: float) -> list[str]:
    rates: list[float] = []
    for _ in range(rounds):
        async with serve(
            participants_rate=None, rest_port=None, rate_limits=RateLimits.unlimited()
        ) as sim:
            key = sim.demo_key
            replies, _, _ = await _measure(
                sim,
                _trader,
                (sim.ws_url, key.api_key, key.api_secret, batch),
                1,
                warmup=0.3,
                seconds=seconds,
            )
        rates.append(replies)
    op = "placeorder" if batch == 1 else f"placeorders x{batch}"
    return [_summary(f"orders via WebSocket ({op})", rates, "orders/s")]


def _engine_baseline(rounds: int, orders: int = 50_000) -> list[str]:
    rates: list[float] = []
    for _ in range(rounds):
        engine = Engine()
        engine.open_account("demo", {"USD": Decimal(10**9)})
        price = Decimal(50000)
        quantity = Decimal("0.001")
        start = time.perf_counter()
        for i in range(orders):
            engine.place(
                "demo",
                market_code=MARKET,
                side=Side.BUY if i % 2 == 0 else Side.SELL,
                order_type=OrderType.LIMIT,
                quantity=quantity,
                price=price,
            )
            if i % 64 == 0:
                engine.drain_events()
        rates.append(orders / (time.perf_counter() - start))
    return [_summary("baseline: same orders via Engine.place", rates, "orders/s")]


async def main(rounds: int, seconds: float) -> None:
    print(f"{'':<44} {'min':>11} {'median':>11} {'max':>11}")
    started = time.perf_counter()
    lines = _engine_baseline(rounds)
    lines += await _orders(1, rounds, seconds)
    lines += await _orders(BATCH, rounds, seconds)
    for line in lines:
        print(line, flush=True)
    for connections in (1, 10):
        for line in await _fanout(connections, rounds, seconds):
            print(line, flush=True)
    print(f"total {time.perf_counter() - started:.1f} s on {os.cpu_count()} CPUs")


def _groups() -> list[dict[str, Any]]:
    """The measurements as report groups: orders beside the engine baseline, fan-out apart."""
    found = {label: (values, unit) for label, values, unit in MEASURED}
    orders = {label: v for label, (v, unit) in found.items() if unit == "orders/s"}
    baseline = "baseline: same orders via Engine.place"
    groups = [group("orders matched", "orders/s", orders, baseline=baseline)]
    for connections in (1, 10):
        prefix = f"fan-out to {connections}: "
        series = {
            label.removeprefix(prefix): values
            for label, (values, _) in found.items()
            if label.startswith(prefix)
        }
        sent = "frames/s sent (server)"
        groups.append(group(f"fan-out to {connections}", "frames/s", series, baseline=sent))
    return groups


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    add_json_option(parser)
    options = parser.parse_args()
    trio.run(main, options.rounds, options.seconds)
    title = "Simulator throughput (bare clients in other processes)"
    dump(options.json, "bench_sim", title, _groups())
