"""REST client overhead: requests/s through :class:`RestClient` beside a bare httpx loop.

Both run in the same process against the same simulator REST server (rate limits off), one
request at a time over one keep-alive connection, alternating round by round so drift hits both
alike. The public case is ``GET /v2/ticker``; the private case ``GET /v2/balances``, which the
bare loop sends with headers signed once up front (the server does the same work; the client
signs, paces, decodes and maps errors on every call).

Run: ``.venv/bin/python benchmarks/bench_rest.py [--rounds 7] [--requests 400]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable
from functools import partial

import httpx
import trio
from benchjson import add_json_option, dump, group

from flexconn.auth import Credentials, RestSigner
from flexconn.rest import RestClient
from flexconn.restlimits import RestRateLimits
from flexconn.sim.exchange import SimExchange
from flexconn.sim.ratelimit import RestLimits
from flexconn.sim.rest import serve_rest


async def rate(requests: int, call: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for _ in range(requests):
        await call()
    return requests / (time.perf_counter() - start)


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<28} min {min(values):8.0f}  median {statistics.median(values):8.0f}  "
        f"max {max(values):8.0f} req/s"
    )


async def main(rounds: int, requests: int, json_path: str | None = None) -> None:
    exchange = SimExchange()
    groups: list[dict[str, object]] = []
    async with trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_rest, exchange, rate_limits=RestLimits.unlimited()))
        key = exchange.demo_key
        creds = Credentials(key.api_key, key.api_secret)
        host = url.removeprefix("http://")
        fixed = RestSigner(creds).headers("GET", host, "/v2/balances")
        async with (
            RestClient(url, creds, rate_limits=RestRateLimits.unlimited()) as client,
            httpx.AsyncClient(base_url=url) as bare,
        ):

            async def bare_ticker() -> None:
                (await bare.get("/v2/ticker")).raise_for_status()

            async def bare_balances() -> None:
                (await bare.get("/v2/balances", headers=fixed)).raise_for_status()

            cases: dict[str, tuple[Callable[[], Awaitable[object]], ...]] = {
                "public GET /v2/ticker": (client.ticker, bare_ticker),
                "private GET /v2/balances": (client.balances, bare_balances),
            }
            for name, (ours, baseline) in cases.items():
                await rate(50, ours)  # warm up connections and caches
                await rate(50, baseline)
                client_rates: list[float] = []
                bare_rates: list[float] = []
                for _ in range(rounds):
                    client_rates.append(await rate(requests, ours))
                    bare_rates.append(await rate(requests, baseline))
                ratio = statistics.median(client_rates) / statistics.median(bare_rates)
                print(name)
                print("  " + summary("RestClient", client_rates))
                print("  " + summary("bare httpx.AsyncClient", bare_rates))
                print(f"  ratio {ratio:.3f} (overhead {100 * (1 - ratio):.1f}%)")
                series = {"RestClient": client_rates, "bare httpx.AsyncClient": bare_rates}
                groups.append(group(name, "req/s", series, baseline="bare httpx.AsyncClient"))
        nursery.cancel_scope.cancel()
    dump(json_path, "bench_rest", "REST client overhead vs bare httpx", groups)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=400)
    add_json_option(parser)
    args = parser.parse_args()
    trio.run(main, args.rounds, args.requests, args.json)
