"""How long does a lone order take from the call to its acknowledgement, against a bare client?

One LIMIT order at a time (resting far from the market, so it neither matches nor moves the
book), a 25 ms pause after each so that it is alone on the socket and every pacing bucket is full:
the latency is protocol work and two trips over loopback, not queueing. All contenders talk to
the same simulator (its rate limits off), in its own process pinned to one CPU; every client runs
in its own process pinned to the other CPU:

* **asyncio websockets + orjson** (the baseline): logged in and subscribed to ``order:all`` as
  flexconn's connection is (so the simulator does the same work for both), it sends each
  ``placeorder`` as prepared JSON and reads until the ``placeorder`` reply;
* **trio + websockets sans-IO + orjson**: the same loop on trio and websockets' sans-IO core;
* **flexconn conn.place**: ``conn.place(LimitOrder(...))`` with the default settings: validation,
  encoding, the outbox's pacing and correlation, the reply decoded and matched, and the
  ``order:all`` notices of the same order read beside it (``conn.orders``).

Rounds are interleaved (each contender places a block of ``--orders`` on a fresh connection per
round, after a few untimed ones; the order of contenders rotates). Reported: p50 and p99 per
round (min / median / max over rounds, ratio to the baseline within each round), and p50 / p99
over every sample, whose ratios are the goals.

Run: ``.venv/bin/python benchmarks/bench_roundtrip.py [--rounds 5] [--orders 150] [--json PATH]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from multiprocessing.connection import Connection as Pipe
from typing import Any

import orjson
from bare import asyncio_roundtrip, login_command, trio_sansio_roundtrip
from benchjson import add_json_option, dump, group
from harness import goal, percentile, pin, pinning_note, rotated, round_ratios, spread

MARKET = "BTC-USD-SWAP-LIN"
PAUSE = 0.025
WARM = 5
BASELINE = "asyncio websockets + orjson"
TRIO = "trio + websockets sans-IO + orjson"
FLEX = "flexconn conn.place"


def _simulator(pipe: Pipe) -> None:
    pin("server")
    from decimal import Decimal

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
                {
                    "url": sim.ws_url,
                    "api_key": key.api_key,
                    "api_secret": key.api_secret,
                    "price": str(price),
                    "quantity": str(spec.qty_increment),
                }
            )
            await trio.to_thread.run_sync(pipe.recv)  # "stop"

    trio.run(run)


def order_text(setup: dict[str, str], client_order_id: int) -> str:
    data = {
        "clientOrderId": client_order_id,
        "marketCode": MARKET,
        "side": "BUY",
        "quantity": setup["quantity"],
        "timeInForce": "GTC",
        "orderType": "LIMIT",
        "price": setup["price"],
    }
    return orjson.dumps({"op": "placeorder", "tag": client_order_id, "data": data}).decode()


def flexconn_place(setup: dict[str, str], client_ids: list[int], pause: float) -> list[float]:
    import trio

    from flexconn.auth import Credentials
    from flexconn.connection import open_connection
    from flexconn.models.enums import Side
    from flexconn.models.orders import LimitOrder

    async def run() -> list[float]:
        from decimal import Decimal

        credentials = Credentials(setup["api_key"], setup["api_secret"])
        price, quantity = Decimal(setup["price"]), Decimal(setup["quantity"])
        latencies = []
        async with open_connection(setup["url"], credentials=credentials) as conn:
            for client_order_id in client_ids:
                order = LimitOrder(
                    MARKET, Side.BUY, quantity, price, client_order_id=client_order_id
                )
                start = time.perf_counter()
                await conn.place(order)
                latencies.append(time.perf_counter() - start)
                await trio.sleep(pause)
        return latencies

    return trio.run(run)


def _worker(pipe: Pipe, contender: str, setup: dict[str, str]) -> None:
    pin("client")
    while True:
        job = pipe.recv()
        if job is None:
            return
        client_ids: list[int] = job
        try:
            if contender == FLEX:
                latencies = flexconn_place(setup, client_ids, PAUSE)
            else:
                login = login_command(setup["api_key"], setup["api_secret"])
                orders = [order_text(setup, cid) for cid in client_ids]
                run = asyncio_roundtrip if contender == BASELINE else trio_sansio_roundtrip
                latencies = run(setup["url"], login, orders, PAUSE)
            pipe.send(latencies[WARM:])
        except Exception as exc:
            pipe.send({"error": repr(exc)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--orders", type=int, default=150, help="timed orders per block")
    add_json_option(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    context = multiprocessing.get_context("spawn")
    sim_pipe, theirs = context.Pipe()
    simulator = context.Process(target=_simulator, args=(theirs,), daemon=True)
    simulator.start()
    setup: dict[str, str] = sim_pipe.recv()
    contenders = [BASELINE, TRIO, FLEX]
    workers: dict[str, tuple[Pipe, Any]] = {}
    for name in contenders:
        mine, theirs = context.Pipe()
        process = context.Process(target=_worker, args=(theirs, name, setup), daemon=True)
        process.start()
        workers[name] = (mine, process)

    samples: dict[str, list[list[float]]] = {name: [] for name in contenders}
    errors: list[str] = []
    next_id = 1
    try:
        for r in range(args.rounds):
            for name in rotated(contenders, r):
                block = list(range(next_id, next_id + WARM + args.orders))
                next_id += len(block)
                pipe, _ = workers[name]
                pipe.send(block)
                result = pipe.recv()
                if isinstance(result, dict):
                    errors.append(f"{name} round {r + 1}: {result['error']}")
                else:
                    samples[name].append(result)
    finally:
        for pipe, process in workers.values():
            pipe.send(None)
            process.join(10)
        sim_pipe.send("stop")
        simulator.join(10)

    pooled = {name: [v for block in blocks for v in block] for name, blocks in samples.items()}
    p50 = {name: [percentile(b, 0.5) for b in blocks] for name, blocks in samples.items()}
    p99 = {name: [percentile(b, 0.99) for b in blocks] for name, blocks in samples.items()}
    complete = all(len(b) == args.rounds for b in samples.values())
    p50_ratios = round_ratios(p50, BASELINE) if complete else {}
    p99_ratios = round_ratios(p99, BASELINE) if complete else {}

    pinning = pinning_note()
    print(
        f"Python {sys.version.split()[0]}; {pinning['note']}; {args.rounds} rounds x "
        f"{args.orders} lone LIMIT orders per contender, {PAUSE * 1e3:g} ms apart"
    )
    for error in errors:
        print(f"  error: {error}")
    print(f"\n  {'contender':<36}{'p50 (min/med/max over rounds)':>34}{'p99 (same)':>28}  us")
    for name in contenders:
        if not samples[name]:
            continue
        a, b, c = (1e6 * v for v in spread(p50[name]))
        d, e, f = (1e6 * v for v in spread(p99[name]))
        print(f"  {name:<36}{a:>10.0f}{b:>10.0f}{c:>10.0f}   {d:>9.0f}{e:>9.0f}{f:>9.0f}")
    goals = []
    if pooled[BASELINE] and pooled[FLEX]:
        base50, ours50 = percentile(pooled[BASELINE], 0.5), percentile(pooled[FLEX], 0.5)
        base99, ours99 = percentile(pooled[BASELINE], 0.99), percentile(pooled[FLEX], 0.99)
        for label, ours, base, target, ratios in (
            ("p50", ours50, base50, 1.05, p50_ratios),
            ("p99", ours99, base99, 1.1, p99_ratios),
        ):
            q = 0.5 if label == "p50" else 0.99
            floor = (
                f"; the bare trio + sans-IO client's {label} is "
                f"{percentile(pooled[TRIO], q) * 1e6:.0f} us"
                if pooled[TRIO]
                else ""
            )
            ratio = ours / base
            print(
                f"  pooled {label}: flexconn {ours * 1e6:.0f} us, baseline {base * 1e6:.0f} us,"
                f" ratio {ratio:.3f} (goal <= {target})"
            )
            goals.append(
                goal(
                    f"order round trip {label} vs the bare asyncio client (same simulator)",
                    value=round(ratio, 3),
                    target=target,
                    comparison="<=",
                    spread_of=ratios.get(FLEX),
                    reason=(
                        f"flexconn's {label} is {ours * 1e6:.0f} us against the bare asyncio "
                        f"client's {base * 1e6:.0f} us (+{(ours - base) * 1e6:.0f} us per order "
                        f"of client-side work: validation, encoding, outbox, reply "
                        f"correlation, order bookkeeping){floor}"
                    ),
                    detail=(
                        f"{label} over all {len(pooled[FLEX])} samples per contender; spread: "
                        f"per-round {label} ratios"
                    ),
                )
            )
    groups = [
        group(
            "placeorder to acknowledgement, every sample",
            "s",
            {n: v for n, v in pooled.items() if v},
            baseline=BASELINE,
            kind="latency",
            higher_is_better=False,
        ),
        group(
            "p50 per round", "s", p50, baseline=BASELINE, kind="per-round", higher_is_better=False
        )
        | {"ratios": p50_ratios},
        group(
            "p99 per round", "s", p99, baseline=BASELINE, kind="per-round", higher_is_better=False
        )
        | {"ratios": p99_ratios},
    ]
    dump(
        args.json,
        "bench_roundtrip",
        "Order round trip: a lone order's acknowledgement latency on one simulator",
        groups,
        goals=goals,
        notes=errors,
        meta={"pinning": pinning, "pause_s": PAUSE},
    )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
