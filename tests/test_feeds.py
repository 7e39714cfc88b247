"""Feed backpressure policies and continuity markers, driven directly."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from flexconn.config import Backpressure
from flexconn.errors import FeedOverflow
from flexconn.feeds import Feed, StreamRestarted


def marker(n: int = 1) -> StreamRestarted:
    return StreamRestarted(channel="depth:X", reconnects=n, reason="test")


async def test_latest_keeps_only_newest_and_counts_conflation() -> None:
    feed: Feed[int] = Feed("depth:X", policy=Backpressure.LATEST, capacity=1)
    for i in range(5):
        feed.put_nowait(i)
    assert await feed.receive() == 4
    stats = feed.statistics()
    assert (stats.conflated, stats.delivered, stats.buffered) == (4, 1, 0)


async def test_latest_never_conflates_the_continuity_marker() -> None:
    feed: Feed[int] = Feed("depth:X", policy=Backpressure.LATEST, capacity=2)
    feed.put_nowait(1)
    feed.put_nowait(marker())
    feed.put_nowait(2)
    feed.put_nowait(3)
    assert await feed.receive() == marker()
    assert await feed.receive() == 3


async def test_latest_with_capacity_one_keeps_marker_and_newest_data() -> None:
    feed: Feed[int] = Feed("ticker:X", policy=Backpressure.LATEST, capacity=1)
    feed.put_nowait(1)
    feed.put_nowait(marker())
    feed.put_nowait(2)
    feed.put_nowait(3)
    assert [feed.receive_nowait() for _ in range(2)] == [marker(), 3]
    assert feed.statistics().conflated == 2


async def test_block_makes_the_producer_wait_for_the_consumer() -> None:
    feed: Feed[int] = Feed("order:all", policy=Backpressure.BLOCK, capacity=2)
    produced: list[int] = []

    async def producer() -> None:
        for i in range(5):
            await feed.put(i)
            produced.append(i)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        await trio.testing.wait_all_tasks_blocked()
        assert produced == [0, 1]  # the third put waits for room
        got = [await feed.receive() for _ in range(5)]
    assert got == [0, 1, 2, 3, 4]
    assert feed.statistics().conflated == 0


async def test_error_policy_drains_then_raises_overflow() -> None:
    feed: Feed[int] = Feed("trade:X", policy=Backpressure.ERROR, capacity=2)
    for i in range(3):
        feed.put_nowait(i)
    assert await feed.receive() == 0
    assert await feed.receive() == 1
    with pytest.raises(FeedOverflow, match="trade:X"):
        await feed.receive()


async def test_end_lets_consumer_drain_then_stops_iteration() -> None:
    feed: Feed[int] = Feed("trade:X", policy=Backpressure.BLOCK, capacity=4)
    feed.put_nowait(1)
    feed.put_nowait(2)
    feed.end()
    assert [item async for item in feed] == [1, 2]


async def test_end_with_failure_raises_it_after_buffered_items() -> None:
    feed: Feed[int] = Feed("trade:X", policy=Backpressure.BLOCK, capacity=4)
    feed.put_nowait(7)
    feed.end(RuntimeError("connection lost for good"))
    assert await feed.receive() == 7
    with pytest.raises(RuntimeError, match="for good"):
        await feed.receive()


async def test_close_detaches_and_releases_blocked_producer() -> None:
    detached: list[Feed[int]] = []
    feed: Feed[int] = Feed(
        "order:all", policy=Backpressure.BLOCK, capacity=1, on_close=detached.append
    )
    feed.put_nowait(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed.put, 2)
        await trio.testing.wait_all_tasks_blocked()
        await feed.aclose()
    assert detached == [feed]
    with pytest.raises(trio.ClosedResourceError):
        feed.receive_nowait()


async def test_receive_waits_and_is_cancellable(autojump_clock: trio.testing.MockClock) -> None:
    feed: Feed[int] = Feed("trade:X", policy=Backpressure.BLOCK, capacity=1)
    with trio.move_on_after(5) as scope:
        await feed.receive()
    assert scope.cancelled_caught
    assert trio.current_time() == 5


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Feed("x", policy=Backpressure.LATEST, capacity=0)


async def test_a_keyed_latest_feed_conflates_per_key_never_across_keys() -> None:
    feed: Feed[str] = Feed("ticker:all", policy=Backpressure.LATEST, capacity=1, keyed=True)
    for item in ("a1", "b1", "a2", "c1", "b2", "a3"):
        feed.put_nowait(item, key=f"ticker:{item[0]}")
    # the newest of each key, in the order each arrived
    assert [feed.receive_nowait() for _ in range(3)] == ["c1", "b2", "a3"]
    assert feed.statistics().conflated == 3
    with pytest.raises(trio.WouldBlock):
        feed.receive_nowait()


async def test_a_keyed_feed_keeps_capacity_items_per_key_and_every_marker() -> None:
    feed: Feed[str] = Feed("market:all", policy=Backpressure.LATEST, capacity=2, keyed=True)
    feed.put_nowait("a1", key="a")
    feed.put_nowait(marker())
    for item in ("a2", "b1", "a3", "b2", "b3"):
        feed.put_nowait(item, key=item[0])
    got = [feed.receive_nowait() for _ in range(5)]
    assert got == [marker(), "a2", "a3", "b2", "b3"]
    assert feed.statistics().conflated == 2


async def test_a_keyed_block_feed_counts_capacity_across_keys() -> None:
    feed: Feed[str] = Feed("order:all", policy=Backpressure.BLOCK, capacity=2, keyed=True)
    assert feed.put_nowait("a1", key="a") and feed.put_nowait("b1", key="b")
    assert not feed.put_nowait("c1", key="c")  # full: the producer must wait
    assert feed.receive_nowait() == "a1"
    assert feed.put_nowait("c1", key="c")
    assert [feed.receive_nowait() for _ in range(2)] == ["b1", "c1"]


async def test_discard_data_keeps_only_markers() -> None:
    feed: Feed[int] = Feed("depth:X", policy=Backpressure.LATEST, capacity=3)
    feed.put_nowait(1)
    feed.put_nowait(marker())
    feed.put_nowait(2)
    assert feed.discard_data() == 2
    assert feed.receive_nowait() == marker()
    with pytest.raises(trio.WouldBlock):
        feed.receive_nowait()


async def test_wait_ready_returns_once_an_item_or_the_end_is_there(
    autojump_clock: trio.testing.MockClock,
) -> None:
    feed: Feed[int] = Feed("depth:X", policy=Backpressure.LATEST, capacity=1)

    async def later() -> None:
        await trio.sleep(3)
        feed.put_nowait(9)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(later)
        await feed.wait_ready()
        assert trio.current_time() == 3
        assert feed.receive_nowait() == 9
    feed.end()
    await feed.wait_ready()
    with pytest.raises(trio.EndOfChannel):
        feed.receive_nowait()
