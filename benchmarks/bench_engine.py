"""Matching-engine throughput: orders/s through ``Engine.place`` and ``cancel``.

Three workloads, each repeated on a fresh engine and reported as min/median/max:

* ``resting``: limit orders that never cross (the baseline: validation, reservation, queueing
  and event building, no matching);
* ``mixed``: a server-like mix around a drifting mid: 55% resting limits, 30% crossing limits
  (GTC, IOC, FOK), 5% MARKET orders and 10% cancels, across four accounts on a perpetual;
* ``participants``: the synthetic participants in firehose mode (steps/s, all markets).

Events are drained every 100 commands, as a server would after each call. Orders are generated
up front from a seeded RNG, so the timed loop is engine work only.

Run: ``.venv/bin/python benchmarks/bench_engine.py [--rounds 7] [--orders 20000]``
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import time
from decimal import Decimal
from typing import Any

from benchjson import add_json_option, dump, group

from flexconn.models.enums import OrderType, Side, TimeInForce
from flexconn.sim.engine import Engine, EngineReject, PublicTrade
from flexconn.sim.participants import Participants

MARKET = "BTC-USD-SWAP-LIN"
TICK = Decimal("0.5")
LOT = Decimal("0.001")
ACCOUNTS = ("a", "b", "c", "d")
CANCEL = "cancel"


def fresh_engine() -> Engine:
    clock = [1_700_000_000_000]

    def tick() -> int:
        clock[0] += 1
        return clock[0]

    engine = Engine(clock=tick)
    for name in ACCOUNTS:
        engine.open_account(name, {"USD": Decimal(10) ** 12})
    return engine


def generate(orders: int, *, crossing: bool, seed: int) -> list[tuple[Any, ...]]:
    """Commands as tuples: ``(account, side, type, tif, ticks, lots)`` or ``(CANCEL, k)``."""
    rng = random.Random(seed)
    mid = 100_000  # 50000.0 in ticks
    commands: list[tuple[Any, ...]] = []
    for _ in range(orders):
        if crossing:
            mid += rng.choice((-1, 0, 1))
        account = rng.choice(ACCOUNTS)
        side = rng.choice((Side.BUY, Side.SELL))
        sign = 1 if side is Side.BUY else -1
        lots = rng.randint(1, 50)
        roll = rng.random() if crossing else 0.0
        if roll < 0.55:
            ticks = mid - sign * rng.randint(1, 60)
            commands.append((account, side, OrderType.LIMIT, TimeInForce.GTC, ticks, lots))
        elif roll < 0.85:
            ticks = mid + sign * rng.randint(0, 30)
            tif = rng.choice((TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK))
            commands.append((account, side, OrderType.LIMIT, tif, ticks, lots))
        elif roll < 0.90:
            commands.append((account, side, OrderType.MARKET, TimeInForce.IOC, 0, lots))
        else:
            commands.append((CANCEL, rng.randint(1, 40)))
    return commands


def run_orders(commands: list[tuple[Any, ...]]) -> tuple[float, int]:
    engine = fresh_engine()
    place = engine.place
    recent: list[tuple[str, int]] = []
    trades = 0
    start = time.perf_counter()
    for i, command in enumerate(commands):
        if command[0] == CANCEL:
            if len(recent) >= command[1]:
                account, order_id = recent[-command[1]]
                with contextlib.suppress(EngineReject):  # it may have filled meanwhile
                    engine.cancel(account, MARKET, order_id)
        else:
            account, side, kind, tif, ticks, lots = command
            order = place(
                account,
                market_code=MARKET,
                side=side,
                order_type=kind,
                quantity=lots * LOT,
                price=ticks * TICK if kind is OrderType.LIMIT else None,
                time_in_force=tif,
            )
            if order.is_open:
                recent.append((account, order.order_id))
        if i % 100 == 99:
            trades += sum(isinstance(e, PublicTrade) for e in engine.drain_events())
    elapsed = time.perf_counter() - start
    trades += sum(isinstance(e, PublicTrade) for e in engine.drain_events())
    return len(commands) / elapsed, trades


def run_participants(steps: int, seed: int) -> float:
    clock = [1_700_000_000_000]

    def tick() -> int:
        clock[0] += 1
        return clock[0]

    engine = Engine(clock=tick)
    participants = Participants(engine, seed=seed, rate_per_s=float("inf"))
    engine.drain_events()
    start = time.perf_counter()
    done = 0
    while done < steps:
        burst = participants.steps_due(0.0)
        participants.step(burst)
        engine.drain_events()
        done += burst
    return done / (time.perf_counter() - start)


def summary(name: str, values: list[float], unit: str) -> str:
    return (
        f"{name:<14} min {min(values):9.0f}  median {statistics.median(values):9.0f}  "
        f"max {max(values):9.0f} {unit}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--orders", type=int, default=20_000)
    add_json_option(parser)
    args = parser.parse_args()
    resting = generate(args.orders, crossing=False, seed=1)
    mixed = generate(args.orders, crossing=True, seed=2)
    rates: dict[str, list[float]] = {"resting": [], "mixed": [], "participants": []}
    trades = 0
    for round_no in range(args.rounds):
        rates["resting"].append(run_orders(resting)[0])
        rate, trades = run_orders(mixed)
        rates["mixed"].append(rate)
        rates["participants"].append(run_participants(args.orders, seed=round_no))
    print(f"{args.rounds} rounds of {args.orders} commands; mixed round matched {trades} trades")
    print(summary("resting", rates["resting"], "orders/s"))
    print(summary("mixed", rates["mixed"], "commands/s"))
    print(summary("participants", rates["participants"], "steps/s"))
    labels = {
        "resting": "resting limits (baseline)",
        "mixed": "mixed commands",
        "participants": "participant steps",
    }
    series = {labels[name]: values for name, values in rates.items()}
    groups = [group("engine commands", "ops/s", series, baseline=labels["resting"])]
    dump(args.json, "bench_engine", "Matching engine throughput", groups)


if __name__ == "__main__":
    main()
