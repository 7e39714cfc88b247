"""How many messages per second does flexconn's typed feed deliver, against a bare asyncio loop?

The server is a raw pre-framed one (``benchmarks/rawserver.py``): realistic CoinFLEX frames with
distinct values in every message, encoded before anything is timed, written chunk by chunk, so it
cannot be the bottleneck; its capacity (what a reader that parses nothing gets from it) is
measured in the same run and reported beside the clients.

Cases:

* **order notices**: ``order:all`` of one account, logged in; ~400 B ``OrderOpened`` /
  ``OrderMatched`` / ``OrderClosed`` notices, every order distinct.
* **depthL25, levels read**: ``depthL25`` snapshots of one market, 25 levels a side, distinct
  prices and quantities, every level of every snapshot read as Decimal by every client (the bare
  loops convert with ``Decimal(repr(x))``, as flexconn does; flexconn's feed uses the ``BLOCK``
  policy so that it, too, delivers every snapshot).

Contenders, each in its own process (fresh connection per measurement):

* **asyncio websockets + orjson** (the baseline): websockets' asyncio client, ``await ws.recv()``
  and ``orjson.loads`` per message;
* **trio + websockets sans-IO + orjson**: trio, websockets' sans-IO core, one read per chunk;
* **flexconn async for**: ``open_connection`` + ``conn.subscribe``, one consumer task iterating its
  typed feed (``async for``), the default transport and settings;
* **flexconn receive_many**: the same with ``Feed.receive_many`` (batches), when the feed has it;
* **server capacity (discard reader)**: a socket that reads and discards the bytes (frames/s =
  bytes/s over the mean frame size): what the server can push, not a client.

The server process is pinned to one CPU and every client process to another
(``benchmarks/harness.py``). Rounds are interleaved (each contender once per round, order
rotated); every ratio is computed within a round and shown as min / median / max over rounds.

Run: ``.venv/bin/python benchmarks/bench_feed.py [--rounds 5] [--seconds 1.0] [--json PATH]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection as Pipe
from typing import Any

from bare import asyncio_feed, discard_reader, login_command, trio_sansio_feed
from benchjson import add_json_option, dump, group
from harness import goal, pin, pinning_note, rotated, round_ratios, spread
from rawserver import MARKET, serve

WARMUP = 0.3
API_KEY, API_SECRET = "bench-key", "bench-secret-not-a-real-one"
BASELINE = "asyncio websockets + orjson"
CAPACITY = "server capacity (discard reader)"
TRIO = "trio + websockets sans-IO + orjson"
FLEX = "flexconn async for"
FLEX_MANY = "flexconn receive_many"
RECEIVE_MANY = "receive_many"
CASES = {
    "order notices": {"path": "orders", "depth": False},
    "depthL25, levels read": {"path": "depth", "depth": True},
}


def _commands(case: str) -> list[str]:
    if CASES[case]["depth"]:
        return [f'{{"op":"subscribe","tag":1,"args":["depthL25:{MARKET}"]}}']
    return [login_command(API_KEY, API_SECRET), '{"op":"subscribe","tag":2,"args":["order:all"]}']


# -- flexconn ------------------------------------------------------------------------------------


def flexconn_feed(
    url: str, case: str, seconds: float, warmup: float, many: bool
) -> dict[str, float]:
    """Typed messages/s a flexconn consumer reads (and, for depth, every level as Decimal)."""
    import trio

    from flexconn import channels
    from flexconn.auth import Credentials
    from flexconn.config import Backpressure
    from flexconn.connection import open_connection
    from flexconn.feeds import Feed, StreamRestarted
    from flexconn.models.enums import DepthLevel

    depth = bool(CASES[case]["depth"])
    counted = [0]

    def take(message: Any) -> None:
        if isinstance(message, StreamRestarted):
            return
        if depth:
            for snapshot in message.data:
                for side in (snapshot.asks, snapshot.bids):
                    for _price, _quantity in side:
                        pass
        else:
            _ = message.data
        counted[0] += 1

    async def consume(feed: Feed[Any], started: trio.Event) -> None:
        if many:
            # looked up by name: the method is new, and this script also measures feeds without it
            receive_many: Callable[[], Awaitable[list[Any]]] = getattr(feed, RECEIVE_MANY)
            while True:
                batch = await receive_many()
                started.set()
                for message in batch:
                    take(message)
        async for message in feed:
            started.set()
            take(message)

    async def run() -> dict[str, float]:
        credentials = None if depth else Credentials(API_KEY, API_SECRET)
        channel: channels.Channel[Any] = (
            channels.depth(MARKET, DepthLevel.L25) if depth else channels.order()
        )
        async with (
            open_connection(url, credentials=credentials) as conn,
            conn.subscribe(channel, policy=Backpressure.BLOCK) as feed,
            trio.open_nursery() as nursery,
        ):
            started = trio.Event()
            nursery.start_soon(consume, feed, started)
            await started.wait()
            await trio.sleep(warmup)
            count0, start = counted[0], time.perf_counter()
            await trio.sleep(seconds)
            count, end = counted[0] - count0, time.perf_counter()
            nursery.cancel_scope.cancel()
        return {"rate": count / (end - start), "count": count, "elapsed": end - start}

    return trio.run(run)


def has_receive_many() -> bool:
    from flexconn.feeds import Feed

    return hasattr(Feed, RECEIVE_MANY)


# -- processes -----------------------------------------------------------------------------------


def _worker(pipe: Pipe, contender: str) -> None:
    """A client process: pinned to the client CPU, runs one contender per job."""
    pin("client")
    while True:
        job = pipe.recv()
        if job is None:
            return
        url, case, seconds, frame_bytes = job
        commands = _commands(case)
        depth = bool(CASES[case]["depth"])
        try:
            if contender == CAPACITY:
                result = discard_reader(url, commands, seconds, WARMUP, frame_bytes)
            elif contender == BASELINE:
                result = asyncio_feed(url, commands, seconds, WARMUP, depth)
            elif contender == TRIO:
                result = trio_sansio_feed(url, commands, seconds, WARMUP, depth)
            else:
                result = flexconn_feed(url, case, seconds, WARMUP, contender == FLEX_MANY)
            pipe.send(result)
        except Exception as exc:  # reported by the coordinator, the run goes on
            pipe.send({"error": repr(exc)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--seconds", type=float, default=1.0, help="measured window per run")
    parser.add_argument("--orders", type=int, default=15000, help="distinct orders (3 notices)")
    parser.add_argument("--snapshots", type=int, default=8000, help="distinct depth snapshots")
    add_json_option(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    notes: list[str] = []

    contenders = [BASELINE, TRIO, FLEX, FLEX_MANY, CAPACITY]
    if not has_receive_many():
        contenders.remove(FLEX_MANY)
        notes.append(
            "flexconn receive_many: skipped, this flexconn's Feed has no receive_many "
            "(hasattr check)"
        )

    context = multiprocessing.get_context("spawn")
    server_pipe, theirs = context.Pipe()
    server = context.Process(target=serve, args=(theirs, args.orders, args.snapshots), daemon=True)
    server.start()
    info = server_pipe.recv()
    workers: dict[str, tuple[Pipe, Any]] = {}
    for name in contenders:
        mine, theirs = context.Pipe()
        process = context.Process(target=_worker, args=(theirs, name), daemon=True)
        process.start()
        workers[name] = (mine, process)

    rates: dict[str, dict[str, list[float]]] = {c: {n: [] for n in contenders} for c in CASES}
    errors: list[str] = []
    try:
        for r in range(args.rounds):
            for case, spec in CASES.items():
                stream = info["streams"][spec["path"]]
                url = f"{info['url']}/{spec['path']}"
                for name in rotated(contenders, r):
                    pipe, _ = workers[name]
                    pipe.send((url, case, args.seconds, stream["frame_bytes"]))
                    result = pipe.recv()
                    if "error" in result:
                        errors.append(f"{case} / {name} round {r + 1}: {result['error']}")
                        rates[case][name].append(0.0)
                    else:
                        rates[case][name].append(result["rate"])
    finally:
        for pipe, process in workers.values():
            pipe.send(None)
            process.join(10)
        server_pipe.send("stop")
        server.join(10)

    pinning = pinning_note()
    print(
        f"Python {sys.version.split()[0]}; {pinning['note']}; {args.rounds} interleaved rounds "
        f"of {args.seconds:g} s (after {WARMUP:g} s warm-up) per contender"
    )
    for name, stream in info["streams"].items():
        print(
            f"  stream /{name}: {stream['frames']:,} distinct frames, "
            f"{stream['payload_bytes']:.0f} B mean payload"
        )
    for note in notes + errors:
        print(f"  note: {note}")

    groups = []
    goals = []
    for case, by_name in rates.items():
        series = {n: v for n, v in by_name.items() if v and all(v)}
        ratios = round_ratios(series, BASELINE) if BASELINE in series else {}
        print(f"\n{case} (msg/s; ratio to {BASELINE} per round: min / median / max)")
        for name, values in series.items():
            low, mid, high = spread(values)
            r_low, r_mid, r_high = spread(ratios.get(name) or [0.0])
            print(
                f"  {name:<36}{low:>10,.0f}{mid:>10,.0f}{high:>10,.0f}  {1e6 / mid:7.2f} us/msg"
                f"  x{r_low:.2f} / x{r_mid:.2f} / x{r_high:.2f}"
            )
        groups.append(
            group(case, "msg/s", series, baseline=BASELINE if BASELINE in series else None)
            | {"ratios": ratios}
        )
        goals += _goals(case, series, ratios)
    dump(
        args.json,
        "bench_feed",
        "Feed throughput from a raw pre-framed server (not the bottleneck)",
        groups,
        goals=goals,
        notes=notes + errors,
        meta={"pinning": pinning, "streams": info["streams"]},
    )
    for entry in goals:
        verdict = "met" if entry["met"] else "MISSED"
        print(
            f"goal: {entry['goal']}: {entry['value']} ({entry['comparison']} "
            f"{entry['target']}) {verdict} {entry['reason']}"
        )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 1 if errors else 0


def _goals(
    case: str, series: dict[str, list[float]], ratios: dict[str, list[float]]
) -> list[dict[str, Any]]:
    """The issue's feed goals and the harness's own validity check for ``case``."""
    found = []

    def us(name: str) -> float:
        return 1e6 / statistics.median(series[name])

    if FLEX in series and BASELINE in series:
        target, label = (
            (1.0, "typed order feed via `async for` vs the bare asyncio loop")
            if case == "order notices"
            else (0.8, "depth-25 with every level read vs the bare asyncio loop")
        )
        value = statistics.median(ratios[FLEX])
        extra = ""
        if TRIO in series:
            extra = (
                f"; the bare trio + sans-IO loop takes {us(TRIO):.1f} us/msg, so trio and the "
                "transport are not what costs it"
            )
        if FLEX_MANY in series:
            extra += f"; with receive_many flexconn takes {us(FLEX_MANY):.1f} us/msg"
        reason = (
            f"flexconn takes {us(FLEX):.1f} us per message against the bare asyncio loop's "
            f"{us(BASELINE):.1f} (+{us(FLEX) - us(BASELINE):.1f} us of client-side work per "
            f"message: typed decode, routing, feed hand-off, scheduling){extra}"
        )
        found.append(
            goal(
                label,
                value=round(value, 3),
                target=target,
                comparison=">=",
                spread_of=ratios[FLEX],
                reason=reason,
                detail=f"{case}: median of per-round ratios of msg/s",
            )
        )
    clients = [n for n in series if n != CAPACITY]
    if CAPACITY in series and clients:
        fastest = max(clients, key=lambda n: statistics.median(series[n]))
        headroom = statistics.median(series[CAPACITY]) / statistics.median(series[fastest])
        found.append(
            goal(
                f"harness check: server capacity >= 2x the fastest client ({case})",
                value=round(headroom, 2),
                target=2.0,
                comparison=">=",
                reason=f"the server pushed only {headroom:.2f}x what {fastest} read: the server "
                "may be limiting the fastest clients",
                detail=f"discard reader vs {fastest}",
            )
        )
    return found


if __name__ == "__main__":
    sys.exit(main())
