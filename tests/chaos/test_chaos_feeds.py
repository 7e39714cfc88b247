"""Chaos on the market-data side: a seeded schedule of TCP faults between client and simulator.

One connection consumes depth (through a live order book too), trades (with REST backfill) and
the order channel through the chaos proxy while it resets, stalls, fragments, delays and refuses.
Afterwards the consumers' records are checked against the proxy's fault log and the simulator's
ground truth: every feed saw a continuity marker after every disruptive fault and fresh data
after every fault, no fragmented or delayed stretch broke a connection, no trade was lost or
delivered twice, and nothing (task, feed, memory channel) outlived the connection.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import attrs
import trio

from chaos.helpers import all_tasks, channel_ids, open_channels
from flexconn import channels
from flexconn.auth import Credentials
from flexconn.config import Heartbeat, ReconnectPolicy
from flexconn.connection import ConnectionState, open_connection
from flexconn.feeds import Feed, StreamRestarted
from flexconn.models.enums import DepthLevel
from flexconn.models.market import TradeUpdate
from flexconn.rest import RestClient
from flexconn.sim import serve
from flexconn.sim.chaos import AppliedFault, ChaosSchedule, FaultKind, open_chaos_proxy
from flexconn.transport import TransportFactory

MARKET = "BTC-USD-SWAP-LIN"
FAULTS = 24
INTERVAL = 1.0
#: Quick liveness detection, so that a stalled link is abandoned well within a stall.
HEARTBEAT = Heartbeat(interval=0.3, timeout=0.5)
#: connect_timeout bounds a handshake that trio-websocket never fails (see the report).
RETRY = ReconnectPolicy(initial_delay=0.05, max_delay=0.3, connect_timeout=1.5)


@attrs.define
class Record:
    """What one consumer received, stamped with trio time."""

    name: str
    items: list[tuple[float, Any]] = attrs.Factory(list)

    def markers(self) -> list[tuple[float, StreamRestarted]]:
        return [(t, i) for t, i in self.items if isinstance(i, StreamRestarted)]

    def data_after(self, moment: float) -> bool:
        return any(t > moment and not isinstance(i, StreamRestarted) for t, i in self.items)

    def marker_after(self, moment: float) -> bool:
        return any(t > moment for t, _ in self.markers())


async def consume(feed: Feed[Any], record: Record) -> None:
    async for item in feed:
        record.items.append((trio.current_time(), item))


def schedule_for(seed: int) -> ChaosSchedule:
    return ChaosSchedule.random(
        seed=seed, count=FAULTS, interval=INTERVAL, stall=2.0, refuse=0.8, window=1.0
    )


async def test_every_feed_resumes_with_a_marker_after_every_fault(
    transport: TransportFactory, chaos_seed: int
) -> None:
    tasks_before = all_tasks()
    channels_before = channel_ids()
    schedule = schedule_for(chaos_seed)
    assert all(schedule.counts()[kind] for kind in FaultKind)
    async with serve(participants_rate=200, seed=chaos_seed) as sim:
        assert sim.rest_url is not None
        target = urlsplit(sim.ws_url)
        assert target.hostname is not None and target.port is not None
        creds = Credentials(sim.demo_key.api_key, sim.demo_key.api_secret)
        records = {name: Record(name) for name in ("depth", "trade", "order")}
        async with (
            RestClient(sim.rest_url) as rest,
            open_chaos_proxy(
                target.hostname, target.port, schedule=schedule, seed=chaos_seed
            ) as proxy,
            open_connection(
                proxy.url(sim.ws_url),
                credentials=creds,
                heartbeat=HEARTBEAT,
                reconnect=RETRY,
                transport=transport,
                seed=chaos_seed,
            ) as conn,
            # the same depth variant as the live book's: they share one exchange subscription
            conn.subscribe(channels.depth(MARKET, DepthLevel.L25)) as depth,
            conn.subscribe(channels.trade(MARKET), backfill=rest) as trades,
            conn.subscribe(channels.order()) as orders,
            conn.order_book(MARKET, level=DepthLevel.L25) as live,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(consume, depth, records["depth"])
            nursery.start_soon(consume, trades, records["trade"])
            nursery.start_soon(consume, orders, records["order"])
            await proxy.wait_schedule_done()
            settled = trio.current_time()
            with trio.fail_after(15):
                await conn.wait_state(ConnectionState.CONNECTED)
                # the consumers' records have no event to wait on: poll them
                while not (  # noqa: ASYNC110
                    records["depth"].data_after(settled)
                    and records["trade"].data_after(settled)
                    and live.book.valid
                ):
                    await trio.sleep(0.05)
            stats = conn.stats()
            book_failures = live.book.checksum_failures
            nursery.cancel_scope.cancel()
        history = proxy.history
        truth = [t.trade_id for t in sim.exchange.engine.public_trades(MARKET)]
    assert conn.state is ConnectionState.CLOSED

    check_markers(records, history, stats.reconnects)
    check_trades(records["trade"], truth)
    assert book_failures == 0, "fragmented or delayed frames corrupted a depth snapshot"
    assert proxy.statistics().open_connections == 0
    assert all_tasks() == tasks_before
    assert open_channels(channels_before) == []


def check_markers(records: dict[str, Record], history: list[AppliedFault], reconnects: int) -> None:
    """Markers against the fault log: one per reconnect, one after every disruptive fault."""
    assert len(history) == FAULTS
    disruptive_hits = sum(
        1 for applied in history if applied.fault.kind.disruptive and applied.connections
    )
    # fragments and delays never break a connection: every reconnect has a disruptive cause
    assert 1 <= reconnects <= disruptive_hits
    for record in records.values():
        markers = record.markers()
        assert [m.reconnects for _, m in markers] == list(range(1, reconnects + 1)), record.name
        for applied in history:
            if applied.fault.kind.disruptive and applied.connections:
                assert record.marker_after(applied.at), (record.name, applied)
    for name in ("depth", "trade"):
        record = records[name]
        for applied in history:
            assert record.data_after(applied.at + applied.fault.duration), (name, applied)
        # each marker is followed by fresh data
        for moment, _ in record.markers():
            assert record.data_after(moment), (name, moment)


def check_trades(record: Record, truth: list[int]) -> None:
    """Live trades plus backfill: the engine's trades, in order, none lost or repeated."""
    updates = [item for _, item in record.items if isinstance(item, TradeUpdate)]
    ids = [trade.trade_id for update in updates for trade in update.data]
    assert ids, "no trade was delivered"
    assert len(ids) == len(set(ids)), "a trade was delivered twice"
    start = truth.index(ids[0])
    assert sorted(ids) == truth[start : start + len(ids)], "a trade is missing"
