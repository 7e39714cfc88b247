"""Soak: one connection with 20 feeds and a steady order flow, through a fault every minute.

The exchange side (simulator and chaos proxy) runs in a child process, so that what this process
measures is the client alone: every ``--sample-every`` seconds it records its RSS, open file
descriptors, trio task count and the items buffered in its feeds (plus reconnects and traffic).
At the end it fails (exit status 1) if any of those grew without bound: the median of the last
third of the samples is compared with the middle third's (the first third is warm-up) against a
tolerance, and every sample against a hard cap. It also checks that every streaming feed
delivered data after the last fault, that every feed saw one continuity marker per reconnect,
and that the client's open orders match the exchange's.

Results go to ``--out`` as ``soak.json`` (rewritten every minute while running); ``make bench``
plots the newest one into the report.

Usage: ``python benchmarks/soak.py [--duration 1800] [--fault-every 60] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import trio

from flexconn import channels
from flexconn.auth import Credentials
from flexconn.config import Heartbeat, ReconnectPolicy
from flexconn.connection import Connection, ConnectionState, open_connection
from flexconn.feeds import Feed, StreamRestarted
from flexconn.models.enums import CandleGranularity, DepthLevel
from flexconn.rest import RestClient
from flexconn.sim import serve
from flexconn.sim.chaos import ChaosSchedule, open_chaos_proxy

MARKETS = ("BTC-USD-SWAP-LIN", "ETH-USD-SWAP-LIN", "BTC-USD", "ETH-USD", "BTC-USD-301227-LIN")
TRADING_MARKET = "BTC-USD-SWAP-LIN"
#: Feeds that carry data continuously, so each must have delivered some after the last fault.
STREAMING = ("depthL25", "trade", "ticker")


# -- the exchange side (child process) -----------------------------------------------------------


def _exchange(pipe: Pipe, seed: int, fault_every: float, duration: float, rate: float) -> None:
    trio.run(_exchange_main, pipe, seed, fault_every, duration, rate)


async def _exchange_main(
    pipe: Pipe, seed: int, fault_every: float, duration: float, rate: float
) -> None:
    async with serve(participants_rate=rate, seed=seed) as sim:
        target = urlsplit(sim.ws_url)
        assert target.hostname is not None and target.port is not None
        # faults from one interval in until one interval before the end, so the last one is
        # followed by a quiet stretch in which every feed must resume
        count = max(1, math.floor(duration / fault_every) - 1)
        schedule = ChaosSchedule.random(
            seed=seed,
            count=count,
            interval=fault_every,
            jitter=0.2,
            stall=min(8.0, fault_every / 3),
            refuse=min(3.0, fault_every / 5),
            window=min(10.0, fault_every / 3),
        )
        async with open_chaos_proxy(
            target.hostname, target.port, schedule=schedule, seed=seed
        ) as proxy:
            key = sim.demo_key
            pipe.send(
                {
                    "ws_url": proxy.url(sim.ws_url),
                    "rest_url": sim.rest_url,
                    "api_key": key.api_key,
                    "api_secret": key.api_secret,
                    "account": key.account_id,
                }
            )
            while True:
                request = await trio.to_thread.run_sync(pipe.recv, abandon_on_cancel=True)
                if request == "stop":
                    return
                engine = sim.exchange.engine
                open_orders = engine.open_orders(key.account_id)
                stats = proxy.statistics()
                pipe.send(
                    {
                        "open_orders": sorted(o.order_id for o in open_orders),
                        "faults": [
                            {
                                "t": applied.at - proxy.started_at,
                                "kind": applied.fault.kind.value,
                                "connections": applied.connections,
                            }
                            for applied in proxy.history
                        ],
                        "proxy": attrs.asdict(stats),
                        "account_trades": len(engine.account_trades(key.account_id)),
                    }
                )


# -- measuring this process ----------------------------------------------------------------------


def rss_mb() -> float:
    """Resident set size from /proc (Linux), in MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def task_count() -> int:
    count = 0
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


@attrs.define
class FeedRecord:
    """What one feed delivered."""

    channel: str
    data: int = 0
    markers: list[int] = attrs.Factory(list)
    last_data_at: float | None = None


async def consume(feed: Feed[Any], record: FeedRecord) -> None:
    async for item in feed:
        if isinstance(item, StreamRestarted):
            record.markers.append(item.reconnects)
        else:
            record.data += 1
            record.last_data_at = trio.current_time()


def feed_channels() -> list[channels.Channel[Any]]:
    """Twenty channels: depth, trades and ticker of five markets, and five more."""
    found: list[channels.Channel[Any]] = []
    for market in MARKETS:
        found.append(channels.depth(market, DepthLevel.L25))
        found.append(channels.trade(market))
        found.append(channels.ticker(market))
    found += [
        channels.candles(TRADING_MARKET, CandleGranularity.S60),
        channels.market(),
        channels.order(),
        channels.balance(),
        channels.position(),
    ]
    return found


async def sampler(
    conn: Connection, every: float, started: float, samples: list[dict[str, float]]
) -> None:
    while True:
        stats = conn.stats()
        samples.append(
            {
                "t": trio.current_time() - started,
                "rss_mb": rss_mb(),
                "fds": open_fds(),
                "tasks": task_count(),
                "buffered": sum(f.buffered for f in stats.feeds),
                "buffered_max": max((f.buffered for f in stats.feeds), default=0),
                "reconnects": stats.reconnects,
                "frames_in": stats.frames_in,
                "connected": int(stats.state is ConnectionState.CONNECTED),
            }
        )
        await trio.sleep(every)


# -- the verdict ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Limit:
    """How much a metric may grow (relative or absolute, whichever is larger) and a hard cap."""

    relative: float
    absolute: float
    cap: float


def growth_checks(samples: list[dict[str, float]], limits: dict[str, Limit]) -> dict[str, Any]:
    """Per metric: medians of the three thirds, growth of the last over the middle, verdict."""
    third = max(1, len(samples) // 3)
    checks: dict[str, Any] = {}
    for name, limit in limits.items():
        values = [s[name] for s in samples]
        first = statistics.median(values[:third])
        middle = statistics.median(values[third : 2 * third] or values)
        last = statistics.median(values[2 * third :] or values)
        growth = last - middle
        allowed = max(limit.relative * middle, limit.absolute)
        checks[name] = {
            "first": first,
            "middle": middle,
            "last": last,
            "growth": growth,
            "allowed": allowed,
            "cap": limit.cap,
            "max": max(values),
            "ok": growth <= allowed and max(values) <= limit.cap,
        }
    return checks


def write(out: Path, document: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    temporary = out / "soak.json.tmp"
    temporary.write_text(json.dumps(document, indent=1) + "\n")
    temporary.replace(out / "soak.json")


# -- the run -------------------------------------------------------------------------------------


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(
        target=_exchange,
        args=(theirs, args.seed, args.fault_every, args.duration, args.participants),
        daemon=True,
    )
    child.start()
    try:
        return await _soak(args, ours)
    finally:
        with contextlib.suppress(OSError):
            ours.send("stop")
        await trio.to_thread.run_sync(child.join, 10)
        if child.is_alive():
            child.kill()


async def _ask(pipe: Pipe) -> dict[str, Any]:
    pipe.send("truth")
    answer: dict[str, Any] = await trio.to_thread.run_sync(pipe.recv)
    return answer


async def _soak(args: argparse.Namespace, pipe: Pipe) -> dict[str, Any]:
    info: dict[str, Any] = await trio.to_thread.run_sync(pipe.recv)
    creds = Credentials(info["api_key"], info["api_secret"])
    started_wall = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    samples: list[dict[str, float]] = []
    subscribed = feed_channels()
    records = [FeedRecord(channel.wire) for channel in subscribed]
    document: dict[str, Any] = {
        "started": started_wall,
        "duration": args.duration,
        "fault_every": args.fault_every,
        "sample_every": args.sample_every,
        "feeds": len(subscribed),
        "orders_per_s": 0,
        "seed": args.seed,
        "complete": False,
        "samples": samples,
    }
    heartbeat = Heartbeat(interval=2.0, timeout=2.0)
    retry = ReconnectPolicy(initial_delay=0.1, max_delay=2.0, connect_timeout=3.0)
    async with (
        RestClient(info["rest_url"], creds) as rest,
        open_connection(
            info["ws_url"], credentials=creds, heartbeat=heartbeat, reconnect=retry, seed=args.seed
        ) as conn,
        contextlib.AsyncExitStack() as stack,
        trio.open_nursery() as nursery,
    ):
        for channel, record in zip(subscribed, records, strict=True):
            backfill = rest if channel.name == "trade" else None
            feed = await stack.enter_async_context(conn.subscribe(channel, backfill=backfill))
            nursery.start_soon(consume, feed, record)
        started = trio.current_time()
        nursery.start_soon(sampler, conn, args.sample_every, started, samples)
        deadline = started + args.duration
        while trio.current_time() < deadline:
            await trio.sleep(min(60.0, deadline - trio.current_time()))
            write(args.out, document)
        end = trio.current_time()
        stats = conn.stats()
        truth = await _ask(pipe)
        nursery.cancel_scope.cancel()
    faults = truth["faults"]
    problems: list[str] = []
    last_fault = max((f["t"] for f in faults), default=0.0)
    for record in records:
        kind = record.channel.partition(":")[0]
        if kind in STREAMING and (
            record.last_data_at is None or record.last_data_at - started <= last_fault
        ):
            problems.append(f"{record.channel}: no data after the last fault")
        if record.markers != list(range(1, stats.reconnects + 1)):
            seen = len(record.markers)
            problems.append(f"{record.channel}: {seen} markers for {stats.reconnects} reconnects")
    if stats.state is not ConnectionState.CONNECTED:
        problems.append(f"connection ended {stats.state.value}")
    capacity = sum(f.capacity for f in stats.feeds)
    limits = {
        "rss_mb": Limit(relative=0.10, absolute=16.0, cap=args.rss_cap_mb),
        "fds": Limit(relative=0.20, absolute=8, cap=args.fd_cap),
        "tasks": Limit(relative=0.20, absolute=20, cap=args.task_cap),
        "buffered": Limit(relative=0.50, absolute=256, cap=capacity),
    }
    checks = growth_checks(samples, limits)
    document.update(
        {
            "complete": True,
            "measured_for": end - started,
            "faults": faults,
            "checks": checks,
            "problems": problems,
            "figures": {
                "faults applied": len(faults),
                "faults that hit a connection": sum(1 for f in faults if f["connections"]),
                "reconnects": stats.reconnects,
                "frames received": stats.frames_in,
                "MiB received": round(stats.bytes_in / 2**20, 1),
                "feed items delivered": sum(r.data for r in records),
                "proxy connections accepted": truth["proxy"]["accepted"],
                "proxy connections refused": truth["proxy"]["refused"],
                "samples": len(samples),
            },
            "passed": not problems and all(check["ok"] for check in checks.values()),
        }
    )
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=1800, help="seconds (default 30 min)")
    parser.add_argument("--fault-every", type=float, default=60, help="seconds between faults")
    parser.add_argument("--sample-every", type=float, default=5, help="seconds between samples")
    parser.add_argument("--participants", type=float, default=50, help="market actions per s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rss-cap-mb", type=float, default=1024)
    parser.add_argument("--fd-cap", type=float, default=512)
    parser.add_argument("--task-cap", type=float, default=2000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/soak-latest"))
    args = parser.parse_args(argv)
    if args.duration < 3 * args.sample_every or args.fault_every <= 0:
        parser.error("need at least three samples and a positive --fault-every")
    wall = time.perf_counter()
    document = trio.run(soak, args)
    write(args.out, document)
    verdict = "PASS" if document["passed"] else "FAIL"
    print(f"soak {verdict} after {time.perf_counter() - wall:.0f}s; results in {args.out}")
    for name, check in document["checks"].items():
        print(
            f"  {name:<9} middle {check['middle']:10.1f}  last {check['last']:10.1f}  "
            f"growth {check['growth']:+9.1f} (allowed {check['allowed']:.1f})  "
            f"max {check['max']:.1f} (cap {check['cap']:.0f})  {'ok' if check['ok'] else 'FAIL'}"
        )
    for problem in document["problems"]:
        print(f"  problem: {problem}")
    return 0 if document["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
