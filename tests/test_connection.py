"""The connection manager against the real simulator over loopback sockets.

Each test asserts what a consumer observes: typed messages, continuity markers after faults,
resubscribed feeds, the right exception, and no task left behind. Every test runs once per
WebSocket transport (the ``transport`` fixture of ``tests/conftest.py``), on trio's MockClock
(``autojump_clock``): the simulator's publishing cadence, heartbeats, back-offs and the tests'
own windows are mock time, so a loaded machine changes how long a test takes, never what it sees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
from helpers import FAST_RETRY, all_tasks, creds, wait_until

from flexconn import channels
from flexconn.config import Backpressure, Heartbeat
from flexconn.connection import ConnectionEvent, ConnectionState, open_connection
from flexconn.errors import AuthenticationError, FeedOverflow, SubscriptionError
from flexconn.feeds import Feed, StreamRestarted
from flexconn.models.enums import DepthLevel
from flexconn.models.market import DepthUpdate, TradeUpdate
from flexconn.models.replies import UnknownMessage
from flexconn.rest import RestClient
from flexconn.sim import Simulator, serve
from flexconn.transport import TransportFactory

MARKET = "BTC-USD-SWAP-LIN"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with serve(participants_rate=200, seed=3) as simulator:
        yield simulator


async def settle(sim: Simulator) -> None:
    """Wait for the simulator to notice closed sockets (its handler tasks are not ours)."""
    await wait_until(lambda: sim.faults.connection_count == 0)
    await trio.testing.wait_all_tasks_blocked()


async def next_data(feed: Feed[DepthUpdate]) -> DepthUpdate:
    while True:
        item = await feed.receive()
        if not isinstance(item, StreamRestarted):
            return item


async def test_depth_feed_yields_typed_snapshots_with_valid_checksums(
    sim: Simulator, autojump_clock: trio.testing.MockClock, transport: TransportFactory
) -> None:
    async with (
        open_connection(sim.ws_url, transport=transport) as conn,
        conn.subscribe(channels.depth(MARKET, level=DepthLevel.L25)) as books,
    ):
        first = await next_data(books)
        second = await next_data(books)
        snapshot = first.data[0]
        assert snapshot.market_code == MARKET
        assert snapshot.bids and snapshot.asks
        assert snapshot.best_bid is not None and snapshot.best_ask is not None
        assert snapshot.best_bid.price < snapshot.best_ask.price
        assert len(snapshot.bids) <= 25
        assert second.data[0].seq_num is not None and snapshot.seq_num is not None
        assert second.data[0].seq_num > snapshot.seq_num
        async with conn.order_book(MARKET) as live:
            while not live.book.valid:
                await live.wait_updated()
            assert live.book.checksum_failures == 0
            assert live.book.spread is not None and live.book.spread > 0


async def test_drop_delivers_marker_then_resubscribed_data_on_every_feed(
    sim: Simulator, autojump_clock: trio.testing.MockClock, transport: TransportFactory
) -> None:
    async with (
        open_connection(
            sim.ws_url, credentials=creds(sim), reconnect=FAST_RETRY, transport=transport
        ) as conn,
        conn.subscribe(channels.depth(MARKET)) as books,
        conn.subscribe(channels.ticker(MARKET)) as tickers,
        conn.subscribe(channels.balance()) as balances,
    ):
        for feed in (books, tickers, balances):
            assert not isinstance(await feed.receive(), StreamRestarted)
        assert sim.faults.drop_all() == 1
        for feed in (books, tickers, balances):
            marker = await feed.receive()
            while not isinstance(marker, StreamRestarted):
                marker = await feed.receive()
            assert marker.reconnects == 1
            assert marker.channel == feed.channel
            fresh = await feed.receive()
            assert not isinstance(fresh, StreamRestarted)
        # Fresh data may reach a consumer before the handshake task reports CONNECTED.
        with trio.fail_after(5):
            await conn.wait_state(ConnectionState.CONNECTED)
        assert conn.stats().reconnects == 1


async def test_half_open_socket_is_detected_by_heartbeat_and_replaced(
    quiet_sim: Simulator, autojump_clock: trio.testing.MockClock, transport: TransportFactory
) -> None:
    heartbeat = Heartbeat(interval=5, timeout=3)
    async with (
        open_connection(
            quiet_sim.ws_url, heartbeat=heartbeat, reconnect=FAST_RETRY, transport=transport
        ) as conn,
        conn.subscribe(channels.ticker(MARKET)) as tickers,
    ):
        assert not isinstance(await tickers.receive(), StreamRestarted)
        stalled_at = trio.current_time()
        assert quiet_sim.faults.stall() == 1
        marker = await tickers.receive()
        while not isinstance(marker, StreamRestarted):
            marker = await tickers.receive()
        elapsed = trio.current_time() - stalled_at
        # dead after at most one interval of silence plus the pong timeout (and one more interval
        # if the stall began just after a successful ping)
        assert 3 <= elapsed <= 2 * 5 + 3 + 1
        assert "presumed dead" in marker.reason
        assert not isinstance(await tickers.receive(), StreamRestarted)
        quiet_sim.faults.resume()


async def test_refused_connections_are_retried_until_the_server_accepts(
    quiet_sim: Simulator, autojump_clock: trio.testing.MockClock, transport: TransportFactory
) -> None:
    async with (
        open_connection(quiet_sim.ws_url, reconnect=FAST_RETRY, transport=transport) as conn,
        conn.subscribe(channels.ticker(MARKET)) as tickers,
        conn.events() as events,
    ):
        await tickers.receive()
        quiet_sim.faults.refuse_connections(30)
        quiet_sim.faults.drop_all()
        start = trio.current_time()
        marker = await tickers.receive()
        while not isinstance(marker, StreamRestarted):
            marker = await tickers.receive()
        assert trio.current_time() - start >= 30
        assert not isinstance(await tickers.receive(), StreamRestarted)
        states = []
        while True:
            try:
                event = events.receive_nowait()
            except trio.WouldBlock:
                break
            assert isinstance(event, ConnectionEvent)
            states.append(event.state)
        assert states.count(ConnectionState.RECONNECTING) >= 3  # several refused attempts
        with trio.fail_after(5):
            await conn.wait_state(ConnectionState.CONNECTED)


async def test_bad_signature_raises_authentication_error_not_a_group(
    quiet_sim: Simulator, autojump_clock: trio.testing.MockClock, transport: TransportFactory
) -> None:
    with pytest.raises(AuthenticationError) as info:
        async with open_connection(
            quiet_sim.ws_url, credentials=creds(quiet_sim, secret="nope"), transport=transport
        ):
            pytest.fail("must not connect")
    assert info.value.code == "20000"
    assert "nope" not in str(info.value)


async def test_garbage_and_unknown_frames_are_reported_and_nothing_breaks(
    sim: Simulator, autojump_clock: trio.testing.MockClock, transport: TransportFactory
) -> None:
    async with (
        open_connection(sim.ws_url, transport=transport) as conn,
        conn.events() as events,
        conn.subscribe(channels.depth(MARKET)) as books,
    ):
        await next_data(books)
        sim.faults.inject("{not json")
        sim.faults.inject('{"table": "brandNewChannel", "data": [{"x": 1}]}')
        seen: dict[str, ConnectionEvent] = {}
        while len(seen) < 2:
            event = await events.receive()
            assert not isinstance(event, StreamRestarted)
            if event.kind in ("malformed_frame", "unknown_message"):
                seen[event.kind] = event
        assert seen["malformed_frame"].payload == "{not json"
        unknown = seen["unknown_message"].payload
        assert isinstance(unknown, UnknownMessage)
        assert unknown.payload["table"] == "brandNewChannel"
        await next_data(books)  # the feed goes on
        stats = conn.stats()
        assert (stats.malformed_frames, stats.unknown_messages, stats.reconnects) == (1, 1, 0)


async def test_latest_policy_gives_a_slow_consumer_the_newest_book(
    sim: Simulator, autojump_clock: trio.testing.MockClock, transport: TransportFactory
) -> None:
    async with (
        open_connection(sim.ws_url, transport=transport) as conn,
        conn.subscribe(channels.depth(MARKET)) as books,
    ):
        first = await next_data(books)
        await trio.sleep(0.6)  # about 12 snapshots are published meanwhile
        newest = await next_data(books)
        assert newest.data[0].seq_num is not None and first.data[0].seq_num is not None
        assert newest.data[0].seq_num - first.data[0].seq_num >= 3
        assert books.statistics().conflated >= 2


async def test_error_policy_fails_the_feed_with_feed_overflow(
    sim: Simulator, autojump_clock: trio.testing.MockClock, transport: TransportFactory
) -> None:
    async with (
        open_connection(sim.ws_url, transport=transport) as conn,
        conn.subscribe(channels.depth(MARKET), policy=Backpressure.ERROR, capacity=2) as books,
    ):
        await trio.sleep(0.5)
        with pytest.raises(FeedOverflow, match=MARKET):
            for _ in range(10):
                await books.receive()


async def test_block_policy_loses_no_trade(
    sim: Simulator, autojump_clock: trio.testing.MockClock, transport: TransportFactory
) -> None:
    async with (
        open_connection(sim.ws_url, transport=transport) as conn,
        conn.subscribe(channels.trade(MARKET), capacity=2) as trades,
    ):
        ids: list[int] = []
        with trio.move_on_after(5):
            async for update in trades:
                assert isinstance(update, TradeUpdate)
                ids.extend(t.trade_id for t in update.data)
                await trio.sleep(1)  # slower than the trade rate: the socket waits for us
        assert len(ids) >= 3
        assert trades.statistics().buffered == 2  # the feed was full: backpressure held
    truth = [t.trade_id for t in sim.exchange.engine.public_trades(MARKET)]
    start = truth.index(ids[0])
    assert ids == truth[start : start + len(ids)]


async def test_consumers_share_one_subscription_and_the_last_one_unsubscribes(
    sim: Simulator,
    autojump_clock: trio.testing.MockClock,
    transport: TransportFactory,
) -> None:
    channel = channels.ticker(MARKET)
    async with open_connection(sim.ws_url, transport=transport) as conn:
        async with (
            conn.subscribe(channel, policy=Backpressure.BLOCK) as one,
            conn.subscribe(channel, policy=Backpressure.BLOCK) as two,
        ):
            # the late joiner starts from the newest state, then both see the same stream
            for _ in range(3):
                assert await one.receive() == await two.receive()
            assert conn.stats().frames_out == 1  # one subscribe command for both
        await wait_until(lambda: not sim.exchange.fanout.public("ticker").get(MARKET))
        assert conn.stats().frames_out == 2  # and one unsubscribe when the last one left


async def test_refused_subscription_raises_subscription_error(
    sim: Simulator, autojump_clock: trio.testing.MockClock, transport: TransportFactory
) -> None:
    async with open_connection(sim.ws_url, transport=transport) as conn:
        with pytest.raises(SubscriptionError) as info:
            async with conn.subscribe(channels.trade("NOPE-USD")):
                pytest.fail("must not subscribe")
        assert info.value.code is not None
        async with conn.subscribe(channels.ticker(MARKET)) as tickers:
            assert not isinstance(await tickers.receive(), StreamRestarted)


async def test_private_channel_needs_credentials(
    quiet_sim: Simulator, autojump_clock: trio.testing.MockClock, transport: TransportFactory
) -> None:
    async with open_connection(quiet_sim.ws_url, transport=transport) as conn:
        with pytest.raises(SubscriptionError, match="private"):
            async with conn.subscribe(channels.order()):
                pytest.fail("must not subscribe")


async def test_plain_ws_to_remote_host_is_refused(transport: TransportFactory) -> None:
    with pytest.raises(ValueError, match="allow_insecure"):
        async with open_connection("ws://203.0.113.9/v2/websocket", transport=transport):
            pytest.fail("must not connect")


async def test_leaving_or_cancelling_leaks_no_task(
    sim: Simulator, autojump_clock: trio.testing.MockClock, transport: TransportFactory
) -> None:
    before = all_tasks()
    async with (
        open_connection(sim.ws_url, credentials=creds(sim), transport=transport) as conn,
        conn.subscribe(channels.depth(MARKET)) as books,
    ):
        await books.receive()
    assert conn.state is ConnectionState.CLOSED
    await settle(sim)
    assert all_tasks() == before
    with trio.move_on_after(0.3):
        async with (
            open_connection(sim.ws_url, transport=transport) as conn2,
            conn2.order_book(MARKET) as live,
        ):
            while True:
                await live.wait_updated()
    await settle(sim)
    assert all_tasks() == before
    assert repr(conn).startswith("<Connection ws://127.0.0.1")
    assert sim.demo_key.api_secret not in repr(conn) + repr(conn.stats())


async def test_trade_backfill_recovers_trades_missed_during_a_drop(
    sim: Simulator, autojump_clock: trio.testing.MockClock, transport: TransportFactory
) -> None:
    assert sim.rest_url is not None
    async with (
        RestClient(sim.rest_url) as rest,
        open_connection(sim.ws_url, reconnect=FAST_RETRY, transport=transport) as conn,
        conn.subscribe(channels.trade(MARKET), backfill=rest) as trades,
    ):
        ids: list[int] = []
        while len(ids) < 2:
            update = await trades.receive()
            assert isinstance(update, TradeUpdate)
            ids.extend(t.trade_id for t in update.data)
        sim.faults.refuse_connections(1.0)
        sim.faults.drop_all()
        markers = 0
        with trio.move_on_after(2.5):
            async for update in trades:
                if isinstance(update, StreamRestarted):
                    markers += 1
                    continue
                ids.extend(t.trade_id for t in update.data)
        assert markers == 1
    truth = [t.trade_id for t in sim.exchange.engine.public_trades(MARKET)]
    start = truth.index(ids[0])
    assert len(ids) == len(set(ids)), "a trade was delivered twice"
    assert sorted(ids) == truth[start : start + len(ids)], "a trade is missing"


async def test_subscribing_during_a_reconnect_is_served_once_connected(
    sim: Simulator, autojump_clock: trio.testing.MockClock, transport: TransportFactory
) -> None:
    async with (
        open_connection(sim.ws_url, reconnect=FAST_RETRY, transport=transport) as conn,
        conn.subscribe(channels.ticker(MARKET)) as tickers,
    ):
        await tickers.receive()
        sim.faults.refuse_connections(0.3)
        sim.faults.drop_all()
        await conn.wait_state(ConnectionState.RECONNECTING)
        async with conn.subscribe(channels.trade(MARKET)) as trades:
            update = await trades.receive()
            assert isinstance(update, TradeUpdate)
            assert conn.state is ConnectionState.CONNECTED


async def test_a_subscribe_cut_off_by_a_drop_is_served_after_the_reconnect(
    sim: Simulator, autojump_clock: trio.testing.MockClock, transport: TransportFactory
) -> None:
    async with (
        open_connection(sim.ws_url, reconnect=FAST_RETRY, transport=transport) as conn,
        conn.subscribe(channels.ticker(MARKET)) as tickers,
    ):
        await tickers.receive()
        got: list[TradeUpdate] = []

        async def late_subscriber() -> None:
            # An unauthenticated socket may send one command a second: this one waits for its
            # token, and the socket drops meanwhile.
            async with conn.subscribe(channels.trade(MARKET)) as trades:
                update = await trades.receive()
                assert isinstance(update, TradeUpdate)
                got.append(update)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(late_subscriber)
            await trio.testing.wait_all_tasks_blocked()
            sim.faults.drop_all()
        assert len(got) == 1 and got[0].data[0].market_code == MARKET
        assert conn.stats().reconnects == 1
