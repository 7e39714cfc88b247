"""How long after a server-side drop is every feed of a connection flowing again?

The simulator runs in its own process. Each round it drops every connection at once
(``faults.drop_all()``: TCP closed, no close frame) and notes the moment on the shared monotonic
clock; the client notes when each of its 10 feeds (``depthL25`` and ``ticker`` of 5 markets, both
of which the exchange answers with the current state on subscribe) has delivered its continuity
marker and then its first fresh message. The latency of a drop is the last of those 10 moments
minus the drop: detection, reconnect, resubscription in one command and the first data, end to
end. ``--drops`` drops per contender (50), contenders interleaved in blocks of 25 drops.

Contenders: flexconn's connection on each transport, and as the floor a bare trio-websocket
client that, on the drop, at once reconnects and sends one subscribe for the 10 channels (no
backoff, markers, login or bookkeeping: the least any client must do).

Run: ``.venv/bin/python benchmarks/bench_reconnect.py [--drops 50]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from typing import Any

import orjson
import trio
from benchjson import add_json_option, dump, group

GOAL_MEDIAN = 0.025
SETTLE = 0.02  # seconds between drops, for the simulator to let go of the old connection


def _simulator(pipe: Pipe) -> None:
    """Serve until told to stop; on ``"drop"`` drop every connection and answer the moment."""
    from flexconn.sim import RateLimits, serve

    async def run() -> None:
        async with serve(rest_port=None, rate_limits=RateLimits.unlimited()) as sim:
            pipe.send((sim.ws_url, list(sim.exchange.markets)))
            while True:
                command = await trio.to_thread.run_sync(pipe.recv)
                if command == "stop":
                    return
                dropped_at = time.perf_counter()
                pipe.send((dropped_at, sim.faults.drop_all()))

    trio.run(run)


class Dropper:
    """The client side's handle on the simulator process."""

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe

    async def drop(self) -> float:
        """Drop every connection now; returns when it happened (``time.perf_counter``)."""
        self.pipe.send("drop")
        dropped_at, count = await trio.to_thread.run_sync(self.pipe.recv)
        assert count == 1, f"expected one connection to drop, dropped {count}"
        return float(dropped_at)


async def flexconn_drops(
    transport: str, url: str, channels_wire: list[str], dropper: Dropper, drops: int
) -> list[float]:
    from flexconn import channels
    from flexconn.config import ReconnectPolicy
    from flexconn.connection import open_connection
    from flexconn.feeds import StreamRestarted
    from flexconn.transport import open_sansio_websocket, open_trio_websocket

    factory = open_sansio_websocket if transport == "sansio" else open_trio_websocket
    latencies: list[float] = []
    fresh_at: dict[str, float] = {}
    everyone = trio.Event()
    current = [0]

    async def watch(feed: Any) -> None:
        marked = 0
        async for item in feed:
            if isinstance(item, StreamRestarted):
                marked = item.reconnects
            elif marked == current[0] and feed.channel not in fresh_at:
                fresh_at[feed.channel] = time.perf_counter()
                if len(fresh_at) == len(channels_wire):
                    everyone.set()

    async with (
        open_connection(url, transport=factory, reconnect=ReconnectPolicy()) as conn,
        trio.open_nursery() as nursery,
    ):
        feeds = []
        for wire in channels_wire:
            feed = await nursery.start(_subscribed, conn, channels.Channel.parse(wire))
            feeds.append(feed)
        for feed in feeds:
            nursery.start_soon(watch, feed)
        for drop in range(1, drops + 1):
            fresh_at.clear()
            everyone = trio.Event()
            current[0] = drop
            dropped_at = await dropper.drop()
            with trio.fail_after(10):
                await everyone.wait()
            latencies.append(max(fresh_at.values()) - dropped_at)
            await trio.sleep(SETTLE)
        nursery.cancel_scope.cancel()
    return latencies


async def _subscribed(conn: Any, channel: Any, *, task_status: Any) -> None:
    """Hold a subscription open for the benchmark; reports the feed once subscribed."""
    async with conn.subscribe(channel, capacity=64) as feed:
        task_status.started(feed)
        await trio.sleep_forever()


async def bare_drops(
    url: str, channels_wire: list[str], dropper: Dropper, drops: int
) -> list[float]:
    """The floor: reconnect at once, one subscribe, wait for a message on every channel."""
    from trio_websocket import ConnectionClosed, open_websocket_url

    subscribe = orjson.dumps({"op": "subscribe", "args": channels_wire}).decode()
    wanted = {wire.partition(":")[2] for wire in channels_wire}

    async def session(ready: Callable[[], None]) -> None:
        async with open_websocket_url(url) as ws:
            await ws.send_message(subscribe)
            seen: dict[str, set[str]] = {"depth": set(), "ticker": set()}
            while True:
                try:
                    message = orjson.loads(await ws.get_message())
                except ConnectionClosed:
                    return
                table = message.get("table")
                if table in ("depth", "depthL25"):
                    seen["depth"].update(d.get("instrumentId") for d in message["data"])
                elif table == "ticker":
                    seen["ticker"].update(d.get("marketCode") for d in message["data"])
                if seen["depth"] >= wanted and seen["ticker"] >= wanted:
                    ready()
                    seen = {"depth": {"-"}, "ticker": {"-"}}  # report once per session

    latencies: list[float] = []
    done_at: list[float] = []
    ready_event = trio.Event()

    def ready() -> None:
        done_at.append(time.perf_counter())
        ready_event.set()

    async def keep_connected() -> None:
        while True:
            await session(ready)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep_connected)
        await ready_event.wait()
        for _ in range(drops):
            ready_event = trio.Event()
            done_at.clear()
            dropped_at = await dropper.drop()
            with trio.fail_after(10):
                await ready_event.wait()
            latencies.append(done_at[0] - dropped_at)
            await trio.sleep(SETTLE)
        nursery.cancel_scope.cancel()
    return latencies


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=50, help="drops per contender")
    add_json_option(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    simulator = context.Process(target=_simulator, args=(theirs,), daemon=True)
    simulator.start()
    url, markets = mine.recv()
    wires = [f"depthL25:{m}" for m in markets[:5]] + [f"ticker:{m}" for m in markets[:5]]
    dropper = Dropper(mine)
    # Interleaved in blocks of drops, so that drift hits every contender alike; each block is one
    # connection, whose 10 subscriptions take 10 s to make (an anonymous connection may send one
    # command a second), so the blocks are long.
    contenders: dict[str, Callable[[int], Any]] = {
        "bare trio-websocket (floor)": lambda n: bare_drops(url, wires, dropper, n),
        "flexconn (sans-IO, default)": lambda n: flexconn_drops("sansio", url, wires, dropper, n),
        "flexconn (trio-websocket)": lambda n: flexconn_drops(
            "trio-websocket", url, wires, dropper, n
        ),
    }
    results: dict[str, list[float]] = {name: [] for name in contenders}
    try:
        remaining = args.drops
        while remaining > 0:
            block = min(25, remaining)
            for name, run in contenders.items():
                results[name] += trio.run(run, block)
            remaining -= block
    finally:
        mine.send("stop")
        simulator.join(10)

    print(
        f"Python {sys.version.split()[0]}: {args.drops} drops per contender, 10 feeds "
        f"({len(wires) // 2} markets x depthL25 + ticker), simulator in its own process"
    )
    floor = statistics.median(results["bare trio-websocket (floor)"])
    print(f"\n  {'contender':<30}{'min':>9}{'median':>9}{'p99':>9}{'max':>9}  ms{'x floor':>10}")
    for name, values in results.items():
        median = statistics.median(values)
        print(
            f"  {name:<30}{min(values) * 1e3:>9.2f}{median * 1e3:>9.2f}{_p99(values) * 1e3:>9.2f}"
            f"{max(values) * 1e3:>9.2f}    {median / floor:>10.2f}"
        )
    print("\ngoal: median under 25 ms on loopback")
    for name in ("flexconn (sans-IO, default)", "flexconn (trio-websocket)"):
        median = statistics.median(results[name])
        verdict = "met" if median < GOAL_MEDIAN else "MISSED"
        p99 = _p99(results[name])
        print(f"  {name}: median {median * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms {verdict}")
    dump(
        args.json,
        "bench_reconnect",
        "Reconnect: server-side drop to fresh data on all 10 feeds",
        [
            group(
                "drop to fresh data on 10 feeds",
                "s",
                results,
                baseline="bare trio-websocket (floor)",
                kind="latency",
                higher_is_better=False,
            )
        ],
    )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
