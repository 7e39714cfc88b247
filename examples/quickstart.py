"""Embed flexconn in a trio application: watch a book, place an order, cancel it.

Run it as ``python examples/quickstart.py``: it starts the embedded simulator and trades on it
with the simulator's demo key. Against the exchange, call ``trade`` with its URLs and your key.
"""

from decimal import Decimal

import trio

from flexconn import Credentials, LimitOrder, RestClient, Side, open_connection
from flexconn.sim import serve

MARKET = "BTC-USD-SWAP-LIN"


async def trade(ws_url: str, rest_url: str, credentials: Credentials) -> None:
    async with (
        RestClient(rest_url, credentials) as rest,
        open_connection(ws_url, credentials=credentials, rest=rest) as conn,
        conn.order_book(MARKET) as live,
    ):
        while (bid := live.book.best_bid) is None:
            await live.wait_updated()
        print(f"{MARKET}: best bid {bid.price}, spread {live.book.spread}")

        order = LimitOrder(MARKET, Side.BUY, Decimal("0.01"), bid.price - 100)
        ack = await conn.place(order)
        print(f"placed order {ack.order_id} at {order.price}")

        await conn.cancel(MARKET, ack.order_id)  # returns once the order is closed
        print(f"cancelled order {ack.order_id}")


async def main() -> None:
    async with serve() as sim:
        key = sim.demo_key
        assert sim.rest_url is not None
        await trade(sim.ws_url, sim.rest_url, Credentials(key.api_key, key.api_secret))


if __name__ == "__main__":
    trio.run(main)
