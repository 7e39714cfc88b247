"""Consume feeds across a dropped connection: continuity markers, state events, a live book.

Run it as ``python examples/watch_feeds.py``: it starts the embedded simulator, follows the trade
feed, the connection's events and a live order book, drops the connection on purpose and shows
what a consumer sees.
"""

import trio

from flexconn import ConnectionEvent, Feed, StreamRestarted, channels, open_connection
from flexconn.models.market import TradeUpdate
from flexconn.sim import Simulator, serve

MARKET = "BTC-USD-SWAP-LIN"


async def print_trades(feed: Feed[TradeUpdate]) -> None:
    async for update in feed:
        if isinstance(update, StreamRestarted):
            # Trades may be missing before this point (subscribe with backfill=RestClient(...)
            # to have them fetched and delivered here).
            print(f"{update.channel}: restarted after reconnect #{update.reconnects}")
            continue
        for trade in update.data:
            print(f"trade {trade.side.value} {trade.quantity} @ {trade.price}")


async def print_states(events: Feed[ConnectionEvent]) -> None:
    async for event in events:
        if isinstance(event, ConnectionEvent) and event.kind == "state":
            print(f"connection {event.state}: {event.detail}")


async def run(sim: Simulator) -> None:
    async with (
        open_connection(sim.ws_url) as conn,
        conn.events() as events,
        conn.subscribe(channels.trade(MARKET)) as trades,
        conn.order_book(MARKET) as live,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(print_trades, trades)
        nursery.start_soon(print_states, events)
        await trio.sleep(1)
        sim.faults.drop_all()  # as a network failure would
        await live.wait_updated()
        print(f"book valid right after the drop: {live.book.valid}")
        while not live.book.valid:
            await live.wait_updated()
        print(f"book valid again at seq {live.book.seq_num}")
        await trio.sleep(1)
        nursery.cancel_scope.cancel()


async def main() -> None:
    async with serve(participants_rate=100) as sim:
        await run(sim)


if __name__ == "__main__":
    trio.run(main)
