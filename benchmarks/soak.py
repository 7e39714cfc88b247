"""Soak: one connection with 20 feeds and a steady order flow, through a fault every minute.

The exchange side (simulator and chaos proxy) runs in a child process, so that what this process
measures is the client alone: every ``--sample-every`` seconds it records its RSS, open file
descriptors, trio task count, the items buffered in its feeds and the order requests in its
outbox (queued, in flight or being reconciled), plus reconnects and traffic.
At the end it fails (exit status 1) if any of those grew without bound: the median of the last
third of the samples is compared with the middle third's (the first third is warm-up) against a
tolerance, and every sample against a hard cap. Apart from that verdict it computes the goal's
figure, the RSS slope over the last two thirds of the run (least squares over the samples taken
from a third of the measured time on, MiB per minute; the goal: under 0.02 over a 60-minute run),
records it as ``rss_slope`` in ``soak.json`` and prints it. It also checks that every streaming feed
delivered data after the last fault, that every feed saw one continuity marker per reconnect,
and that the client's open orders match the exchange's.

The exchange side is pinned to one CPU and this process to another (``benchmarks/harness.py``);
the simulator's modules are imported only in the exchange's process.

Results go to ``--out`` as ``soak.json`` (rewritten every minute while running); ``make bench``
plots every finished one into the report and judges the newest 60-minute one against the goal.

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
import random
import statistics
import sys
import time
from collections import Counter
from decimal import Decimal
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
from flexconn.errors import FlexconnError
from flexconn.feeds import Feed, StreamRestarted
from flexconn.models.enums import CandleGranularity, DepthLevel, Side, TimeInForce
from flexconn.models.market import DepthUpdate
from flexconn.models.orders import LimitOrder
from flexconn.rest import RestClient
from flexconn.transport import (
    DEFAULT_TRANSPORT,
    TransportFactory,
    open_sansio_websocket,
    open_trio_websocket,
)

TRANSPORTS: dict[str, TransportFactory] = {
    "sansio": open_sansio_websocket,
    "trio-websocket": open_trio_websocket,
}
DEFAULT_TRANSPORT_NAME = next(k for k, v in TRANSPORTS.items() if v is DEFAULT_TRANSPORT)
MARKETS = ("BTC-USD-SWAP-LIN", "ETH-USD-SWAP-LIN", "BTC-USD", "ETH-USD", "BTC-USD-301227-LIN")
TRADING_MARKET = "BTC-USD-SWAP-LIN"
#: Feeds that carry data continuously, so each must have delivered some after the last fault.
STREAMING = ("depthL25", "trade", "ticker")
#: The goal: RSS slope over the last two thirds of a 60-minute run, in MiB per minute.
RSS_SLOPE_LIMIT = 0.02


# -- the exchange side (child process) -----------------------------------------------------------


def _exchange(pipe: Pipe, seed: int, fault_every: float, duration: float, rate: float) -> None:
    from harness import pin

    pin("server")
    trio.run(_exchange_main, pipe, seed, fault_every, duration, rate)


async def _exchange_main(
    pipe: Pipe, seed: int, fault_every: float, duration: float, rate: float
) -> None:
    from flexconn.sim import serve
    from flexconn.sim.chaos import ChaosSchedule, open_chaos_proxy

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
            spec = sim.exchange.markets[TRADING_MARKET]
            pipe.send(
                {
                    "tick": str(spec.tick_size),
                    "lot": str(spec.qty_increment),
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
    """What one feed delivered (and the newest item, which the trader reads for prices)."""

    channel: str
    data: int = 0
    markers: list[int] = attrs.Factory(list)
    last_data_at: float | None = None
    latest: Any = None


async def consume(feed: Feed[Any], record: FeedRecord) -> None:
    async for item in feed:
        if isinstance(item, StreamRestarted):
            record.markers.append(item.reconnects)
        else:
            record.data += 1
            record.last_data_at = trio.current_time()
            record.latest = item


class Trader:
    """A steady order flow on one market: passive limits placed, re-priced and cancelled, and
    now and then an IOC order that crosses the spread (fills).

    Every request runs in its own task, so a request waiting for reconciliation never stalls
    the flow; each must end with exactly one outcome.
    """

    def __init__(
        self,
        conn: Connection,
        book: FeedRecord,
        rate: float,
        seed: int,
        tick: Decimal,
        lot: Decimal,
    ) -> None:
        self.conn = conn
        self.book = book
        self.rate = rate
        self.tick = tick
        self.lot = lot
        self.rng = random.Random(seed)
        self.issued: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.in_flight = 0

    def _mid(self) -> Decimal | None:
        update = self.book.latest
        if not isinstance(update, DepthUpdate) or not update.data:
            return None
        snapshot = update.data[0]
        if snapshot.best_bid is None or snapshot.best_ask is None:
            return None
        return (snapshot.best_bid.price + snapshot.best_ask.price) / 2

    def _price(self, mid: Decimal, offset: float) -> Decimal:
        raw = mid * Decimal(str(1 + offset))
        return max(self.tick, (raw / self.tick).quantize(Decimal(1)) * self.tick)

    def _mine(self) -> list[int]:
        return [o.order_id for o in self.conn.orders.values() if o.market_code == TRADING_MARKET]

    async def run(self, nursery: trio.Nursery) -> None:
        while True:
            await trio.sleep(1 / self.rate)
            mid = self._mid()
            if mid is None or self.conn.state is not ConnectionState.CONNECTED:
                continue
            mine = self._mine()
            roll = self.rng.random()
            side = self.rng.choice((Side.BUY, Side.SELL))
            sign = 1 if side is Side.SELL else -1  # passive: buys below, sells above the mid
            if roll < 0.1:
                order = LimitOrder(
                    TRADING_MARKET,
                    side,
                    self.lot,
                    self._price(mid, -sign * 0.002),
                    time_in_force=TimeInForce.IOC,
                )
                nursery.start_soon(self._do, "place_ioc", self.conn.place(order))
            elif len(mine) < 10 or roll < 0.35:
                price = self._price(mid, sign * self.rng.uniform(0.005, 0.02))
                order = LimitOrder(TRADING_MARKET, side, self.lot * self.rng.randint(1, 5), price)
                nursery.start_soon(self._do, "place", self.conn.place(order))
            elif roll < 0.65:
                target = self.conn.orders.get(self.rng.choice(mine))
                if target is None or target.price is None:
                    continue
                new_price = target.price + self.tick * self.rng.choice((-2, -1, 1, 2))
                nursery.start_soon(
                    self._do,
                    "modify",
                    self.conn.modify(target.order_id, TRADING_MARKET, price=new_price),
                )
            else:
                victim = self.rng.choice(mine)
                nursery.start_soon(self._do, "cancel", self.conn.cancel(TRADING_MARKET, victim))

    async def _do(self, kind: str, request: Any) -> None:
        self.issued[kind] += 1
        self.in_flight += 1
        try:
            await request
            self.outcomes["ack"] += 1
        except FlexconnError as exc:
            self.outcomes[type(exc).__name__] += 1
        finally:
            self.in_flight -= 1


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
        outbox = conn.outbox_stats()
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
                "open_orders": len(conn.orders),
                "outbox": outbox.queued + outbox.in_flight + outbox.unknown,
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
    """Per metric: medians of the three thirds, growth of the last over the middle, verdict.

    Also the least-squares slope over the last two thirds, per minute (when samples carry their
    time ``t``), to show a trend the tolerance lets pass.
    """
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
            "slope_per_min": _slope(samples[third:], name),
            "ok": growth <= allowed and max(values) <= limit.cap,
        }
    return checks


def _slope(samples: list[dict[str, float]], name: str) -> float | None:
    if len(samples) < 2 or any("t" not in s for s in samples):
        return None
    times = [s["t"] / 60 for s in samples]
    values = [s[name] for s in samples]
    mean_t = statistics.fmean(times)
    mean_v = statistics.fmean(values)
    spread = sum((t - mean_t) ** 2 for t in times)
    if spread == 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True)) / spread


def rss_slope(samples: list[dict[str, float]], measured_for: float) -> dict[str, Any]:
    """The goal's figure: least-squares RSS slope (MiB/min) over the last two thirds of the run.

    The window is by time: every sample taken at or after a third of ``measured_for``.
    """
    start = measured_for / 3
    window = [s for s in samples if s["t"] >= start]
    slope = _slope(window, "rss_mb")
    return {
        "from_min": start / 60,
        "to_min": (window[-1]["t"] if window else measured_for) / 60,
        "minutes": measured_for / 60,
        "samples": len(window),
        "slope_mib_per_min": slope,
        "limit": RSS_SLOPE_LIMIT,
        "below_limit": slope is not None and slope < RSS_SLOPE_LIMIT,
        "long_enough": measured_for >= 3600,
    }


def default_limits(args: argparse.Namespace, *, capacity: float) -> dict[str, Limit]:
    """The growth tolerances and caps (``capacity``: the feeds' total buffer size)."""
    return {
        "rss_mb": Limit(relative=0.05, absolute=4.0, cap=args.rss_cap_mb),
        "fds": Limit(relative=0.20, absolute=8, cap=args.fd_cap),
        "tasks": Limit(relative=0.20, absolute=20, cap=args.task_cap),
        "buffered": Limit(relative=0.50, absolute=256, cap=capacity),
        "outbox": Limit(relative=0.50, absolute=50, cap=1000),
    }


def recheck(args: argparse.Namespace) -> dict[str, Any]:
    """Re-judge a finished run's samples under the current limits (``--recheck``)."""
    document: dict[str, Any] = json.loads((args.out / "soak.json").read_text())
    capacity = document["checks"]["buffered"]["cap"]
    limits = default_limits(args, capacity=capacity)
    limits = {name: limit for name, limit in limits.items() if name in document["samples"][0]}
    document["checks"] = growth_checks(document["samples"], limits)
    document["rss_slope"] = rss_slope(
        document["samples"], document.get("measured_for", document["duration"])
    )
    document["passed"] = not document["problems"] and all(
        check["ok"] for check in document["checks"].values()
    )
    return document


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
        "orders_per_s": args.orders_per_s,
        "transport": args.transport,
        "seed": args.seed,
        "complete": False,
        "samples": samples,
    }
    heartbeat = Heartbeat(interval=2.0, timeout=2.0)
    retry = ReconnectPolicy(initial_delay=0.1, max_delay=2.0, connect_timeout=3.0)
    started = trio.current_time()
    try:
        async with (
            RestClient(info["rest_url"], creds) as rest,
            open_connection(
                info["ws_url"],
                credentials=creds,
                heartbeat=heartbeat,
                reconnect=retry,
                seed=args.seed,
                rest=rest,
                transport=TRANSPORTS[args.transport],
            ) as conn,
            contextlib.AsyncExitStack() as stack,
            trio.open_nursery() as nursery,
        ):
            for channel, record in zip(subscribed, records, strict=True):
                backfill = rest if channel.name == "trade" else None
                feed = await stack.enter_async_context(conn.subscribe(channel, backfill=backfill))
                nursery.start_soon(consume, feed, record)
            book = next(r for r in records if r.channel == f"depthL25:{TRADING_MARKET}")
            trader = Trader(
                conn,
                book,
                args.orders_per_s,
                args.seed,
                Decimal(info["tick"]),
                Decimal(info["lot"]),
            )
            started = trio.current_time()
            nursery.start_soon(sampler, conn, args.sample_every, started, samples)
            async with trio.open_nursery() as requests:
                requests.start_soon(trader.run, requests)
                deadline = started + args.duration
                while trio.current_time() < deadline:
                    await trio.sleep(min(60.0, deadline - trio.current_time()))
                    write(args.out, document)
                end = trio.current_time()
                # stop issuing, let every request in flight reach its outcome
                requests.cancel_scope.deadline = trio.current_time() + 60
                with trio.move_on_after(60):
                    while trader.in_flight:  # noqa: ASYNC110 - counted by the request tasks
                        await trio.sleep(0.1)
                requests.cancel_scope.cancel()
            stats = conn.stats()
            truth = await _ask(pipe)
            # fills by the market's participants can land between two looks: compare a few times
            for _ in range(10):
                if sorted(conn.orders) == truth["open_orders"]:
                    break
                await trio.sleep(0.5)
                truth = await _ask(pipe)
            client_orders = sorted(conn.orders)
            nursery.cancel_scope.cancel()
    except Exception as exc:  # the verdict must record any crash, not lose the samples
        # the connection ended (or the run broke): report the samples taken so far as a failure
        log_crash = f"the run ended early after {trio.current_time() - started:.0f}s: {exc!r}"
        truth = await _ask(pipe)
        document.update(
            {
                "complete": True,
                "measured_for": trio.current_time() - started,
                "faults": truth["faults"],
                "checks": growth_checks(samples, default_limits(args, capacity=8192)),
                "rss_slope": rss_slope(samples, trio.current_time() - started),
                "problems": [log_crash],
                "figures": {"faults applied": len(truth["faults"]), "samples": len(samples)},
                "passed": False,
            }
        )
        return document
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
    if trader.in_flight:
        problems.append(f"{trader.in_flight} order requests never got an outcome")
    if sum(trader.issued.values()) != sum(trader.outcomes.values()):
        problems.append(f"requests {dict(trader.issued)} but outcomes {dict(trader.outcomes)}")
    if client_orders != truth["open_orders"]:
        problems.append(
            f"conn.orders has {len(client_orders)} orders, the exchange {len(truth['open_orders'])}"
        )
    checks = growth_checks(
        samples, default_limits(args, capacity=sum(f.capacity for f in stats.feeds))
    )
    document.update(
        {
            "complete": True,
            "measured_for": end - started,
            "faults": faults,
            "checks": checks,
            "rss_slope": rss_slope(samples, end - started),
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
                "order requests": dict(trader.issued),
                "order outcomes": dict(trader.outcomes),
                "account fills at the exchange": truth["account_trades"],
                "open orders at the end (client = exchange)": len(client_orders),
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
    parser.add_argument("--orders-per-s", type=float, default=2.0, help="order requests per s")
    parser.add_argument("--transport", choices=sorted(TRANSPORTS), default=DEFAULT_TRANSPORT_NAME)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rss-cap-mb", type=float, default=1024)
    parser.add_argument("--fd-cap", type=float, default=512)
    parser.add_argument("--task-cap", type=float, default=2000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/soak-latest"))
    parser.add_argument(
        "--recheck", action="store_true", help="re-judge the run in --out under the current limits"
    )
    args = parser.parse_args(argv)
    if args.duration < 3 * args.sample_every or args.fault_every <= 0:
        parser.error("need at least three samples and a positive --fault-every")
    wall = time.perf_counter()
    if not args.recheck:
        from harness import pin

        pin("client")
    document = recheck(args) if args.recheck else trio.run(soak, args)
    write(args.out, document)
    verdict = "PASS" if document["passed"] else "FAIL"
    print(f"soak {verdict} after {time.perf_counter() - wall:.0f}s; results in {args.out}")
    for name, check in document["checks"].items():
        print(
            f"  {name:<9} middle {check['middle']:10.1f}  last {check['last']:10.1f}  "
            f"growth {check['growth']:+9.1f} (allowed {check['allowed']:.1f})  "
            f"max {check['max']:.1f} (cap {check['cap']:.0f})  {'ok' if check['ok'] else 'FAIL'}"
        )
    slope = document.get("rss_slope") or {}
    if slope.get("slope_mib_per_min") is not None:
        print(
            f"  RSS slope over the last two thirds (min {slope['from_min']:.1f} to "
            f"{slope['to_min']:.1f}, {slope['samples']} samples): "
            f"{slope['slope_mib_per_min']:+.4f} MiB/min (goal < {slope['limit']:g} over 60 min: "
            f"{'below' if slope['below_limit'] else 'ABOVE'}"
            f"{'' if slope['long_enough'] else '; this run is shorter than 60 min'})"
        )
    for problem in document["problems"]:
        print(f"  problem: {problem}")
    return 0 if document["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
