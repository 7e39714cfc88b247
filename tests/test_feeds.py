"""Feed backpressure policies, continuity markers and the hot path, driven directly."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from flexconn.config import Backpressure
from flexconn.errors import FeedOverflow
from flexconn.feeds import YIELD_EVERY, Deferred, Feed, StreamRestarted


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


# -- the hot path: cancellation points, schedule points, batches ----------------------------------


class Lazy(Deferred):
    """A deferred item that counts its resolutions; ``None`` stands for a malformed frame."""

    def __init__(self, value: int | None) -> None:
        self.value = value
        self.resolved = 0

    def resolve(self) -> int | None:
        self.resolved += 1
        return self.value


def test_a_deferred_subclass_must_define_resolve() -> None:
    with pytest.raises(TypeError, match="resolve"):

        class Incomplete(Deferred):
            pass


@pytest.mark.parametrize("how", ["receive", "receive_many", "async for"])
async def test_every_call_is_a_cancellation_point_even_with_items_buffered(how: str) -> None:
    feed: Feed[int] = Feed("trade:X", policy=Backpressure.BLOCK, capacity=4)
    feed.put_nowait(1)
    with trio.CancelScope() as scope:
        scope.cancel()
        if how == "receive":
            await feed.receive()
        elif how == "receive_many":
            await feed.receive_many()
        else:
            async for _ in feed:
                break
    assert scope.cancelled_caught
    # cancelled before taking anything: the item is still there
    assert feed.receive_nowait() == 1


async def test_a_busy_feed_yields_every_yield_every_items_not_every_item() -> None:
    total = 10 * YIELD_EVERY
    feed: Feed[int] = Feed("order:all", policy=Backpressure.BLOCK, capacity=total)
    for i in range(total):
        feed.put_nowait(i)
    turns = 0
    done = False

    async def other_task() -> None:
        nonlocal turns
        while not done:
            turns += 1
            await trio.lowlevel.checkpoint()

    got: list[int | StreamRestarted] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_task)
        await trio.lowlevel.checkpoint()  # other_task is running: it never blocks
        turns = 0
        async for item in feed:
            got.append(item)
            if len(got) == total:
                break
        done = True
    assert got == list(range(total))
    # fair: the other task ran about once per YIELD_EVERY items; cheap: not once per item
    assert total // YIELD_EVERY - 1 <= turns <= total // YIELD_EVERY + 1


async def test_receive_many_batches_count_toward_the_yield_bound() -> None:
    feed: Feed[int] = Feed("order:all", policy=Backpressure.BLOCK, capacity=YIELD_EVERY)
    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_task)
        await trio.lowlevel.checkpoint()  # other_task is running: it never blocks
        for i in range(YIELD_EVERY):
            feed.put_nowait(i)
        turns = 0
        assert await feed.receive_many(max=YIELD_EVERY - 1) == list(range(YIELD_EVERY - 1))
        assert turns == 0  # below the bound: no schedule point
        rounds = 20
        for _ in range(rounds):
            assert len(await feed.receive_many()) == 1  # reaches the bound: yields
            for i in range(YIELD_EVERY):
                feed.put_nowait(i)
            assert len(await feed.receive_many(max=YIELD_EVERY - 1)) == YIELD_EVERY - 1
        # one schedule point per YIELD_EVERY items (give or take the order within a batch)
        assert rounds - 1 <= turns <= rounds + 1
        nursery.cancel_scope.cancel()


async def test_receive_many_returns_everything_buffered_in_order() -> None:
    feed: Feed[int] = Feed("trade:X", policy=Backpressure.BLOCK, capacity=8)
    for i in range(5):
        feed.put_nowait(i)
    feed.put_nowait(marker())
    assert await feed.receive_many() == [0, 1, 2, 3, 4, marker()]
    assert feed.statistics().buffered == 0
    assert feed.statistics().delivered == 6


async def test_receive_many_respects_max() -> None:
    feed: Feed[int] = Feed("trade:X", policy=Backpressure.BLOCK, capacity=8)
    for i in range(5):
        feed.put_nowait(i)
    assert await feed.receive_many(max=2) == [0, 1]
    assert await feed.receive_many(max=2) == [2, 3]
    assert await feed.receive_many(max=2) == [4]
    with pytest.raises(ValueError, match="at least 1"):
        await feed.receive_many(max=0)


async def test_receive_many_waits_only_when_empty(autojump_clock: trio.testing.MockClock) -> None:
    feed: Feed[int] = Feed("trade:X", policy=Backpressure.BLOCK, capacity=8)

    async def later() -> None:
        await trio.sleep(2)
        feed.put_nowait(1)
        feed.put_nowait(2)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(later)
        assert await feed.receive_many() == [1, 2]
        assert trio.current_time() == 2
    with trio.move_on_after(5) as scope:
        await feed.receive_many()
    assert scope.cancelled_caught


async def test_receive_many_drains_before_the_end_and_the_failure() -> None:
    feed: Feed[int] = Feed("trade:X", policy=Backpressure.BLOCK, capacity=8)
    feed.put_nowait(1)
    feed.put_nowait(2)
    feed.end()
    assert await feed.receive_many() == [1, 2]
    with pytest.raises(trio.EndOfChannel):
        await feed.receive_many()
    failing: Feed[int] = Feed("trade:X", policy=Backpressure.ERROR, capacity=1)
    failing.put_nowait(1)
    failing.put_nowait(2)  # overflow
    assert await failing.receive_many() == [1]
    with pytest.raises(FeedOverflow):
        await failing.receive_many()
    failing.close()
    with pytest.raises(trio.ClosedResourceError):
        await failing.receive_many()


async def test_deferred_items_resolve_at_the_consumer_once_and_empty_ones_are_skipped() -> None:
    feed: Feed[int] = Feed("depth:X", policy=Backpressure.LATEST, capacity=4)
    items = [Lazy(1), Lazy(None), Lazy(3)]
    for item in items:
        feed.put_nowait(item)  # type: ignore[arg-type]
    assert [item.resolved for item in items] == [0, 0, 0]
    assert await feed.receive_many() == [1, 3]
    assert [item.resolved for item in items] == [1, 1, 1]
    feed.put_nowait(Lazy(None))  # type: ignore[arg-type]
    feed.put_nowait(Lazy(5))  # type: ignore[arg-type]
    assert await feed.receive() == 5
    conflated = Lazy(6)
    feed.put_nowait(conflated)  # type: ignore[arg-type]
    for i in range(4):
        feed.put_nowait(i)
    assert await feed.receive_many() == [0, 1, 2, 3]
    assert conflated.resolved == 0  # conflated away: never decoded


async def test_receive_many_with_max_skips_empty_deferred_items_without_waiting() -> None:
    feed: Feed[int] = Feed("depth:X", policy=Backpressure.LATEST, capacity=4)
    feed.put_nowait(Lazy(None))  # type: ignore[arg-type]
    feed.put_nowait(Lazy(None))  # type: ignore[arg-type]
    feed.put_nowait(7)
    with trio.fail_after(1):
        assert await feed.receive_many(max=1) == [7]


async def test_a_keyed_feed_keeps_its_per_key_bookkeeping_through_batches() -> None:
    feed: Feed[str] = Feed("ticker:all", policy=Backpressure.LATEST, capacity=1, keyed=True)
    for item in ("a1", "b1", "c1"):
        feed.put_nowait(item, key=item[0])
    assert await feed.receive_many(max=2) == ["a1", "b1"]
    feed.put_nowait("c2", key="c")  # conflates c1, the only c left
    feed.put_nowait("a2", key="a")  # a's count was released by the batch: nothing conflated
    assert await feed.receive_many() == ["c2", "a2"]
    assert feed.statistics().conflated == 1


async def test_a_parked_consumer_is_woken_by_each_kind_of_put() -> None:
    feed: Feed[str] = Feed("ticker:all", policy=Backpressure.LATEST, capacity=1, keyed=True)
    plain: Feed[int] = Feed("trade:X", policy=Backpressure.BLOCK, capacity=1)
    async with trio.open_nursery() as nursery:
        got: list[object] = []

        async def take(f: Feed[Any]) -> None:
            got.append(await f.receive())

        nursery.start_soon(take, feed)
        nursery.start_soon(take, plain)
        await trio.testing.wait_all_tasks_blocked()
        feed.put_nowait("x", key="x")
        plain.put_nowait(1)
    assert sorted(map(str, got)) == ["1", "x"]


@settings(max_examples=150, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("put"), st.integers(0, 3)),
            st.tuples(st.just("take"), st.one_of(st.none(), st.integers(1, 4))),
        ),
        max_size=40,
    ),
    policy=st.sampled_from([Backpressure.LATEST, Backpressure.BLOCK]),
    capacity=st.integers(1, 4),
    keyed=st.booleans(),
)
def test_batches_deliver_the_puts_in_order_within_each_policy(
    ops: list[tuple[str, int | None]], policy: Backpressure, capacity: int, keyed: bool
) -> None:
    async def run() -> None:
        feed: Feed[tuple[int, int]] = Feed("x:all", policy=policy, capacity=capacity, keyed=keyed)
        offered: list[tuple[int, int]] = []
        delivered: list[tuple[int, int]] = []
        for n, (op, arg) in enumerate(ops):
            if op == "put":
                item = (n, arg or 0)
                if feed.put_nowait(item, key=str(arg)):
                    offered.append(item)
            elif feed.statistics().buffered:
                batch = await feed.receive_many(max=arg)
                assert 1 <= len(batch) <= (arg or capacity * 4)
                delivered += batch  # type: ignore[arg-type]
        delivered += await feed.receive_many() if feed.statistics().buffered else []  # type: ignore[arg-type]
        stats = feed.statistics()
        # in order, nothing invented, every loss counted as conflation
        assert delivered == [item for item in offered if item in delivered]
        assert len(offered) == len(delivered) + stats.conflated
        assert stats.delivered == len(delivered)
        if policy is Backpressure.BLOCK:
            assert delivered == offered
        elif offered:
            assert delivered[-1] == offered[-1]  # the newest is never conflated away
        if keyed and policy is Backpressure.LATEST:
            # the newest item of each key always arrives
            newest = {item[1]: item for item in offered}
            assert set(newest.values()) <= set(delivered)

    trio.run(run)
