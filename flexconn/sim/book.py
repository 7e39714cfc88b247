"""Price levels of one side of an order book, in integer ticks and lots.

Design note: each side keeps a dict ``price -> Level`` and a sorted list of level keys with the
best price at the *end*, so the hot operations (best price, taking the head order, removing an
exhausted best level) are O(1) and inserting a new level is one ``bisect.insort``. Keys are the
price for bids and the negated price for asks, so "best" is always the largest key.

Each level is a FIFO deque of resting orders. Cancelling an order in the middle of a queue is
lazy: the order's ``resting`` flag drops and the level's live totals shrink at once, while the
dead entry stays in the deque until it reaches the head or the level is compacted (when dead
entries outnumber live ones). Nothing here scans a whole level or the whole book per order.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

__all__ = ["BookSide", "Level", "Resting"]

# Compact a level's deque once it holds this many dead entries and more dead than live ones.
_COMPACT_MIN_DEAD = 16


class Resting(Protocol):
    """What the book needs from an order: its price, open lots and whether it rests here."""

    price_ticks: int
    remaining_lots: int
    resting: bool


T = TypeVar("T", bound=Resting)


class Level(Generic[T]):
    """The orders resting at one price, oldest first, with their live lot total and count."""

    __slots__ = ("live", "lots", "price", "queue")

    def __init__(self, price: int) -> None:
        self.price = price
        self.queue: deque[T] = deque()
        self.lots = 0
        self.live = 0

    def head(self) -> T:
        """The oldest live order (the level must have one)."""
        queue = self.queue
        while not queue[0].resting:
            queue.popleft()
        return queue[0]

    def orders(self) -> Iterator[T]:
        """Live orders in time priority."""
        return (order for order in self.queue if order.resting)


class BookSide(Generic[T]):
    """Bids (``is_bid``) or asks of one market: price-time ordered resting orders."""

    __slots__ = ("_keys", "_sign", "is_bid", "levels")

    def __init__(self, *, is_bid: bool) -> None:
        self.is_bid = is_bid
        self._sign = 1 if is_bid else -1
        self.levels: dict[int, Level[T]] = {}
        self._keys: list[int] = []

    def __len__(self) -> int:
        return len(self._keys)

    def best(self) -> int | None:
        """The best price in ticks, or ``None`` if the side is empty."""
        keys = self._keys
        return keys[-1] * self._sign if keys else None

    def best_level(self) -> Level[T] | None:
        keys = self._keys
        return self.levels[keys[-1] * self._sign] if keys else None

    def crosses(self, price: int, limit: int | None) -> bool:
        """Whether a resting price here would trade against an opposite order limited at
        ``limit`` (``None``: a market order, which crosses anything)."""
        if limit is None:
            return True
        return price >= limit if self.is_bid else price <= limit

    def add(self, order: T) -> None:
        """Queue ``order`` at the back of its price level."""
        price = order.price_ticks
        level = self.levels.get(price)
        if level is None:
            level = Level(price)
            self.levels[price] = level
            insort(self._keys, price * self._sign)
        level.queue.append(order)
        level.lots += order.remaining_lots
        level.live += 1
        order.resting = True

    def reduce(self, order: T, lots: int) -> None:
        """Take ``lots`` off a resting order in place (a fill or a quantity-reducing modify);
        the order leaves the book when nothing remains, keeping its queue position otherwise."""
        level = self.levels[order.price_ticks]
        order.remaining_lots -= lots
        level.lots -= lots
        if order.remaining_lots == 0:
            self._drop(order, level)

    def discard(self, order: T) -> None:
        """Remove a resting order (cancel or amend), wherever it sits in its queue."""
        level = self.levels[order.price_ticks]
        level.lots -= order.remaining_lots
        self._drop(order, level)

    def _drop(self, order: T, level: Level[T]) -> None:
        order.resting = False
        level.live -= 1
        if level.live == 0:
            del self.levels[level.price]
            key = level.price * self._sign
            keys = self._keys
            if keys[-1] == key:
                keys.pop()
            else:
                del keys[bisect_left(keys, key)]
            return
        queue = level.queue
        if queue[0] is order:
            queue.popleft()
        dead = len(queue) - level.live
        if dead >= _COMPACT_MIN_DEAD and dead > level.live:
            level.queue = deque(o for o in queue if o.resting)

    def depth(self, limit: int | None = None) -> list[tuple[int, int]]:
        """``(price, lots)`` per level, best first, at most ``limit`` levels."""
        keys = self._keys
        start = 0 if limit is None else max(0, len(keys) - limit)
        sign = self._sign
        levels = self.levels
        return [(key * sign, levels[key * sign].lots) for key in reversed(keys[start:])]

    def available(self, limit: int | None, wanted: int) -> tuple[int, int | None]:
        """How many lots (up to ``wanted``) an opposite order limited at ``limit`` could take
        right now, and the worst price it would reach (``None`` if it could take nothing)."""
        got = 0
        worst: int | None = None
        sign = self._sign
        levels = self.levels
        for key in reversed(self._keys):
            price = key * sign
            if not self.crosses(price, limit):
                break
            got += levels[price].lots
            worst = price
            if got >= wanted:
                return wanted, worst
        return got, worst

    def __iter__(self) -> Iterator[Level[T]]:
        """Levels, best first."""
        sign = self._sign
        levels = self.levels
        return (levels[key * sign] for key in reversed(self._keys))
