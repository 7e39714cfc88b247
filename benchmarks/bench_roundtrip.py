"""How long does a lone order take from the call to its acknowledgement?

One LIMIT order at a time (resting far from the market, so it neither matches nor moves the
book), ``--orders`` per contender, a 25 ms pause after each so that it is alone on the socket and
the pacing buckets are full: the latency is protocol work and two trips over loopback, not
queueing. Contenders, interleaved in blocks of 50 orders so that drift hits them alike:

* **asyncio websockets loop** (the baseline, in its own process): logged in and subscribed to
  ``order:all`` as flexconn's connection is (so the simulator does the same work for both), it
  sends each ``placeorder`` as prepared JSON and reads until the ``placeorder`` reply.
* **sans-IO transport loop**: the same loop on flexconn's sans-IO transport alone, under trio.
* **flexconn** ``conn.place(LimitOrder(...))`` on each transport: validation, encoding, the
  outbox's pacing and correlation, the reply decoded and matched, and the ``order:all`` notices
  of the same order (the connection keeps ``conn.orders``) read beside it.

The simulator runs in its own process with its rate limits off. Latencies are in milliseconds:
min, median (p50), p99 and max, and the ratio of medians to the asyncio loop.

Run: ``.venv/bin/python benchmarks/bench_roundtrip.py [--orders 200]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from multiprocessing.connection import Connection as Pipe

import orjson
from benchjson import add_json_option, dump, group

MARKET = "BTC-USD-SWAP-LIN"
PAUSE = 0.025
BLOCK = 50


def _simulator(pipe: Pipe) -> None:
    import trio

    from flexconn.sim import RateLimits, serve

    async def run() -> None:
        async with serve(
            participants_rate=None, rest_port=None, rate_limits=RateLimits.unlimited()
        ) as sim:
            spec = sim.exchange.markets[MARKET]
            tick = spec.tick_size
            price = ((spec.reference_price * Decimal("0.8")) // tick) * tick
            key = sim.demo_key
            pipe.send(
                (sim.ws_url, key.api_key, key.api_secret, str(price), str(spec.qty_increment))
            )
            await trio.to_thread.run_sync(pipe.recv)  # "stop"

    trio.run(run)


class Setup:
    """Where to connect and what to order (pickled to the asyncio worker)."""

    def __init__(self, url: str, api_key: str, api_secret: str, price: str, quantity: str) -> None:
        self.url = url
        self.api_key = api_key
        self.api_secret = api_secret
        self.price = price
        self.quantity = quantity
        self._client_ids = itertools.count(1)

    def subscribe(self) -> str:
        """The bare loops subscribe to ``order:all`` as flexconn's connection does, so that the
        simulator does the same work (and sends the same notices) for every contender."""
        return orjson.dumps({"op": "subscribe", "args": ["order:all"]}).decode()

    def login(self) -> str:
        from flexconn.auth import Credentials
        from flexconn.protocol import routing
        from flexconn.protocol.encode import encode

        credentials = Credentials(self.api_key, self.api_secret)
        return encode(routing.login_request(credentials, timestamp_ms=time.time_ns() // 10**6))

    def order(self, client_order_id: int) -> str:
        data = {
            "clientOrderId": client_order_id,
            "marketCode": MARKET,
            "side": "BUY",
            "quantity": self.quantity,
            "timeInForce": "GTC",
            "orderType": "LIMIT",
            "price": self.price,
        }
        return orjson.dumps({"op": "placeorder", "tag": client_order_id, "data": data}).decode()


def _placed(text: str | bytes) -> bool:
    """Whether a frame is the reply to a ``placeorder`` (and a successful one)."""
    if b"placeorder" not in (text if isinstance(text, bytes) else text.encode()):
        return False
    message = orjson.loads(text)
    if message.get("event") != "placeorder":
        return False
    assert message.get("submitted", message.get("success")) is True, message
    return True


def asyncio_loop(setup: Setup, orders: int, first_id: int) -> list[float]:
    from websockets.asyncio.client import connect

    async def run() -> list[float]:
        latencies = []
        async with connect(setup.url) as ws:
            await ws.send(setup.login())
            while orjson.loads(await ws.recv()).get("event") != "login":
                pass
            await ws.send(setup.subscribe())
            while orjson.loads(await ws.recv()).get("event") != "subscribe":
                pass
            for client_order_id in range(first_id, first_id + orders):
                text = setup.order(client_order_id)
                start = time.perf_counter()
                await ws.send(text)
                while not _placed(await ws.recv()):
                    pass
                latencies.append(time.perf_counter() - start)
                await asyncio.sleep(PAUSE)
        return latencies

    return asyncio.run(run())


def _asyncio_worker(pipe: Pipe) -> None:
    while True:
        job = pipe.recv()
        if job is None:
            return
        setup, orders, first_id = job
        pipe.send(asyncio_loop(setup, orders, first_id))


async def sansio_loop(setup: Setup, orders: int, first_id: int) -> list[float]:
    import trio

    from flexconn.transport import open_sansio_websocket

    latencies = []
    async with open_sansio_websocket(setup.url) as ws:
        await ws.send(setup.login())
        while orjson.loads(await ws.receive()).get("event") != "login":
            pass
        await ws.send(setup.subscribe())
        while orjson.loads(await ws.receive()).get("event") != "subscribe":
            pass
        for client_order_id in range(first_id, first_id + orders):
            text = setup.order(client_order_id)
            start = time.perf_counter()
            await ws.send(text)
            while not _placed(await ws.receive()):
                pass
            latencies.append(time.perf_counter() - start)
            await trio.sleep(PAUSE)
    return latencies


def flexconn_place(transport: str) -> Callable[[Setup, int, int], Awaitable[list[float]]]:
    async def run(setup: Setup, orders: int, first_id: int) -> list[float]:
        import trio

        from flexconn.auth import Credentials
        from flexconn.connection import open_connection
        from flexconn.models.enums import Side
        from flexconn.models.orders import LimitOrder
        from flexconn.transport import open_sansio_websocket, open_trio_websocket

        factory = open_sansio_websocket if transport == "sansio" else open_trio_websocket
        credentials = Credentials(setup.api_key, setup.api_secret)
        price, quantity = Decimal(setup.price), Decimal(setup.quantity)
        latencies = []
        async with open_connection(setup.url, credentials=credentials, transport=factory) as conn:
            for client_order_id in range(first_id, first_id + orders):
                order = LimitOrder(
                    MARKET, Side.BUY, quantity, price, client_order_id=client_order_id
                )
                start = time.perf_counter()
                await conn.place(order)
                latencies.append(time.perf_counter() - start)
                await trio.sleep(PAUSE)
        return latencies

    return run


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> None:
    import trio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200, help="orders per contender")
    add_json_option(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    context = multiprocessing.get_context("spawn")
    sim_pipe, theirs = context.Pipe()
    simulator = context.Process(target=_simulator, args=(theirs,), daemon=True)
    simulator.start()
    setup = Setup(*sim_pipe.recv())
    worker_pipe, theirs = context.Pipe()
    worker = context.Process(target=_asyncio_worker, args=(theirs,), daemon=True)
    worker.start()

    def in_worker(orders: int, first_id: int) -> list[float]:
        worker_pipe.send((setup, orders, first_id))
        result: list[float] = worker_pipe.recv()
        return result

    def in_trio(
        run: Callable[[Setup, int, int], Awaitable[list[float]]],
    ) -> Callable[[int, int], list[float]]:
        return lambda orders, first_id: trio.run(run, setup, orders, first_id)

    contenders: dict[str, Callable[[int, int], list[float]]] = {
        "asyncio websockets loop": in_worker,
        "sans-IO transport loop": in_trio(sansio_loop),
        "flexconn place (sans-IO, default)": in_trio(flexconn_place("sansio")),
        "flexconn place (trio-websocket)": in_trio(flexconn_place("trio-websocket")),
    }
    results: dict[str, list[float]] = {name: [] for name in contenders}
    client_ids = itertools.count(1, BLOCK)
    try:
        remaining = args.orders
        while remaining > 0:
            block = min(BLOCK, remaining)
            for name, run in contenders.items():
                results[name] += run(block, next(client_ids))
            remaining -= block
    finally:
        worker_pipe.send(None)
        worker.join(10)
        sim_pipe.send("stop")
        simulator.join(10)

    baseline = statistics.median(results["asyncio websockets loop"])
    print(
        f"Python {sys.version.split()[0]}: {args.orders} lone LIMIT orders per contender, "
        f"{PAUSE * 1e3:g} ms apart; simulator in its own process"
    )
    print(f"\n  {'contender':<36}{'min':>8}{'p50':>8}{'p99':>8}{'max':>8}  ms{'x asyncio':>11}")
    for name, values in results.items():
        median = statistics.median(values)
        print(
            f"  {name:<36}{min(values) * 1e3:>8.3f}{median * 1e3:>8.3f}"
            f"{_p99(values) * 1e3:>8.3f}{max(values) * 1e3:>8.3f}    {median / baseline:>11.2f}"
        )
    ours = statistics.median(results["flexconn place (sans-IO, default)"])
    verdict = "met" if ours <= baseline else "MISSED"
    print(
        f"\ngoal: flexconn p50 {ours * 1e3:.3f} ms at or below the asyncio loop's "
        f"{baseline * 1e3:.3f} ms: {verdict}"
    )
    dump(
        args.json,
        "bench_roundtrip",
        "Order round trip: a lone order's acknowledgement latency",
        [
            group(
                "placeorder to acknowledgement",
                "s",
                results,
                baseline="asyncio websockets loop",
                kind="latency",
                higher_is_better=False,
            )
        ],
    )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
