"""The REST client: public market data, the account, and paging through a time range.

Run it as ``python examples/rest_client.py``: it starts the embedded simulator and reads from it
with the demo key.
"""

import time

import trio

from flexconn import Credentials, PermissionDenied, RestClient
from flexconn.sim import serve

MARKET = "BTC-USD-SWAP-LIN"


async def tour(rest_url: str, credentials: Credentials, read_only: Credentials) -> None:
    async with RestClient(rest_url, credentials) as rest:
        markets = await rest.markets()
        print(f"{len(markets.data)} markets: {', '.join(m.market_code for m in markets.data)}")

        (book,) = (await rest.depth(MARKET, level=3)).data
        print(f"{MARKET} top of book: bid {book.bids[0][0]}, ask {book.asks[0][0]}")

        balances = await rest.balances()
        print("balances: " + ", ".join(f"{b.instrument_id} {b.available}" for b in balances.data))

        # Every public trade of the last minute, across as many pages as it takes.
        now = int(time.time() * 1000)
        trades = [
            t async for t in rest.iter_public_trades(MARKET, start_time=now - 60_000, end_time=now)
        ]
        print(f"{len(trades)} public trades in the last minute")

    async with RestClient(rest_url, read_only) as rest:
        try:
            await rest.cancel_all_orders()
        except PermissionDenied as exc:  # the exchange's error, as a typed exception
            print(f"read-only key: {type(exc).__name__} [{exc.code}]")


async def main() -> None:
    async with serve(participants_rate=100) as sim:
        assert sim.rest_url is not None
        await trio.sleep(1)  # let the synthetic participants trade for a moment
        key, viewer = sim.demo_key, sim.read_only_key
        await tour(
            sim.rest_url,
            Credentials(key.api_key, key.api_secret),
            Credentials(viewer.api_key, viewer.api_secret),
        )


if __name__ == "__main__":
    trio.run(main)
