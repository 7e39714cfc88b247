"""The price-level structure under the engine: ordering, lazy removal, compaction."""

from __future__ import annotations

import random

from flexconn.sim.book import BookSide


class Entry:
    def __init__(self, name: int, price: int, lots: int) -> None:
        self.name = name
        self.price_ticks = price
        self.remaining_lots = lots
        self.resting = False


def test_best_is_highest_bid_and_lowest_ask() -> None:
    bids: BookSide[Entry] = BookSide(is_bid=True)
    asks: BookSide[Entry] = BookSide(is_bid=False)
    for price in (100, 102, 101):
        bids.add(Entry(price, price, 1))
        asks.add(Entry(price, price + 10, 1))
    assert bids.best() == 102 and asks.best() == 110
    assert bids.depth() == [(102, 1), (101, 1), (100, 1)]
    assert asks.depth(2) == [(110, 1), (111, 1)]
    assert [level.price for level in asks] == [110, 111, 112]
    assert bids.crosses(102, 102) and not bids.crosses(101, 102)
    assert asks.crosses(110, 110) and not asks.crosses(111, 110)


def test_head_skips_removed_orders_and_levels_disappear_when_empty() -> None:
    side: BookSide[Entry] = BookSide(is_bid=False)
    first, second, third = Entry(1, 50, 2), Entry(2, 50, 3), Entry(3, 50, 4)
    for entry in (first, second, third):
        side.add(entry)
    side.discard(first)
    side.discard(second)
    level = side.best_level()
    assert level is not None
    assert (level.head(), level.lots, level.live) == (third, 4, 1)
    assert list(level.orders()) == [third]
    side.reduce(third, 4)
    assert (side.best(), side.best_level(), len(side)) == (None, None, 0)
    assert not third.resting


def test_reduce_keeps_queue_position() -> None:
    side: BookSide[Entry] = BookSide(is_bid=True)
    first, second = Entry(1, 50, 5), Entry(2, 50, 5)
    side.add(first)
    side.add(second)
    side.reduce(first, 3)
    level = side.best_level()
    assert level is not None
    assert (level.head(), level.lots, first.remaining_lots) == (first, 7, 2)


def test_cancelled_entries_are_compacted_away() -> None:
    side: BookSide[Entry] = BookSide(is_bid=True)
    keeper = Entry(0, 50, 1)
    side.add(keeper)
    churn = [Entry(i, 50, 1) for i in range(1, 200)]
    for entry in churn:
        side.add(entry)
        side.discard(entry)
    level = side.best_level()
    assert level is not None
    assert len(level.queue) < 40  # not 200: dead entries were dropped
    assert (level.live, level.lots, level.head()) == (1, 1, keeper)


def test_available_stops_at_the_limit_and_at_the_wanted_size() -> None:
    asks: BookSide[Entry] = BookSide(is_bid=False)
    for price, lots in ((100, 2), (101, 3), (103, 4)):
        asks.add(Entry(price, price, lots))
    assert asks.available(99, 10) == (0, None)
    assert asks.available(101, 10) == (5, 101)
    assert asks.available(200, 4) == (4, 101)
    assert asks.available(200, 100) == (9, 103)


def test_random_operations_agree_with_a_plain_model() -> None:
    rng = random.Random(0)
    side: BookSide[Entry] = BookSide(is_bid=False)
    live: list[Entry] = []
    for i in range(3000):
        roll = rng.random()
        if roll < 0.5 or not live:
            entry = Entry(i, rng.randint(90, 110), rng.randint(1, 5))
            side.add(entry)
            live.append(entry)
        elif roll < 0.8:
            entry = live.pop(rng.randrange(len(live)))
            side.discard(entry)
        else:
            level = side.best_level()
            assert level is not None
            head = level.head()
            oldest = min((e for e in live if e.price_ticks == level.price), key=lambda e: e.name)
            assert head is oldest
            side.reduce(head, 1)
            if not head.remaining_lots:
                live.remove(head)
        expected: dict[int, int] = {}
        for entry in live:
            expected[entry.price_ticks] = expected.get(entry.price_ticks, 0) + entry.remaining_lots
        assert side.depth() == sorted(expected.items())
