"""Trade through the batched outbox: place, modify and cancel several orders at once.

Run it as ``python examples/batch_orders.py``: it starts the embedded simulator and trades on it
with the demo key.
"""

from decimal import Decimal

import trio

from flexconn import (
    CancelOrder,
    Credentials,
    FlexconnError,
    LimitOrder,
    ModifyOrder,
    OrderAlreadyClosed,
    PlaceAck,
    RestClient,
    Side,
    open_connection,
)
from flexconn.sim import serve

MARKET = "BTC-USD-SWAP-LIN"
SIZE = Decimal("0.01")


async def trade(ws_url: str, rest_url: str, credentials: Credentials) -> None:
    async with (
        RestClient(rest_url, credentials) as rest,
        open_connection(ws_url, credentials=credentials, rest=rest) as conn,
    ):
        # One call, one outcome per order: an acknowledgement or the error for that order.
        bids = [LimitOrder(MARKET, Side.BUY, SIZE, Decimal(49_000 - 100 * i)) for i in range(3)]
        too_high = LimitOrder(MARKET, Side.BUY, SIZE, Decimal(1_000_000))  # beyond the bound
        outcomes = await conn.place_many([*bids, too_high])
        for outcome in outcomes:
            if isinstance(outcome, FlexconnError):
                print(f"refused: {type(outcome).__name__}: {outcome}")
            else:
                print(f"placed {outcome.order_id} (client order id {outcome.client_order_id})")
        ids = [o.order_id for o in outcomes if isinstance(o, PlaceAck)]

        # A price change replaces an order (the ack names the new id); a smaller quantity keeps
        # it. Each ack returns once the order channel confirmed the change.
        changes = [
            ModifyOrder(MARKET, ids[0], price=Decimal(48_500)),
            ModifyOrder(MARKET, ids[1], quantity=SIZE / 2),
        ]
        for ack in await conn.modify_many(changes):
            if isinstance(ack, FlexconnError):
                print(f"modify refused: {type(ack).__name__}: {ack}")
            elif ack.replaced_by is not None:
                print(f"modified {ack.order_id}: replaced by {ack.replaced_by}")
            else:
                print(f"modified {ack.order_id} in place")

        # Concurrent single calls leave together in one command when they meet in the queue. A
        # cancel returns once the order is closed; an order that filled first raises.
        cancelled: list[int] = []

        async def cancel(order_id: int) -> None:
            try:
                cancelled.append((await conn.cancel(MARKET, order_id)).order_id)
            except OrderAlreadyClosed as exc:
                print(f"order {order_id} was already closed: {exc.close_reason}")

        async with trio.open_nursery() as nursery:
            for order_id in ids[1:]:  # these kept their ids
                nursery.start_soon(cancel, order_id)
        print(f"cancelled {len(cancelled)} orders")

        # The replacement of ids[0] (and anything else open in the market) goes over REST.
        await rest.cancel_all_orders(MARKET)

        # cancel_many takes CancelOrder requests; an unknown id is refused for itself alone.
        (refusal,) = await conn.cancel_many([CancelOrder(MARKET, 42)])
        print(f"cancel 42: {type(refusal).__name__}")


async def main() -> None:
    async with serve() as sim:
        assert sim.rest_url is not None
        key = sim.demo_key
        await trade(sim.ws_url, sim.rest_url, Credentials(key.api_key, key.api_secret))


if __name__ == "__main__":
    trio.run(main)
