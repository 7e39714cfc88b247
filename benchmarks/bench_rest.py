"""REST client overhead: requests/s through :class:`RestClient` against a bare httpx loop.

The simulator's REST server (rate limits off) runs in its own process pinned to one CPU; the
clients run in another process pinned to the other CPU, one request at a time over one
keep-alive connection each, alternating round by round (the order rotates) so that drift hits
both alike. The bare loop is what a hand-written client does: ``httpx.AsyncClient.get``,
``raise_for_status`` and ``orjson.loads`` of the body; for the private case it also signs every
request itself (HMAC-SHA256 of the documented message, a fresh timestamp and nonce per request).
:class:`RestClient` signs, paces, decodes to typed replies and maps errors on every call.

Overhead = the extra time per request: baseline rate / RestClient rate - 1, per round; the goal
is under 10%, public and private.

Run: ``.venv/bin/python benchmarks/bench_rest.py [--rounds 7] [--requests 300] [--json PATH]``
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import multiprocessing
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection as Pipe
from typing import Any

import orjson
from benchjson import add_json_option, dump, group
from harness import goal, pin, pinning_note, rotated, round_ratios, spread

BASELINE = "bare httpx + orjson"
FLEX = "RestClient"


def _server(pipe: Pipe) -> None:
    pin("server")
    import trio

    from flexconn.sim.exchange import SimExchange
    from flexconn.sim.ratelimit import RestLimits
    from flexconn.sim.rest.server import serve_rest

    async def run() -> None:
        exchange = SimExchange()
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                lambda task_status: serve_rest(
                    exchange, rate_limits=RestLimits.unlimited(), task_status=task_status
                )
            )
            key = exchange.demo_key
            pipe.send({"url": url, "api_key": key.api_key, "api_secret": key.api_secret})
            await trio.to_thread.run_sync(pipe.recv)
            nursery.cancel_scope.cancel()

    trio.run(run)


class HandSigner:
    """The documented REST signature, written by hand: Timestamp, Nonce, Verb, Host, Path, Body."""

    def __init__(self, api_key: str, api_secret: str) -> None:
        self.api_key = api_key
        self.secret = api_secret.encode()
        self.nonce = 0

    def headers(self, host: str, path: str) -> dict[str, str]:
        timestamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        self.nonce = max(self.nonce + 1, time.time_ns() // 1_000_000)
        message = f"{timestamp}\n{self.nonce}\nGET\n{host}\n{path}\n"
        digest = hmac.new(self.secret, message.encode(), hashlib.sha256).digest()
        return {
            "Content-Type": "application/json",
            "AccessKey": self.api_key,
            "Timestamp": timestamp,
            "Signature": base64.b64encode(digest).decode(),
            "Nonce": str(self.nonce),
        }


def _clients(setup: dict[str, str], rounds: int, requests: int) -> dict[str, Any]:
    """Client process body: every round of both cases; rates per case and contender."""
    import httpx
    import trio

    from flexconn.auth import Credentials
    from flexconn.rest import RestClient
    from flexconn.restlimits import RestRateLimits

    async def rate(count: int, call: Callable[[], Awaitable[object]]) -> float:
        start = time.perf_counter()
        for _ in range(count):
            await call()
        return count / (time.perf_counter() - start)

    async def run() -> dict[str, Any]:
        url = setup["url"]
        host = url.removeprefix("http://")
        signer = HandSigner(setup["api_key"], setup["api_secret"])
        creds = Credentials(setup["api_key"], setup["api_secret"])
        results: dict[str, dict[str, list[float]]] = {}
        async with (
            RestClient(url, creds, rate_limits=RestRateLimits.unlimited()) as client,
            httpx.AsyncClient(base_url=url) as bare,
        ):

            async def bare_ticker() -> object:
                response = await bare.get("/v2/ticker")
                response.raise_for_status()
                return orjson.loads(response.content)

            async def bare_balances() -> object:
                response = await bare.get(
                    "/v2/balances", headers=signer.headers(host, "/v2/balances")
                )
                response.raise_for_status()
                return orjson.loads(response.content)

            cases: dict[str, dict[str, Callable[[], Awaitable[object]]]] = {
                "public GET /v2/ticker": {FLEX: client.ticker, BASELINE: bare_ticker},
                "private GET /v2/balances": {FLEX: client.balances, BASELINE: bare_balances},
            }
            for case, calls in cases.items():
                for call in calls.values():
                    await rate(50, call)  # warm up connections and caches
                results[case] = {name: [] for name in calls}
                for r in range(rounds):
                    for name in rotated(list(calls), r):
                        results[case][name].append(await rate(requests, calls[name]))
        return results

    return trio.run(run)


def _client_process(pipe: Pipe, setup: dict[str, str], rounds: int, requests: int) -> None:
    pin("client")
    try:
        pipe.send(_clients(setup, rounds, requests))
    except Exception as exc:
        pipe.send({"error": repr(exc)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=300)
    add_json_option(parser)
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")
    server_pipe, theirs = context.Pipe()
    server = context.Process(target=_server, args=(theirs,), daemon=True)
    server.start()
    setup = server_pipe.recv()
    mine, theirs = context.Pipe()
    clients = context.Process(
        target=_client_process, args=(theirs, setup, args.rounds, args.requests), daemon=True
    )
    clients.start()
    try:
        results = mine.recv()
    finally:
        clients.join(10)
        server_pipe.send("stop")
        server.join(10)
    if "error" in results:
        print(f"error: {results['error']}")
        return 1
    pinning = pinning_note()
    print(
        f"Python {sys.version.split()[0]}; {pinning['note']}; {args.rounds} rounds x "
        f"{args.requests} sequential requests"
    )
    groups = []
    goals = []
    for case, series in results.items():
        ratios = round_ratios(series, BASELINE)
        overheads = [1 / r - 1 for r in ratios[FLEX]]
        print(f"\n{case} (req/s)")
        for name, values in series.items():
            low, mid, high = spread(values)
            print(f"  {name:<24}{low:>9.0f}{mid:>9.0f}{high:>9.0f}")
        low, mid, high = spread(overheads)
        print(f"  overhead per request: {100 * low:+.1f}% / {100 * mid:+.1f}% / {100 * high:+.1f}%")
        groups.append(group(case, "req/s", series, baseline=BASELINE) | {"ratios": ratios})
        ours = 1e6 / statistics.median(series[FLEX])
        base = 1e6 / statistics.median(series[BASELINE])
        goals.append(
            goal(
                f"REST client overhead vs bare httpx, {case.split()[0]}",
                value=round(100 * mid, 1),
                target=10.0,
                comparison="<",
                unit="%",
                spread_of=[100 * o for o in overheads],
                reason=(
                    f"RestClient takes {ours:.0f} us per request against bare httpx's "
                    f"{base:.0f} us (+{ours - base:.0f} us: signing, pacing, typed decode, "
                    "error mapping)"
                ),
                detail=f"{case}: extra time per request, median of per-round figures",
            )
        )
    dump(
        args.json,
        "bench_rest",
        "REST client overhead against a bare httpx loop",
        groups,
        goals=goals,
        meta={"pinning": pinning},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
