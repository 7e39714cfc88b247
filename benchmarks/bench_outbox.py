"""Order outbox: sustained orders/s through flexconn's batching outbox, against a bare client.

The simulator runs in its own process (pinned to one CPU, as an exchange would be elsewhere) and
enforces the documented 50 commands/s per authenticated socket; every client runs in its own
process pinned to the other CPU. The baseline is a bare asyncio ``websockets`` + ``orjson``
client that does by hand what the outbox does: it sends prepared commands paced at 49 a second
(the outbox's 2% margin under the limit) from one task and counts the ``placeorder`` replies in
another. flexconn's side is 200 concurrent callers each running ``conn.place`` in a loop.

Cases (orders acknowledged per second over ``--window`` seconds after a warm-up that spends the
initial token burst; the simulator's book is cleared between measurements):

* **batched, order limit lifted** (``RateLimits(orders_per_account=None)`` in the simulator,
  ``OutboxConfig(orders_per_second=None)`` in flexconn): the outbox batches up to 20 orders per
  ``placeorders``; the bare client sends ``placeorders`` of 20. The ceiling is 20 x 49 = 980/s.
* **one order per command, order limit lifted**: ``max_batch_size=1`` against a bare client
  sending one ``placeorder`` per command: the unbatched ceiling of 49/s.
* **documented 50 orders/s**: simulator and flexconn defaults; the bare client sends one order
  per command at 49/s.

Rounds are interleaved (the order of contenders rotates); ratios are computed within each round
and shown as min / median / max. 20007 (rate limited) replies are counted for both.

Run: ``.venv/bin/python benchmarks/bench_outbox.py [--rounds 3] [--window 2.5] [--json PATH]``
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import statistics
import sys
import time
from multiprocessing.connection import Connection as Pipe
from typing import Any

import orjson
from bare import asyncio_sustained, login_command
from benchjson import add_json_option, dump, group
from harness import goal, pin, pinning_note, rotated, round_ratios, spread

MARKET = "BTC-USD-SWAP-LIN"
QUANTITY = "0.001"
CALLERS = 200
WARMUP = 1.5
PACE = 49.0  # commands (or orders) per second: the outbox's 2% margin under 50
BASELINE = "asyncio websockets + orjson (hand-batched)"
FLEX = "flexconn outbox"
CASES: dict[str, dict[str, Any]] = {
    "batched, order limit lifted": {"mode": "orders-lifted", "batch": 20},
    "one order per command, order limit lifted": {"mode": "orders-lifted", "batch": 1},
    "documented 50 orders/s": {"mode": "documented", "batch": 1},
}


# -- the simulator -------------------------------------------------------------------------------


def _simulator(pipe: Pipe, mode: str) -> None:
    """Child: a simulator with ``mode``'s limits; clears the book when asked."""
    pin("server")
    import trio

    from flexconn.sim import RateLimits, serve

    limits = RateLimits() if mode == "documented" else RateLimits(orders_per_account=None)

    async def run() -> None:
        async with serve(participants_rate=None, rate_limits=limits) as sim:
            key = sim.demo_key
            pipe.send(
                {
                    "url": sim.ws_url,
                    "api_key": key.api_key,
                    "api_secret": key.api_secret,
                    "account": key.account_id,
                }
            )
            while True:
                request = await trio.to_thread.run_sync(pipe.recv)
                if request != "clear":
                    return
                sim.exchange.engine.cancel_all(key.account_id)
                pipe.send("cleared")

    trio.run(run)


# -- contenders ----------------------------------------------------------------------------------


def _prices() -> itertools.cycle[str]:
    """Resting bid prices on the market's tick, never crossing."""
    return itertools.cycle(str(25000 + 0.5 * i) for i in range(9000))


def bare_commands(batch: int, count: int) -> list[str]:
    """Prepared ``placeorder`` (``batch`` 1) or ``placeorders`` commands, distinct orders."""
    price = _prices()
    cid = itertools.count(time.time_ns() // 1000)
    commands = []
    for tag in range(10, 10 + count):
        orders = [
            {
                "clientOrderId": next(cid),
                "marketCode": MARKET,
                "side": "BUY",
                "quantity": QUANTITY,
                "timeInForce": "GTC",
                "orderType": "LIMIT",
                "price": next(price),
            }
            for _ in range(batch)
        ]
        if batch == 1:
            command = {"op": "placeorder", "tag": tag, "data": orders[0]}
        else:
            command = {"op": "placeorders", "tag": tag, "dataArray": orders}
        commands.append(orjson.dumps(command).decode())
    return commands


def flexconn_sustained(setup: dict[str, str], case: str, window: float) -> dict[str, float]:
    """Orders acknowledged per second by 200 concurrent ``conn.place`` callers."""
    from decimal import Decimal

    import trio

    from flexconn.auth import Credentials
    from flexconn.connection import open_connection
    from flexconn.models.enums import Side
    from flexconn.models.orders import LimitOrder
    from flexconn.outbox import OutboxConfig

    spec = CASES[case]
    if spec["mode"] == "documented":
        config = OutboxConfig()
    elif spec["batch"] == 1:
        config = OutboxConfig(orders_per_second=None, max_batch_size=1)
    else:
        config = OutboxConfig(orders_per_second=None)
    prices = (Decimal(p) for p in _prices())
    quantity = Decimal(QUANTITY)

    async def run() -> dict[str, float]:
        credentials = Credentials(setup["api_key"], setup["api_secret"])
        done: list[float] = []
        async with open_connection(setup["url"], credentials=credentials, outbox=config) as conn:
            refused = conn.outbox_stats().rate_limited
            stop = time.perf_counter() + WARMUP + window

            async def caller() -> None:
                while time.perf_counter() < stop:
                    await conn.place(LimitOrder(MARKET, Side.BUY, quantity, next(prices)))
                    done.append(time.perf_counter())

            async with trio.open_nursery() as nursery:
                for _ in range(CALLERS):
                    nursery.start_soon(caller)
            begin = stop - window
            counted = sum(1 for t in done if begin <= t < stop)
            return {
                "rate": counted / window,
                "rate_limited": conn.outbox_stats().rate_limited - refused,
            }

    return trio.run(run)


def _worker(pipe: Pipe, contender: str) -> None:
    pin("client")
    while True:
        job = pipe.recv()
        if job is None:
            return
        setup, case, window = job
        try:
            if contender == FLEX:
                result = flexconn_sustained(setup, case, window)
            else:
                batch = CASES[case]["batch"]
                count = int(PACE * (WARMUP + window)) + 10
                result = asyncio_sustained(
                    setup["url"],
                    login_command(setup["api_key"], setup["api_secret"]),
                    bare_commands(batch, count),
                    batch,
                    PACE,
                    WARMUP,
                    window,
                )
            pipe.send(result)
        except Exception as exc:
            pipe.send({"error": repr(exc)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--window", type=float, default=2.5, help="seconds measured per run")
    add_json_option(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    sims: dict[str, tuple[Pipe, Any, dict[str, str]]] = {}
    for mode in sorted({spec["mode"] for spec in CASES.values()}):
        mine, theirs = context.Pipe()
        process = context.Process(target=_simulator, args=(theirs, mode), daemon=True)
        process.start()
        sims[mode] = (mine, process, mine.recv())
    contenders = [BASELINE, FLEX]
    workers: dict[str, tuple[Pipe, Any]] = {}
    for name in contenders:
        mine, theirs = context.Pipe()
        process = context.Process(target=_worker, args=(theirs, name), daemon=True)
        process.start()
        workers[name] = (mine, process)

    rates: dict[str, dict[str, list[float]]] = {c: {n: [] for n in contenders} for c in CASES}
    refusals: dict[str, dict[str, float]] = {c: dict.fromkeys(contenders, 0.0) for c in CASES}
    errors: list[str] = []
    try:
        for r in range(args.rounds):
            for case, spec in CASES.items():
                sim_pipe, _, setup = sims[spec["mode"]]
                for name in rotated(contenders, r):
                    pipe, _ = workers[name]
                    pipe.send((setup, case, args.window))
                    result = pipe.recv()
                    sim_pipe.send("clear")
                    sim_pipe.recv()
                    if "error" in result:
                        errors.append(f"{case} / {name} round {r + 1}: {result['error']}")
                        rates[case][name].append(0.0)
                    else:
                        rates[case][name].append(result["rate"])
                        refusals[case][name] += result["rate_limited"]
    finally:
        for pipe, process in workers.values():
            pipe.send(None)
            process.join(10)
        for sim_pipe, process, _ in sims.values():
            sim_pipe.send("stop")
            process.join(10)

    pinning = pinning_note()
    print(
        f"Python {sys.version.split()[0]}; {pinning['note']}; {args.rounds} interleaved rounds, "
        f"{args.window:g} s windows after {WARMUP:g} s"
    )
    for error in errors:
        print(f"  error: {error}")
    groups = []
    goals = []
    for case, series in rates.items():
        ratios = round_ratios(series, BASELINE) if all(all(v) for v in series.values()) else {}
        print(f"\n{case} (orders acknowledged/s; 20007 replies over all rounds)")
        for name, values in series.items():
            low, mid, high = spread(values)
            r_low, r_mid, r_high = spread(ratios.get(name) or [0.0])
            print(
                f"  {name:<44}{low:>8.1f}{mid:>8.1f}{high:>8.1f}  x{r_low:.3f}/x{r_mid:.3f}/"
                f"x{r_high:.3f}  20007: {refusals[case][name]:.0f}"
            )
        groups.append(group(case, "orders/s", series, baseline=BASELINE) | {"ratios": ratios})
        if ratios.get(FLEX):
            value = statistics.median(ratios[FLEX])
            ours, base = statistics.median(series[FLEX]), statistics.median(series[BASELINE])
            goals.append(
                goal(
                    f"harness check: outbox throughput, {case}, >= 0.95x the hand-batched "
                    "bare asyncio client",
                    value=round(value, 3),
                    target=0.95,
                    comparison=">=",
                    spread_of=ratios[FLEX],
                    reason=(
                        f"the outbox acknowledged {ours:.1f} orders/s against the bare client's "
                        f"{base:.1f} (20007 replies: {refusals[case][FLEX]:.0f} against "
                        f"{refusals[case][BASELINE]:.0f}); both pace at 49 commands/s, so the "
                        "gap is batches sent short of full or pacing slack"
                    ),
                    detail="not an issue goal: the outbox should reach the rate a hand-written "
                    "client reaches under the same limits",
                )
            )
    dump(
        args.json,
        "bench_outbox",
        "Order outbox: sustained orders/s under the exchange's limits, against a bare client",
        groups,
        goals=goals,
        notes=errors,
        meta={"pinning": pinning, "refusals": refusals},
    )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
