"""Order outbox: sustained orders/s through batching, and the latency a lone order pays.

The simulator runs in a child process (as an exchange would be elsewhere) and enforces the
documented 50 commands/s per authenticated socket, so batching is what lifts the order rate: 20
orders per command make the ceiling 20 x 50 = 1000 orders/s (980 with the client's 2% pacing
margin).

* Throughput with the per-account order limit lifted (``RateLimits(orders_per_account=None)``
  in the simulator, ``OutboxConfig(orders_per_second=None)`` in the client): 200 concurrent
  callers each ``place`` resting limit orders in a loop; orders acknowledged per second over a
  window after a warm-up that spends the initial token burst. Beside it, the same outbox sending
  one command per order (``max_batch_size=1``): the unbatched ceiling of 50/s. Both count the
  20007 replies they got.
* Throughput with the documented 50 orders/s per account on (simulator and client defaults).
* Latency of a lone order on an otherwise idle connection: ``conn.place`` through the outbox
  beside a bare loop on a raw trio-websocket socket that serialises a ``placeorder`` with orjson,
  sends it and waits for its reply. One order in flight at a time, back to back, against a
  simulator with every limit lifted (and a client bucket to match), so neither loop ever waits
  for a token and the figures are software and loopback only. Both sockets are logged in and
  subscribed to ``order:all``, so the exchange does the same work for each; samples alternate
  one by one and which loop goes first alternates too.

Rounds repeat each measurement; min/median/max are over rounds. Run:
``.venv/bin/python benchmarks/bench_outbox.py [--rounds 3] [--window 2.5] [--latency-rounds 5]
[--samples 1000] [--json PATH]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import partial
from typing import Any

import orjson
import trio
from benchjson import add_json_option, dump, group
from trio_websocket import WebSocketConnection, open_websocket_url

from flexconn.auth import Credentials, ws_login_data
from flexconn.connection import Connection, open_connection
from flexconn.models.enums import Side
from flexconn.models.orders import LimitOrder
from flexconn.outbox import OutboxConfig
from flexconn.rest import RestClient
from flexconn.sim import RateLimits, serve_sim
from flexconn.sim.exchange import DEMO_ACCOUNT_ID, ApiKey, SimExchange

MARKET = "BTC-USD-SWAP-LIN"
QUANTITY = Decimal("0.001")
CALLERS = 200
KEY = Credentials("bench-key", "bench-secret-not-a-real-one")


# -- the simulator, in a child process -----------------------------------------------------------


LIMITS = {
    "documented": RateLimits(),
    "orders-lifted": RateLimits(orders_per_account=None),
    "unlimited": RateLimits.unlimited(),
}


def serve_forever(mode: str) -> None:
    """Child: run a simulator, print its URLs as one JSON line, stop when stdin closes."""

    async def run() -> None:
        limits = LIMITS[mode]
        exchange = SimExchange(rate_limits=limits)
        exchange.add_api_key(
            ApiKey(api_key=KEY.api_key, api_secret=KEY.api_secret, account_id=DEMO_ACCOUNT_ID)
        )
        async with trio.open_nursery() as nursery:
            sim = await nursery.start(partial(serve_sim, participants_rate=None, exchange=exchange))
            print(json.dumps({"ws": sim.ws_url, "rest": sim.rest_url}), flush=True)
            await trio.to_thread.run_sync(sys.stdin.read)
            nursery.cancel_scope.cancel()

    trio.run(run)


@asynccontextmanager
async def simulator(mode: str) -> AsyncIterator[tuple[str, str]]:
    """Start a child simulator with ``LIMITS[mode]``; yields its WebSocket and REST URLs."""
    child = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
        [sys.executable, __file__, "--serve", mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    try:
        urls = json.loads(await trio.to_thread.run_sync(child.stdout.readline))
        yield urls["ws"], urls["rest"]
    finally:
        child.stdin.close()
        await trio.to_thread.run_sync(child.wait)


@asynccontextmanager
async def trading(urls: tuple[str, str], config: OutboxConfig) -> AsyncIterator[Connection]:
    ws_url, rest_url = urls
    async with (
        RestClient(rest_url, KEY) as rest,
        open_connection(ws_url, credentials=KEY, rest=rest, outbox=config) as conn,
    ):
        yield conn


async def clear(urls: tuple[str, str], conn: Connection) -> None:
    """Cancel every open order over REST (keeps the book small between rounds)."""
    async with RestClient(urls[1], KEY) as rest:
        await rest.cancel_all_orders()
    with trio.fail_after(20):
        while conn.orders:  # noqa: ASYNC110 - the connection drains the notices
            await trio.sleep(0.01)


# -- measurements --------------------------------------------------------------------------------


def prices() -> Iterator[Decimal]:
    """Resting bid prices on the market's tick, inside its sanity bounds, never crossing."""
    return itertools.cycle(Decimal(25000) + Decimal("0.5") * i for i in range(9000))


async def sustained(conn: Connection, *, warmup: float, window: float) -> tuple[float, int]:
    """Orders acknowledged per second within ``window`` after ``warmup``; 20007s seen."""
    price = prices()
    done: list[float] = []
    start = trio.current_time()
    stop = start + warmup + window
    refused = conn.outbox_stats().rate_limited

    async def caller() -> None:
        while trio.current_time() < stop:
            await conn.place(LimitOrder(MARKET, Side.BUY, QUANTITY, next(price)))
            done.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        for _ in range(CALLERS):
            nursery.start_soon(caller)
    begin = start + warmup
    counted = sum(1 for t in done if begin <= t < stop)
    return counted / window, conn.outbox_stats().rate_limited - refused


@asynccontextmanager
async def bare(ws_url: str) -> AsyncIterator[WebSocketConnection]:
    """A logged-in trio-websocket socket subscribed to ``order:all``, flexconn-free I/O."""
    async with open_websocket_url(ws_url) as ws:
        login = {"op": "login", "tag": 1, "data": ws_login_data(KEY)}
        await ws.send_message(orjson.dumps(login).decode())
        await until_event(ws, "login")
        await ws.send_message('{"op":"subscribe","tag":2,"args":["order:all"]}')
        await until_event(ws, "subscribe")
        yield ws


async def until_event(ws: WebSocketConnection, event: str) -> dict[str, Any]:
    while True:
        message = orjson.loads(await ws.get_message())
        if isinstance(message, dict) and message.get("event") == event:
            return message


def place_text(tag: int, cid: int, price: Decimal) -> str:
    data = {
        "clientOrderId": cid,
        "marketCode": MARKET,
        "side": "BUY",
        "quantity": QUANTITY,
        "price": price,
        "timeInForce": "GTC",
        "orderType": "LIMIT",
    }
    return orjson.dumps({"op": "placeorder", "tag": tag, "data": data}, default=str).decode()


async def latencies(ws_url: str, conn: Connection, samples: int) -> tuple[list[float], ...]:
    """Per-order seconds: (outbox, raw), alternating, one order in flight at a time."""
    price = prices()
    ours: list[float] = []
    theirs: list[float] = []
    cids = itertools.count(time.time_ns() // 1000 + 10**15)
    async with bare(ws_url) as ws:

        async def raw(tag: int) -> None:
            cid, at = next(cids), next(price)
            start = time.perf_counter()
            await ws.send_message(place_text(tag, cid, at))
            reply = await until_event(ws, "placeorder")
            theirs.append(time.perf_counter() - start)
            assert reply["submitted"] is True, reply

        async def outbox() -> None:
            order = LimitOrder(MARKET, Side.BUY, QUANTITY, next(price))
            start = time.perf_counter()
            await conn.place(order)
            ours.append(time.perf_counter() - start)

        for tag in range(3, 3 + samples):
            if tag % 2:
                await raw(tag)
                await outbox()
            else:
                await outbox()
                await raw(tag)
    return ours, theirs


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(name: str, values: list[float], unit: str, scale: float = 1.0) -> str:
    low, mid, high = (scale * v for v in (min(values), statistics.median(values), max(values)))
    return f"  {name:<34} min {low:8.1f}  median {mid:8.1f}  max {high:8.1f} {unit}"


async def main(
    rounds: int, window: float, latency_rounds: int, samples: int, json_path: str | None
) -> None:
    warmup = 1.5
    batched: list[float] = []
    single: list[float] = []
    limited: list[float] = []
    refusals = {"batched": 0, "single": 0, "limited": 0}
    latency: dict[str, list[float]] = {"outbox": [], "raw": []}
    per_round: dict[str, list[float]] = {"outbox50": [], "outbox99": [], "raw50": [], "raw99": []}
    async with simulator("orders-lifted") as urls:
        async with trading(urls, OutboxConfig(orders_per_second=None)) as conn:
            for _ in range(rounds):
                rate, refused = await sustained(conn, warmup=warmup, window=window)
                batched.append(rate)
                refusals["batched"] += refused
                await clear(urls, conn)
        one_each = OutboxConfig(orders_per_second=None, max_batch_size=1)
        async with trading(urls, one_each) as conn:
            for _ in range(rounds):
                rate, refused = await sustained(conn, warmup=warmup, window=window)
                single.append(rate)
                refusals["single"] += refused
                await clear(urls, conn)
    async with simulator("documented") as urls, trading(urls, OutboxConfig()) as conn:
        for _ in range(rounds):
            rate, refused = await sustained(conn, warmup=warmup, window=window)
            limited.append(rate)
            refusals["limited"] += refused
            await clear(urls, conn)
    unpaced = OutboxConfig(commands_per_second=1e9, orders_per_second=None)
    async with simulator("unlimited") as urls, trading(urls, unpaced) as conn:
        await latencies(urls[0], conn, 200)  # warm both paths up
        for _ in range(latency_rounds):
            ours, theirs = await latencies(urls[0], conn, samples)
            latency["outbox"] += ours
            latency["raw"] += theirs
            per_round["outbox50"].append(pct(ours, 0.5))
            per_round["outbox99"].append(pct(ours, 0.99))
            per_round["raw50"].append(pct(theirs, 0.5))
            per_round["raw99"].append(pct(theirs, 0.99))
            await clear(urls, conn)

    print("Sustained place throughput; the simulator enforces 50 commands/s per socket")
    print("  (per-account 50 orders/s limit lifted on both sides; ceiling 20 x 50 = 1000/s)")
    print(line("batched outbox", batched, "orders/s"))
    print(line("one command per order", single, "orders/s"))
    gain = statistics.median(batched) / statistics.median(single)
    print(
        f"  batching gain {gain:.1f}x; 20007 replies: batched {refusals['batched']}, "
        f"one per order {refusals['single']}"
    )
    print("With the documented 50 orders/s per account on (simulator and client defaults)")
    print(line("batched outbox", limited, "orders/s"))
    print(f"  20007 replies: {refusals['limited']}")
    print("Acknowledgement latency of a lone order, one in flight, limits lifted (per round)")
    print(line("outbox conn.place p50", per_round["outbox50"], "us", 1e6))
    print(line("raw trio-websocket p50", per_round["raw50"], "us", 1e6))
    print(line("outbox conn.place p99", per_round["outbox99"], "us", 1e6))
    print(line("raw trio-websocket p99", per_round["raw99"], "us", 1e6))
    overhead = statistics.median(per_round["outbox50"]) / statistics.median(per_round["raw50"])
    print(f"  outbox overhead at p50: {100 * (overhead - 1):+.1f}% of the bare round trip")

    groups = [
        group(
            "place throughput, 50 commands/s, order limit lifted",
            "orders/s",
            {"batched outbox": batched, "one command per order": single},
            baseline="one command per order",
        ),
        group("place throughput, documented 50 orders/s on", "orders/s", {"outbox": limited}),
        group(
            "lone order acknowledgement latency",
            "s",
            {"outbox conn.place": latency["outbox"], "raw trio-websocket": latency["raw"]},
            baseline="raw trio-websocket",
            kind="latency",
            higher_is_better=False,
        ),
    ]
    dump(json_path, "bench_outbox", "Order outbox: batching throughput and latency", groups)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=2.5, help="seconds measured per round")
    parser.add_argument("--latency-rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=1000, help="latency samples per round")
    parser.add_argument("--serve", choices=sorted(LIMITS), help=argparse.SUPPRESS)
    add_json_option(parser)
    args = parser.parse_args()
    if args.serve:
        serve_forever(args.serve)
    else:
        trio.run(main, args.rounds, args.window, args.latency_rounds, args.samples, args.json)
