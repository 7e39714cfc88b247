"""Per-consumer feed channels with a backpressure policy, and the continuity marker.

Design note: a :class:`Feed` is one consumer's view of one exchange channel. It is a
``trio.abc.ReceiveChannel`` (iterate it with ``async for``) whose producer side is non-public and
driven by the connection's reader task. The policy decides what happens when the consumer is slow:

* ``LATEST`` keeps at most ``capacity`` items and drops the oldest data item to make room (counted
  as *conflated*); continuity markers are never conflated away. A *keyed* feed (a wildcard
  subscription such as ``ticker:all``, whose items each belong to one market or asset) conflates
  per key instead: it keeps at most ``capacity`` items of each key and only ever drops an item
  for a newer one of the same key, so one market's updates never push out another's.
* ``BLOCK`` makes the producer wait, which in turn stops the connection reading the socket.
* ``ERROR`` fails the feed: the consumer drains what was buffered, then gets
  :class:`~flexconn.errors.FeedOverflow`.

After a reconnect every feed receives a :class:`StreamRestarted` before fresh data, so a consumer
always knows when data may be missing.

A producer may also offer a :class:`Deferred` item: a message not decoded yet, which the feed
resolves when the consumer takes it. Items a ``LATEST`` feed conflates away are thus never decoded.

Hot path. Every ``receive()``, ``receive_many()`` and ``async for`` step is a cancellation point
(``checkpoint_if_cancelled`` before anything is taken, so a cancelled call takes nothing), but
a *schedule* point only when it has to wait (the feed is empty: it parks) or when the feed has
handed out :data:`YIELD_EVERY` items since it last yielded (then ``cancel_shielded_checkpoint``
after taking, as trio's memory channels do on every call). A consumer draining a busy feed thus
pays one trip through trio's scheduler per :data:`YIELD_EVERY` items instead of one per item,
yet never runs more than that many items' worth of its own code before other tasks get a turn.
The bound is counted in items, not calls, so a :meth:`Feed.receive_many` batch counts by its
size. The producer wakes the consumer's parking lot only when a task is parked there, and a
consumer wakes blocked producers only when one waits.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

import attrs
import trio

from flexconn.config import Backpressure
from flexconn.errors import FeedOverflow

__all__ = ["YIELD_EVERY", "Deferred", "Feed", "FeedStatistics", "StreamRestarted"]

T = TypeVar("T")

#: The most items a consumer takes from one feed between two schedule points when it never has
#: to wait (see the module notes). 64 keeps the scheduler's share of a busy feed's cost small
#: (one trip per 64 items) while other tasks wait at most 64 items' processing for their turn.
YIELD_EVERY: Final = 64

_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_cancel_shielded_checkpoint = trio.lowlevel.cancel_shielded_checkpoint


class Deferred:
    """A feed item that becomes its message only when a consumer takes it.

    :meth:`resolve` returns the message, or ``None`` when there is none after all (the frame was
    malformed: the producer reports that itself); the feed then moves on to its next item. Every
    feed holding the same item gets the same result, computed once.

    Subclasses must define :meth:`resolve` (checked when the subclass is created). A plain base
    class rather than an ``abc.ABC``: the feed tests every item it hands out against it, and an
    ABC's ``isinstance`` costs several times a plain class's.
    """

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.resolve is Deferred.resolve:
            raise TypeError(f"{cls.__name__} must define resolve()")

    def resolve(self) -> Any:
        """The message, or ``None`` if the item turned out to hold none."""
        raise NotImplementedError


@attrs.frozen(kw_only=True)
class StreamRestarted:
    """Continuity marker: the connection was re-established and data may be missing before it.

    Attributes:
        channel: the wire channel name, e.g. ``"depth:BTC-USD-SWAP-LIN"``.
        reconnects: how many times the connection has been re-established so far.
        reason: why the previous connection ended.
    """

    channel: str
    reconnects: int
    reason: str


@attrs.frozen(kw_only=True)
class FeedStatistics:
    """A snapshot of one feed's counters."""

    channel: str
    policy: Backpressure
    capacity: int
    buffered: int
    delivered: int
    conflated: int
    last_item_at: float | None
    """trio clock time at which the last item was offered, or ``None`` if none yet."""


_EMPTY: Final[Any] = object()


class Feed(trio.abc.ReceiveChannel[T | StreamRestarted], Generic[T]):
    """One consumer's bounded, policy-governed channel of messages for one subscription."""

    def __init__(
        self,
        channel: str,
        *,
        policy: Backpressure,
        capacity: int,
        on_close: Callable[[Feed[T]], None] | None = None,
        keyed: bool = False,
    ) -> None:
        if capacity < 1:
            raise ValueError("feed capacity must be at least 1")
        self.channel = channel
        self.policy = policy
        self.capacity = capacity
        #: Whether a ``LATEST`` feed conflates per item key (wildcard channels) rather than as a
        #: whole; the producer then names each item's key.
        self.keyed = keyed
        self._items: deque[T | StreamRestarted] = deque()
        # Keyed feeds only: the key of each buffered item (None for markers), in step with
        # ``_items``, and how many buffered items each key has.
        self._keys: deque[str | None] = deque()
        self._per_key: dict[str, int] = {}
        self._readers = trio.lowlevel.ParkingLot()
        self._writers = trio.lowlevel.ParkingLot()
        self._failure: BaseException | None = None
        self._ended = False  # producer finished: raise EndOfChannel once drained
        self._closed = False  # consumer closed its end
        self._on_close = on_close
        self._delivered = 0
        self._conflated = 0
        self._last_item_at: float | None = None
        self._clock: trio.abc.Clock | None = None  # the run's clock, looked up on first put
        self._unyielded = 0  # items handed out since this feed's consumer last yielded

    # -- consumer side --------------------------------------------------------------------------

    def receive_nowait(self) -> T | StreamRestarted:
        """Take the next item without waiting; raises ``trio.WouldBlock`` when none is ready."""
        item: T | StreamRestarted = self._take()
        if item is _EMPTY:
            raise trio.WouldBlock
        return item

    def _take(self) -> Any:
        """The next item, or ``_EMPTY`` when none is buffered; raises what an empty feed raises
        once it has ended, failed or been closed."""
        if self._closed:
            raise trio.ClosedResourceError("feed was closed")
        items = self._items
        while items:
            item = items.popleft()
            if self.keyed:
                self._forget_key(self._keys.popleft())
            if self._writers:
                self._writers.unpark_all()
            if isinstance(item, Deferred):
                item = item.resolve()
                if item is None:
                    continue
            self._delivered += 1
            return item
        if self._failure is not None:
            raise self._failure
        if self._ended:
            raise trio.EndOfChannel
        return _EMPTY

    async def receive(self) -> T | StreamRestarted:
        """The next item, waiting only while the feed is empty (see the module notes).

        Raises:
            trio.EndOfChannel: the feed ended and everything buffered was taken.
            trio.ClosedResourceError: this end was closed.
            FeedOverflow: an ``ERROR`` feed fell behind (after what was buffered).
        """
        await _checkpoint_if_cancelled()
        item = self._take()
        while item is _EMPTY:
            await self._readers.park()
            self._unyielded = 0
            item = self._take()
        self._unyielded += 1
        if self._unyielded >= YIELD_EVERY:
            self._unyielded = 0
            await _cancel_shielded_checkpoint()
        return item  # type: ignore[no-any-return]

    async def __anext__(self) -> T | StreamRestarted:
        # ``receive`` inlined: ``async for`` is the common way to read a feed.
        await _checkpoint_if_cancelled()
        try:
            item = self._take()
            while item is _EMPTY:
                await self._readers.park()
                self._unyielded = 0
                item = self._take()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        self._unyielded += 1
        if self._unyielded >= YIELD_EVERY:
            self._unyielded = 0
            await _cancel_shielded_checkpoint()
        return item  # type: ignore[no-any-return]

    async def receive_many(self, max: int | None = None) -> list[T | StreamRestarted]:
        """Everything buffered (at most ``max`` items), in order; at least one item.

        Waits only while the feed is empty. Like :meth:`receive`, a cancellation point on every
        call; raises what :meth:`receive` raises once nothing is left (items buffered before the
        end or failure are returned first).
        """
        if max is not None and max < 1:
            raise ValueError("max must be at least 1")
        await _checkpoint_if_cancelled()
        batch = self._take_many(max)
        while not batch:
            await self._readers.park()
            self._unyielded = 0
            batch = self._take_many(max)
        self._unyielded += len(batch)
        if self._unyielded >= YIELD_EVERY:
            self._unyielded = 0
            await _cancel_shielded_checkpoint()
        return batch

    def _take_many(self, limit: int | None) -> list[T | StreamRestarted]:
        """Up to ``limit`` buffered items (all without a limit), possibly none; raises what an
        empty feed raises once it has ended, failed or been closed."""
        if self._closed:
            raise trio.ClosedResourceError("feed was closed")
        items = self._items
        batch: list[T | StreamRestarted] = []
        while items and not batch:  # again only if every item taken resolved to nothing
            count = len(items) if limit is None else min(limit, len(items))
            if count == len(items):
                taken = list(items)
                items.clear()
                if self.keyed:
                    self._keys.clear()
                    self._per_key.clear()
            else:
                taken = [items.popleft() for _ in range(count)]
                if self.keyed:
                    for _ in range(count):
                        self._forget_key(self._keys.popleft())
            for item in taken:
                if isinstance(item, Deferred):
                    item = item.resolve()
                    if item is None:
                        continue
                batch.append(item)
            if self._writers:
                self._writers.unpark_all()
        if batch:
            self._delivered += len(batch)
        elif self._failure is not None:
            raise self._failure
        elif self._ended:
            raise trio.EndOfChannel
        return batch

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """Close the consumer's end and detach it from its subscription; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._items.clear()
        self._keys.clear()
        self._per_key.clear()
        self._readers.unpark_all()
        self._writers.unpark_all()
        if self._on_close is not None:
            self._on_close(self)

    def statistics(self) -> FeedStatistics:
        return FeedStatistics(
            channel=self.channel,
            policy=self.policy,
            capacity=self.capacity,
            buffered=len(self._items),
            delivered=self._delivered,
            conflated=self._conflated,
            last_item_at=self._last_item_at,
        )

    @property
    def closed(self) -> bool:
        return self._closed

    # -- producer side (used by the connection) -------------------------------------------------

    async def put(self, item: T | StreamRestarted, key: str | None = None) -> None:
        """Offer an item, waiting while a ``BLOCK`` feed is full; a no-op once closed."""
        while (
            self.policy is Backpressure.BLOCK
            and not self._closed
            and len(self._items) >= self.capacity
        ):
            await self._writers.park()
        self.put_nowait(item, key)

    def put_nowait(self, item: T | StreamRestarted, key: str | None = None) -> bool:
        """Offer an item without waiting; returns ``False`` if a ``BLOCK`` feed had no room.

        ``key`` names the market or asset a keyed feed's item belongs to (ignored otherwise).
        """
        if self._closed or self._ended or self._failure is not None:
            return True
        clock = self._clock
        if clock is None:
            clock = self._clock = trio.lowlevel.current_clock()
        self._last_item_at = clock.current_time()
        if self.keyed:
            return self._put_keyed(item, key)
        if len(self._items) >= self.capacity:
            if self.policy is Backpressure.BLOCK:
                return False
            if self.policy is Backpressure.ERROR:
                self._failure = FeedOverflow(
                    f"feed {self.channel} fell more than {self.capacity} messages behind"
                )
                self._readers.unpark_all()
                return True
            self._conflate()
        self._items.append(item)
        if self._readers:
            self._readers.unpark_all()
        return True

    def _put_keyed(self, item: T | StreamRestarted, key: str | None) -> bool:
        if isinstance(item, StreamRestarted):
            key = None
        if self.policy is Backpressure.LATEST:
            if key is not None and self._per_key.get(key, 0) >= self.capacity:
                self._conflate_key(key)
        elif len(self._items) >= self.capacity:
            if self.policy is Backpressure.BLOCK:
                return False
            self._failure = FeedOverflow(
                f"feed {self.channel} fell more than {self.capacity} messages behind"
            )
            self._readers.unpark_all()
            return True
        self._items.append(item)
        self._keys.append(key)
        if key is not None:
            self._per_key[key] = self._per_key.get(key, 0) + 1
        if self._readers:
            self._readers.unpark_all()
        return True

    def _forget_key(self, key: str | None) -> None:
        if key is None:
            return
        left = self._per_key[key] - 1
        if left:
            self._per_key[key] = left
        else:
            del self._per_key[key]

    def _conflate_key(self, key: str) -> None:
        # Drop the oldest buffered item of ``key`` (never one of another key, never a marker).
        for index, queued in enumerate(self._keys):
            if queued == key:
                del self._items[index]
                del self._keys[index]
                self._forget_key(key)
                self._conflated += 1
                return

    def discard_data(self) -> int:
        """Drop every buffered data item (markers stay); returns how many were dropped.

        The connection calls it on a live book's feed when the socket dies, so that a snapshot
        read from the dead socket can never make the book valid again.
        """
        kept = [
            (item, key)
            for item, key in itertools.zip_longest(self._items, self._keys)
            if isinstance(item, StreamRestarted)
        ]
        dropped = len(self._items) - len(kept)
        self._items = deque(item for item, _ in kept)
        if self.keyed:
            self._keys = deque(None for _ in kept)
            self._per_key.clear()
        if dropped:
            self._writers.unpark_all()
        return dropped

    async def wait_ready(self) -> None:
        """Wait until :meth:`receive_nowait` has something to say: an item, the end, or the
        feed's failure (it returns at once if so already).

        Taking the item with :meth:`receive_nowait` right after keeps the two in one step, with
        no checkpoint between taking an item and acting on it (which :meth:`receive` has).
        """
        while not (self._items or self._failure is not None or self._ended or self._closed):
            await self._readers.park()
        await trio.lowlevel.checkpoint()

    def has_room(self) -> bool:
        return self._closed or len(self._items) < self.capacity

    def end(self, failure: BaseException | None = None) -> None:
        """Finish the feed: the consumer drains the buffer, then gets ``failure`` or the end."""
        if failure is not None and self._failure is None:
            self._failure = failure
        self._ended = True
        self._readers.unpark_all()
        self._writers.unpark_all()

    def _conflate(self) -> None:
        # Drop the oldest data item; markers are never dropped, so a buffer holding only markers
        # grows past its capacity by them rather than lose one.
        for index, queued in enumerate(self._items):
            if not isinstance(queued, StreamRestarted):
                del self._items[index]
                self._conflated += 1
                return
