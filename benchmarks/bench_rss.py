"""Resident memory of one connection with 20 feeds, against a bare asyncio client's.

Both clients run in fresh processes (one per measurement, so nothing one left behind counts for
the other), pinned to the client CPU, against one simulator (its participants trading, pinned to
the server CPU). Each logs in, subscribes to the soak's 20 channels (depth, trades and ticker of
five markets, candles, ``market:all``, ``order:all``, ``balance:all``, ``position:all``), reads
everything for ``--seconds``, then reports its RSS (``VmRSS``) and peak (``VmHWM``):

* **asyncio websockets + orjson** (the baseline): websockets' asyncio client parsing every
  message with ``orjson.loads``;
* **flexconn**: ``open_connection`` with credentials, ``conn.subscribe`` per channel (default
  policies), one consumer task per feed reading typed messages.

It also records the RSS right after the imports, and which heavy modules ``import flexconn``
brought in. Rounds alternate the two (order rotated); the ratio is computed per round.

Run: ``.venv/bin/python benchmarks/bench_rss.py [--rounds 3] [--seconds 4] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import time
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

BASELINE = "asyncio websockets + orjson"
FLEX = "flexconn, 20 feeds"
HEAVY = ("httpx", "rich", "pygments", "click", "hypercorn", "flexconn.sim", "flexconn.cli")


def _status() -> dict[str, float]:
    """VmRSS and VmHWM of this process, in MiB."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


# -- the clients (fresh processes: ``bench_rss.py --client NAME``) -------------------------------


def bare_client(setup: dict[str, Any], seconds: float) -> dict[str, Any]:
    import asyncio

    import orjson
    from bare import login_command
    from websockets.asyncio.client import connect

    after_import = _status()["VmRSS"]

    async def run() -> int:
        count = 0
        async with connect(setup["url"]) as ws:
            await ws.send(login_command(setup["api_key"], setup["api_secret"]))
            await ws.send(
                orjson.dumps({"op": "subscribe", "tag": 2, "args": setup["channels"]}).decode()
            )
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                try:
                    raw = await asyncio.wait_for(ws.recv(), deadline - time.perf_counter())
                except TimeoutError:
                    break
                orjson.loads(raw)
                count += 1
        return count

    messages = asyncio.run(run())
    return {"after_import": after_import, "messages": messages, **_status()}


def flexconn_client(setup: dict[str, Any], seconds: float) -> dict[str, Any]:
    import flexconn  # noqa: F401 - what the import alone costs

    after_import = _status()["VmRSS"]
    heavy = sorted(m for m in HEAVY if m in sys.modules)
    import trio

    from flexconn import channels
    from flexconn.auth import Credentials
    from flexconn.connection import open_connection

    count = [0]

    async def consume(feed: Any) -> None:
        async for _message in feed:
            count[0] += 1

    async def run() -> None:
        credentials = Credentials(setup["api_key"], setup["api_secret"])
        async with (
            open_connection(setup["url"], credentials=credentials) as conn,
            trio.open_nursery() as nursery,
        ):
            feeds = []
            for wire in setup["channels"]:
                manager = conn.subscribe(channels.Channel.parse(wire))
                feeds.append(manager)
                nursery.start_soon(_hold, manager)
            await trio.sleep(seconds)
            nursery.cancel_scope.cancel()

    async def _hold(manager: Any) -> None:
        async with manager as feed:
            await consume(feed)

    trio.run(run)
    return {"after_import": after_import, "messages": count[0], "heavy": heavy, **_status()}


# -- the coordinator -----------------------------------------------------------------------------


def _simulator(pipe: Pipe) -> None:
    from harness import pin

    pin("server")
    import trio

    from flexconn.sim import serve

    async def run() -> None:
        async with serve(participants_rate=50) as sim:
            key = sim.demo_key
            pipe.send({"url": sim.ws_url, "api_key": key.api_key, "api_secret": key.api_secret})
            await trio.to_thread.run_sync(pipe.recv)

    trio.run(run)


def _channels() -> list[str]:
    from soak import feed_channels

    return [channel.wire for channel in feed_channels()]


def measure(name: str, setup: dict[str, Any], seconds: float) -> dict[str, Any]:
    """One fresh client process; its JSON report."""
    kind = "bare" if name == BASELINE else "flexconn"
    done = subprocess.run(
        [sys.executable, __file__, "--client", kind, "--seconds", str(seconds)],
        input=json.dumps(setup),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if done.returncode != 0:
        return {"error": (done.stdout + done.stderr)[-800:]}
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="reading time per client")
    parser.add_argument("--client", choices=("bare", "flexconn"), help=argparse.SUPPRESS)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    from harness import goal, pin, pinning_note, rotated, round_ratios, spread

    if args.client:
        pin("client")
        setup = json.loads(sys.stdin.read())
        run = bare_client if args.client == "bare" else flexconn_client
        print(json.dumps(run(setup, args.seconds)))
        return 0

    from benchjson import dump, group

    context = multiprocessing.get_context("spawn")
    sim_pipe, theirs = context.Pipe()
    simulator = context.Process(target=_simulator, args=(theirs,), daemon=True)
    simulator.start()
    setup = sim_pipe.recv() | {"channels": _channels()}
    names = [BASELINE, FLEX]
    reports: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    errors = []
    try:
        for r in range(args.rounds):
            for name in rotated(names, r):
                report = measure(name, setup, args.seconds)
                if "error" in report:
                    errors.append(f"{name} round {r + 1}: {report['error']}")
                else:
                    reports[name].append(report)
    finally:
        sim_pipe.send("stop")
        simulator.join(10)

    pinning = pinning_note()
    print(
        f"Python {sys.version.split()[0]}; {pinning['note']}; {args.rounds} rounds, fresh "
        f"processes, {len(setup['channels'])} channels read for {args.seconds:g} s"
    )
    for error in errors:
        print(f"  error: {error}")
    rss = {name: [rep["VmRSS"] for rep in found] for name, found in reports.items()}
    groups = []
    goals = []
    if all(len(v) == args.rounds for v in rss.values()):
        ratios = round_ratios(rss, BASELINE)
        for key, label in (
            ("VmRSS", "RSS"),
            ("VmHWM", "peak RSS"),
            ("after_import", "after imports"),
        ):
            series = {name: [rep[key] for rep in reports[name]] for name in names}
            print(f"\n{label} (MiB)")
            for name, values in series.items():
                low, mid, high = spread(values)
                print(f"  {name:<32}{low:>8.1f}{mid:>8.1f}{high:>8.1f}")
            extra = {"ratios": ratios} if key == "VmRSS" else {}
            groups.append(
                group(f"{label} (MiB)", "MiB", series, baseline=BASELINE, higher_is_better=False)
                | extra
            )
        value = statistics.median(ratios[FLEX])
        ours, base = statistics.median(rss[FLEX]), statistics.median(rss[BASELINE])
        import_ours = statistics.median(r["after_import"] for r in reports[FLEX])
        import_base = statistics.median(r["after_import"] for r in reports[BASELINE])
        heavy = reports[FLEX][0].get("heavy", [])
        messages = {n: statistics.median(r["messages"] for r in reports[n]) for n in names}
        print(f"\n  messages read: {messages}; heavy modules after `import flexconn`: {heavy}")
        goals.append(
            goal(
                "RSS of one connection with 20 feeds vs the bare asyncio client",
                value=round(value, 3),
                target=1.3,
                comparison="<=",
                spread_of=ratios[FLEX],
                reason=(
                    f"flexconn's process holds {ours:.1f} MiB against {base:.1f}; "
                    f"{import_ours:.1f} MiB of it right after `import flexconn` (the bare client: "
                    f"{import_base:.1f} MiB after its imports); heavy modules imported: "
                    f"{', '.join(heavy) or 'none'}"
                ),
                detail=f"VmRSS after {args.seconds:g} s of reading, fresh processes",
            )
        )
    dump(
        args.json,
        "bench_rss",
        "Resident memory: one connection with 20 feeds against a bare asyncio client",
        groups,
        goals=goals,
        notes=errors,
        meta={"pinning": pinning, "channels": setup["channels"]},
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
