"""How fast does flexconn turn exchange frames into typed messages?

Baselines in the same run: ``json.loads`` and ``orjson.loads`` to plain dicts (the floor any
decoder pays). Contenders: ``flexconn.protocol.decode`` (typed messages), and for depth snapshots
also decode followed by reading every level typed (``snapshot.asks`` and ``snapshot.bids``, which
are converted lazily on first access).

Each case runs ``--repeats`` timed rounds, the contenders interleaved round by round so that drift
(CPU frequency, other load) affects them alike; the table shows messages per second (min, median,
max over the rounds) and the ratio of median cost to ``orjson.loads``.

Usage: ``python benchmarks/bench_decode.py [--repeats N] [--round-seconds S] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable

import orjson
from benchjson import add_json_option, dump, group

from flexconn.models import DepthUpdate
from flexconn.protocol import decode

_RNG = random.Random(20201214)


def depth_frame(levels: int, table: str) -> str:
    """A later-era depth snapshot: numeric levels, seqNum and checksum, best first."""
    mid = 35000.0
    asks = [
        [round(mid + 0.5 * (i + 1), 1), round(_RNG.uniform(0.001, 25.0), 3), 0, 0]
        for i in range(levels)
    ]
    bids = [
        [round(mid - 0.5 * i, 1), round(_RNG.uniform(0.001, 25.0), 3), 0, 0] for i in range(levels)
    ]
    return json.dumps(
        {
            "table": table,
            "data": [
                {
                    "instrumentId": "BTC-USD-SWAP-LIN",
                    "seqNum": 1608898592006137237,
                    "timestamp": "1609350022785",
                    "checksum": 1139901235,
                    "asks": asks,
                    "bids": bids,
                }
            ],
        }
    )


TRADE = json.dumps(
    {
        "table": "trade",
        "data": [
            {
                "side": "buy",
                "tradeId": "2778148208082945",
                "price": "5556.91",
                "quantity": "5",
                "marketCode": "BTC-USD-SWAP-LIN",
                "timestamp": "1594299886890",
            }
        ],
    }
)

ORDER_MATCHED = json.dumps(
    {
        "table": "order",
        "data": [
            {
                "notice": "OrderMatched",
                "accountId": "3",
                "clientOrderId": "16",
                "orderId": "567531657",
                "price": "9300",
                "quantity": "20",
                "side": "BUY",
                "status": "FILLED",
                "marketCode": "BTC-USD-SWAP-LIN",
                "timeInForce": "GTC",
                "timestamp": "1592490254168",
                "matchId": "11568123",
                "matchPrice": "9300",
                "matchQuantity": "20",
                "orderMatchType": "MAKER",
                "remainQuantity": "0",
                "orderType": "LIMIT",
                "fees": "3.7",
                "feeInstrumentId": "FLEX",
                "isTriggered": "False",
            }
        ],
    }
)


def decode_and_read_levels(frame: str) -> object:
    """Decode, then read every level typed, as a book-building consumer does."""
    update = decode(frame)
    assert isinstance(update, DepthUpdate)
    for snapshot in update.data:
        _ = snapshot.asks, snapshot.bids
    return update


def contenders(depth: bool) -> dict[str, Callable[[str], object]]:
    found: dict[str, Callable[[str], object]] = {
        "json.loads": json.loads,
        "orjson.loads": orjson.loads,
        "flexconn decode": decode,
    }
    if depth:
        found["decode + read all levels"] = decode_and_read_levels
    return found


def calibrate(function: Callable[[str], object], frame: str, seconds: float) -> int:
    """How many calls take about ``seconds``."""
    count = 1
    while True:
        start = time.perf_counter()
        for _ in range(count):
            function(frame)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4:
            return max(1, int(count * seconds / elapsed))
        count *= 2


def measure(
    frame: str, functions: dict[str, Callable[[str], object]], repeats: int, seconds: float
) -> dict[str, list[float]]:
    """Per-call seconds of each function, one sample per round, rounds interleaved."""
    counts = {name: calibrate(function, frame, seconds) for name, function in functions.items()}
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            count = counts[name]
            gc.collect()
            start = time.perf_counter()
            for _ in range(count):
                function(frame)
            samples[name].append((time.perf_counter() - start) / count)
    return samples


def report(case: str, frame: str, samples: dict[str, list[float]]) -> None:
    baseline = statistics.median(samples["orjson.loads"])
    print(f"\n{case}  ({len(frame):,} bytes)")
    print(f"  {'decoder':<26}{'min msg/s':>12}{'median msg/s':>14}{'max msg/s':>12}{'us/msg':>9}")
    print(f"  {'':<26}{'':>12}{'':>14}{'':>12}{'(median)':>9}{'x orjson':>10}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(
            f"  {name:<26}{1 / max(values):>12,.0f}{1 / median:>14,.0f}{1 / min(values):>12,.0f}"
            f"{median * 1e6:>9.2f}{median / baseline:>10.2f}"
        )


def profile(frame: str, calls: int) -> None:
    function = decode_and_read_levels if frame.startswith('{"table": "depth') else decode
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        function(frame)
    profiler.disable()
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(8)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per contender")
    parser.add_argument("--round-seconds", type=float, default=0.12, help="length of one round")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile per case")
    add_json_option(parser)
    args = parser.parse_args(argv)

    cases: list[tuple[str, str, bool]] = [
        ("depthL25 snapshot, 25 levels a side", depth_frame(25, "depthL25"), True),
        ("depth snapshot, 200 levels a side", depth_frame(200, "depth"), True),
        ("trade update, one trade", TRADE, False),
        ("order notice, OrderMatched", ORDER_MATCHED, False),
    ]
    print(f"Python {sys.version.split()[0]}, orjson {orjson.__version__}")
    print(f"{args.repeats} rounds of ~{args.round_seconds:g}s per contender, interleaved")
    started = time.perf_counter()
    groups = []
    for case, frame, is_depth in cases:
        samples = measure(frame, contenders(is_depth), args.repeats, args.round_seconds)
        report(case, frame, samples)
        rates = {name: [1 / v for v in values] for name, values in samples.items()}
        groups.append(group(case, "msg/s", rates, baseline="orjson.loads"))
        if args.profile:
            profile(frame, 20000)
    print(f"\ntotal {time.perf_counter() - started:.1f}s")
    dump(args.json, "bench_decode", "Frame decoding: typed messages vs plain JSON parsing", groups)


if __name__ == "__main__":
    main()
