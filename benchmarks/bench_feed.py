"""How many messages per second does one flexconn connection deliver to its consumers?

Three cases against the simulator's firehose, each contender on one fresh connection, all in the
same run, interleaved round by round (``--rounds``) so that drift hits them alike:

* **depth + trade**: ``depthL25`` and ``trade`` of every market (``--markets``, 20 by default:
  the firehose publishes every subscribed book on every pass, so more markets keep it ahead of a
  fast client; snapshots are ~1.1 KB, trades ~0.2 KB).
* **order notices**: ``order:all`` of the demo account, logged in. The participants' own notices
  come too slowly to load a client, so the simulator process pushes ready-encoded ~400 B
  ``OrderOpened``/``OrderMatched``/``OrderClosed`` frames through the server's real order-notice
  path (``Fanout.send_private``, the outbox and writer of the connection), keeping 1024 in flight.
* **latest, slow consumer**: the depth channels only; flexconn's feeds use the ``latest`` policy
  and each consumer sleeps 5 ms per message, so almost every snapshot is conflated. What counts
  is frames/s the connection absorbs from the socket (``stats().frames_in``).

Contenders: bare loops that parse every frame with ``orjson.loads`` and do nothing else, on
trio-websocket (defaults), asyncio + websockets (defaults; its own process), websocket-client (the
exchange's adapter pattern, defaults) and flexconn's sans-IO transport alone; then flexconn's
connection on each transport, one consumer task per feed reading every typed message
(``BLOCK`` feeds) or slowly (``latest``). The consumers iterate their feeds (``async for``, a trip
through trio's scheduler per message); the "draining" variant takes what is already buffered with
``receive_nowait()`` after each ``receive()``. A raw socket reader that only counts frame headers
measures what the simulator can push to one connection at all (its capacity).

Processes: the simulator runs in its own process, the trio and synchronous contenders in a
second and the asyncio one in a third, so no two event loops share a thread and the simulator
never competes with the client inside one interpreter. Beside each rate the table shows what
the simulator sent and conflated per second during that window: depth snapshots conflated by the
server mean it had more to give than the client took (the client, not the simulator, was the
bottleneck). On a 2-core machine the client and the simulator get one core each.

Run: ``.venv/bin/python benchmarks/bench_feed.py [--rounds 3] [--seconds 1.0] [--markets 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import multiprocessing
import os
import socket
import statistics
import struct
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection as Pipe
from typing import Any

import orjson
from benchjson import add_json_option, dump, group

WARMUP = 0.3
NOTICE_WINDOW = 1024
SLOW_CONSUMER_SECONDS = 0.005
DEMO_ACCOUNT = "1001"

# -- the simulator process ------------------------------------------------------------------------


def _markets(count: int) -> list[Any]:
    import attrs

    from flexconn.sim.markets import DEFAULT_MARKETS

    if count <= len(DEFAULT_MARKETS):
        return list(DEFAULT_MARKETS[:count])
    return [
        attrs.evolve(
            DEFAULT_MARKETS[i % len(DEFAULT_MARKETS)],
            market_code=f"{DEFAULT_MARKETS[i % len(DEFAULT_MARKETS)].market_code}-{i}",
            market_id=str(1000 + i),
        )
        for i in range(count)
    ]


def _notice_payloads(market: str, count: int) -> list[bytes]:
    """Order-channel frames as the simulator writes them: open, partial fill, close."""
    from flexconn.sim import ws_messages as msg

    frames = []
    for i in range(count // 3):
        order_id = 7_000_000_000 + i
        base = {
            "accountId": DEMO_ACCOUNT,
            "clientOrderId": str(1_000 + i),
            "orderId": str(order_id),
            "price": "35012.5",
            "quantity": "0.25",
            "side": "BUY" if i % 2 else "SELL",
            "marketCode": market,
            "timeInForce": "GTC",
            "timestamp": str(1_700_000_000_000 + i),
        }
        opened = {"notice": "OrderOpened", **base, "status": "OPEN", "orderType": "LIMIT"}
        matched = {
            "notice": "OrderMatched",
            **base,
            "status": "PARTIAL_FILL",
            "matchId": str(9_000_000 + i),
            "matchPrice": "35012.5",
            "matchQuantity": "0.1",
            "orderMatchType": "MAKER",
            "remainQuantity": "0.15",
            "orderType": "LIMIT",
            "fees": "0.87531",
            "feeInstrumentId": "USD",
            "isTriggered": "False",
        }
        closed = {
            "notice": "OrderClosed",
            **base,
            "status": "CANCELED_BY_USER",
            "remainQuantity": "0.15",
            "orderType": "LIMIT",
            "isTriggered": "False",
        }
        frames += [msg.dumps(msg.table("order", [entry])) for entry in (opened, matched, closed)]
    return frames


def _simulator(pipe: Pipe, markets: int, shared: Any, notices_on: Any) -> None:
    """Run the simulator until told to stop; publish its counters into ``shared``."""
    import trio

    from flexconn.sim import Cadences, RateLimits, serve
    from flexconn.sim.wire import Frame

    async def counters(sim: Any) -> None:
        while True:
            stats = sim.ws_server.statistics()
            shared[0] = stats.frames_sent
            shared[1] = stats.frames_conflated
            await trio.sleep(0.002)

    async def push_notices(sim: Any, market: str) -> None:
        frames = [Frame(payload) for payload in _notice_payloads(market, 3 * 128)]
        fanout = sim.exchange.fanout
        pushed = sent_base = 0
        while True:
            if not notices_on.value or not fanout.private(DEMO_ACCOUNT, "order"):
                await trio.sleep(0.005)
                pushed, sent_base = 0, sim.ws_server.statistics().frames_sent
                continue
            in_flight = pushed - (sim.ws_server.statistics().frames_sent - sent_base)
            if in_flight < NOTICE_WINDOW:
                for frame in frames:
                    fanout.send_private(DEMO_ACCOUNT, "order", market, frame)
                pushed += len(frames)
                await trio.lowlevel.checkpoint()
            else:
                await trio.sleep(0.0002)

    async def run() -> None:
        async with (
            serve(
                markets=_markets(markets),
                participants_rate=math.inf,
                rest_port=None,
                rate_limits=RateLimits.unlimited(),
                cadences=Cadences.firehose(),
            ) as sim,
            trio.open_nursery() as nursery,
        ):
            market_codes = list(sim.exchange.markets)
            nursery.start_soon(counters, sim)
            nursery.start_soon(push_notices, sim, market_codes[0])
            key = sim.demo_key
            pipe.send((sim.ws_url, market_codes, key.api_key, key.api_secret))
            await trio.to_thread.run_sync(pipe.recv)  # "stop"
            nursery.cancel_scope.cancel()

    trio.run(run)


# -- bare clients (each parses every frame with orjson and does nothing else) --------------------


class Case:
    """What a contender subscribes to; built by the coordinator, pickled to the workers."""

    def __init__(
        self, name: str, channels: list[str], *, login: tuple[str, str], notices: bool = False
    ) -> None:
        self.name = name
        self.channels = channels
        self.login = login
        self.notices = notices

    def commands(self) -> list[str]:
        """The raw commands a bare client sends first: login (if any), then one subscribe."""
        from flexconn.auth import Credentials
        from flexconn.protocol import routing
        from flexconn.protocol.encode import encode

        credentials = Credentials(*self.login)
        request = routing.login_request(credentials, timestamp_ms=time.time_ns() // 10**6)
        return [
            encode(request),
            orjson.dumps({"op": "subscribe", "args": self.channels}).decode(),
        ]


class Window:
    """Counts over the measured window, with the simulator's counters beside them."""

    def __init__(self, shared: Any) -> None:
        self.shared = shared
        self.start = self.end = 0.0
        self.sim0 = self.sim1 = (0, 0)

    def open(self) -> None:
        self.sim0 = (self.shared[0], self.shared[1])
        self.start = time.perf_counter()

    def close(self) -> None:
        self.end = time.perf_counter()
        self.sim1 = (self.shared[0], self.shared[1])

    def result(self, count: int) -> dict[str, float]:
        elapsed = self.end - self.start
        return {
            "rate": count / elapsed,
            "sim_sent": (self.sim1[0] - self.sim0[0]) / elapsed,
            "sim_conflated": (self.sim1[1] - self.sim0[1]) / elapsed,
        }


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


def _frame_count(buffer: bytearray) -> int:
    """Complete frames at the start of ``buffer`` (removed); headers only, never payloads."""
    i = n = 0
    size = len(buffer)
    while size - i >= 2:
        length = buffer[i + 1] & 0x7F
        header = 2
        if length == 126:
            if size - i < 4:
                break
            length, header = (buffer[i + 2] << 8) | buffer[i + 3], 4
        elif length == 127:
            if size - i < 10:
                break
            length, header = int.from_bytes(buffer[i + 2 : i + 10], "big"), 10
        if size - i < header + length:
            break
        i += header + length
        n += 1
    del buffer[:i]
    return n


def raw_reader(url: str, case: Case, seconds: float, window: Window) -> dict[str, float]:
    """The simulator's capacity: a socket that only walks frame headers."""
    host_port, _, path = url.split("//", 1)[1].partition("/")
    host, port = host_port.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade"
        f"\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    del buffer[: buffer.index(b"\r\n\r\n") + 4]
    for command in case.commands():
        sock.sendall(_masked(command))
    count = 0
    deadline = time.perf_counter() + WARMUP
    measuring = False
    while True:
        data = sock.recv(1 << 20)
        buffer += data
        count += _frame_count(buffer)
        now = time.perf_counter()
        if not measuring and now >= deadline:
            window.open()
            count, measuring, deadline = 0, True, now + seconds
        elif measuring and now >= deadline:
            window.close()
            sock.close()
            return window.result(count)


def websocket_client_loop(url: str, case: Case, seconds: float, window: Window) -> dict[str, float]:
    import websocket

    ws = websocket.create_connection(url)
    for command in case.commands():
        ws.send(command)
    loads = orjson.loads
    deadline = time.perf_counter() + WARMUP
    while time.perf_counter() < deadline:
        loads(ws.recv())
    window.open()
    count = 0
    deadline = time.perf_counter() + seconds
    while True:
        for _ in range(64):
            loads(ws.recv())
        count += 64
        if time.perf_counter() >= deadline:
            break
    window.close()
    ws.close()
    return window.result(count)


def asyncio_loop(url: str, case: Case, seconds: float, window: Window) -> dict[str, float]:
    from websockets.asyncio.client import connect

    async def run() -> dict[str, float]:
        # Defaults, except that leaving does not wait 10 s for the firehose to drain past
        # the closing handshake (outside the measured window).
        async with connect(url, close_timeout=0.2) as ws:
            for command in case.commands():
                await ws.send(command)
            loads = orjson.loads
            deadline = time.perf_counter() + WARMUP
            while time.perf_counter() < deadline:
                loads(await ws.recv())
            window.open()
            count = 0
            deadline = time.perf_counter() + seconds
            while True:
                for _ in range(64):
                    loads(await ws.recv())
                count += 64
                if time.perf_counter() >= deadline:
                    break
            window.close()
            return window.result(count)

    return asyncio.run(run())


def trio_loop(transport: str) -> Callable[[str, Case, float, Window], dict[str, float]]:
    """A bare trio loop over trio-websocket or over flexconn's sans-IO transport alone."""

    def run_loop(url: str, case: Case, seconds: float, window: Window) -> dict[str, float]:
        import trio
        import trio_websocket

        from flexconn.transport import open_sansio_websocket

        async def run() -> dict[str, float]:
            loads = orjson.loads
            if transport == "trio-websocket":
                manager: Any = trio_websocket.open_websocket_url(url)
            else:
                manager = open_sansio_websocket(url)
            async with manager as ws:
                send = ws.send_message if transport == "trio-websocket" else ws.send
                receive = ws.get_message if transport == "trio-websocket" else ws.receive
                for command in case.commands():
                    await send(command)
                with trio.move_on_after(WARMUP):
                    while True:
                        loads(await receive())
                window.open()
                count = 0
                deadline = time.perf_counter() + seconds
                while True:
                    for _ in range(64):
                        loads(await receive())
                    count += 64
                    if time.perf_counter() >= deadline:
                        break
                window.close()
                return window.result(count)

        return trio.run(run)

    return run_loop


def flexconn_connection(
    transport: str, *, slow: bool = False, drain: bool = False
) -> Callable[[str, Case, float, Window], dict[str, float]]:
    """flexconn's connection: one consumer task per feed, every message typed.

    The consumer iterates its feed (``async for``: each message is a checkpoint, one trip
    through trio's scheduler) or, with ``drain``, takes what is already buffered with
    ``receive_nowait()`` after each ``receive()`` (one trip per burst).
    """

    def run_connection(url: str, case: Case, seconds: float, window: Window) -> dict[str, float]:
        import trio

        from flexconn import channels
        from flexconn.auth import Credentials
        from flexconn.config import Backpressure
        from flexconn.connection import Connection, open_connection
        from flexconn.feeds import StreamRestarted
        from flexconn.transport import open_sansio_websocket, open_trio_websocket

        factory = open_sansio_websocket if transport == "sansio" else open_trio_websocket
        counted = [0]

        subscribed = [0]
        all_subscribed = trio.Event()

        async def consume(conn: Connection, wire: str) -> None:
            channel = channels.Channel.parse(wire)
            policy = Backpressure.LATEST if slow else Backpressure.BLOCK
            async with conn.subscribe(channel, policy=policy) as feed:
                subscribed[0] += 1
                if subscribed[0] == len(case.channels):
                    all_subscribed.set()
                if drain:
                    while True:
                        message = await feed.receive()
                        while True:
                            if not isinstance(message, StreamRestarted):
                                _ = message.data
                                counted[0] += 1
                            try:
                                message = feed.receive_nowait()
                            except trio.WouldBlock:
                                break
                async for message in feed:
                    if isinstance(message, StreamRestarted):
                        continue
                    _ = message.data  # typed items: DepthSnapshot, Trade, OrderEvent...
                    counted[0] += 1
                    if slow:
                        await trio.sleep(SLOW_CONSUMER_SECONDS)

        async def run() -> dict[str, float]:
            async with (
                open_connection(
                    url, credentials=Credentials(*case.login), transport=factory
                ) as conn,
                trio.open_nursery() as nursery,
            ):
                for wire in case.channels:
                    nursery.start_soon(consume, conn, wire)
                await all_subscribed.wait()
                await trio.sleep(WARMUP)
                frames0, counted[0] = conn.stats().frames_in, 0
                window.open()
                await trio.sleep(seconds)
                window.close()
                frames = conn.stats().frames_in - frames0
                result = window.result(frames if slow else counted[0])
                result["consumed"] = counted[0] / (window.end - window.start)
                nursery.cancel_scope.cancel()
                return result

        return trio.run(run)

    return run_connection


# -- workers and the coordinator ----------------------------------------------------------------

CONTENDERS: dict[str, tuple[str, Callable[[str, Case, float, Window], dict[str, float]]]] = {
    "simulator capacity (raw reader)": ("sync", raw_reader),
    "trio-websocket loop": ("sync", trio_loop("trio-websocket")),
    "asyncio websockets loop": ("asyncio", asyncio_loop),
    "websocket-client loop": ("sync", websocket_client_loop),
    "sans-IO transport loop": ("sync", trio_loop("sansio")),
    "flexconn (sans-IO, default)": ("sync", flexconn_connection("sansio", slow=False)),
    "flexconn (sans-IO), draining": ("sync", flexconn_connection("sansio", drain=True)),
    "flexconn (trio-websocket)": ("sync", flexconn_connection("trio-websocket", slow=False)),
    "flexconn latest (sans-IO)": ("sync", flexconn_connection("sansio", slow=True)),
    "flexconn latest (trio-websocket)": (
        "sync",
        flexconn_connection("trio-websocket", slow=True),
    ),
}


def _worker(pipe: Pipe, shared: Any) -> None:
    window = Window(shared)
    while True:
        job = pipe.recv()
        if job is None:
            return
        name, url, case, seconds = job
        pipe.send(CONTENDERS[name][1](url, case, seconds, window))


def _summary(values: Sequence[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def _table(title: str, results: dict[str, list[dict[str, float]]], baselines: list[str]) -> None:
    print(f"\n{title}")
    head = f"  {'contender':<34}{'min':>9}{'median':>9}{'max':>9}"
    head += "".join(f"{'x ' + b.split()[0]:>17}" for b in baselines)
    print(head + f"{'sim sent/s':>12}{'sim confl./s':>13}")
    medians = {name: statistics.median(r["rate"] for r in runs) for name, runs in results.items()}
    for name, runs in results.items():
        low, mid, high = _summary([r["rate"] for r in runs])
        line = f"  {name:<34}{low:>9,.0f}{mid:>9,.0f}{high:>9,.0f}"
        line += "".join(f"{mid / medians[b]:>17.2f}" for b in baselines)
        sent = statistics.median(r["sim_sent"] for r in runs)
        conflated = statistics.median(r["sim_conflated"] for r in runs)
        print(line + f"{sent:>12,.0f}{conflated:>13,.0f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per contender")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one round")
    parser.add_argument("--markets", type=int, default=20, help="simulated markets")
    add_json_option(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    context = multiprocessing.get_context("spawn")
    shared = context.Array("q", 2, lock=False)
    notices_on = context.Value("b", 0, lock=False)
    sim_pipe, theirs = context.Pipe()
    simulator = context.Process(
        target=_simulator, args=(theirs, args.markets, shared, notices_on), daemon=True
    )
    simulator.start()
    url, markets, api_key, api_secret = sim_pipe.recv()
    workers: dict[str, tuple[Pipe, Any]] = {}
    for kind in ("sync", "asyncio"):
        mine, theirs = context.Pipe()
        process = context.Process(target=_worker, args=(theirs, shared), daemon=True)
        process.start()
        workers[kind] = (mine, process)

    depth = [f"depthL25:{m}" for m in markets]
    login = (api_key, api_secret)
    cases = {
        "depth + trade": (
            Case("depth + trade", depth + [f"trade:{m}" for m in markets], login=login),
            [
                "simulator capacity (raw reader)",
                "trio-websocket loop",
                "asyncio websockets loop",
                "websocket-client loop",
                "sans-IO transport loop",
                "flexconn (sans-IO, default)",
                "flexconn (sans-IO), draining",
                "flexconn (trio-websocket)",
            ],
        ),
        "order notices": (
            Case("order notices", ["order:all"], login=login, notices=True),
            [
                "simulator capacity (raw reader)",
                "trio-websocket loop",
                "asyncio websockets loop",
                "websocket-client loop",
                "sans-IO transport loop",
                "flexconn (sans-IO, default)",
                "flexconn (sans-IO), draining",
                "flexconn (trio-websocket)",
            ],
        ),
        "latest, slow consumer": (
            Case("latest, slow consumer", depth, login=login),
            [
                "trio-websocket loop",
                "flexconn latest (sans-IO)",
                "flexconn latest (trio-websocket)",
            ],
        ),
    }
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        case: {name: [] for name in names} for case, (_, names) in cases.items()
    }
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; simulator: {len(markets)} "
        f"markets, participants flat out; {args.rounds} rounds of {args.seconds:g} s per "
        "contender, interleaved"
    )
    try:
        for _ in range(args.rounds):
            for case_name, (case, names) in cases.items():
                notices_on.value = case.notices
                for name in names:
                    pipe, _ = workers[CONTENDERS[name][0]]
                    pipe.send((name, url, case, args.seconds))
                    results[case_name][name].append(pipe.recv())
    finally:
        notices_on.value = 0
        for pipe, process in workers.values():
            pipe.send(None)
            process.join(10)
        sim_pipe.send("stop")
        simulator.join(10)

    _report(results, markets)
    groups = [
        group(
            case_name,
            "msg/s",
            {name: [r["rate"] for r in runs] for name, runs in by_name.items()},
            baseline="trio-websocket loop",
        )
        for case_name, by_name in results.items()
    ]
    dump(args.json, "bench_feed", "Feed throughput from the simulator's firehose", groups)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


def _report(results: dict[str, dict[str, list[dict[str, float]]]], markets: list[str]) -> None:
    titles = {
        "depth + trade": f"depthL25 + trade of {len(markets)} markets (msg/s consumed)",
        "order notices": "order notices, ~400 B (msg/s consumed)",
        "latest, slow consumer": (
            f"depthL25 of {len(markets)} markets, latest policy, consumers sleep "
            f"{SLOW_CONSUMER_SECONDS * 1000:g} ms a message (frames/s absorbed)"
        ),
    }
    for case_name, by_name in results.items():
        baselines = ["trio-websocket loop"]
        if "asyncio websockets loop" in by_name:
            baselines += ["asyncio websockets loop", "websocket-client loop"]
        _table(titles[case_name], by_name, baselines)

    def median(case: str, name: str) -> float:
        return statistics.median(r["rate"] for r in results[case][name])

    print("\ngoals (medians; flexconn on its default transport)")
    for case in ("depth + trade", "order notices"):
        for ours in ("flexconn (sans-IO, default)", "flexconn (sans-IO), draining"):
            rate = median(case, ours)
            for baseline, goal in (
                ("trio-websocket loop", 0.7),
                ("asyncio websockets loop", 1.0),
                ("websocket-client loop", 4.0),
            ):
                ratio = rate / median(case, baseline)
                verdict = "met" if ratio >= goal else "MISSED"
                print(f"  {case}: {ours} / {baseline} = {ratio:.2f} (>= {goal:g}) {verdict}")
        capacity = median(case, "simulator capacity (raw reader)")
        clients = [n for n in results[case] if not n.startswith("simulator")]
        for label, names in (
            ("fastest client", clients),
            ("fastest flexconn", [n for n in clients if n.startswith("flexconn")]),
        ):
            fastest = max(names, key=lambda n: median(case, n))
            headroom = capacity / median(case, fastest)
            verdict = "met" if headroom >= 2 else "MISSED"
            print(
                f"  {case}: simulator capacity / {label} ({fastest}) = {headroom:.2f} (>= 2) "
                f"{verdict}"
            )
    case = "latest, slow consumer"
    ratio = median(case, "flexconn latest (sans-IO)") / median(case, "trio-websocket loop")
    verdict = "met" if ratio >= 2 else "MISSED"
    print(f"  {case}: flexconn absorbed / trio-websocket loop = {ratio:.2f} (>= 2) {verdict}")


if __name__ == "__main__":
    main()
