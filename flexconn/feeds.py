"""Per-consumer feed channels with a backpressure policy, and the continuity marker.

Design note: a :class:`Feed` is one consumer's view of one exchange channel. It is a
``trio.abc.ReceiveChannel`` (iterate it with ``async for``) whose producer side is non-public and
driven by the connection's reader task. The policy decides what happens when the consumer is slow:

* ``LATEST`` keeps at most ``capacity`` items and drops the oldest data item to make room (counted
  as *conflated*); continuity markers are never conflated away.
* ``BLOCK`` makes the producer wait, which in turn stops the connection reading the socket.
* ``ERROR`` fails the feed: the consumer drains what was buffered, then gets
  :class:`~flexconn.errors.FeedOverflow`.

After a reconnect every feed receives a :class:`StreamRestarted` before fresh data, so a consumer
always knows when data may be missing.

A producer may also offer a :class:`Deferred` item: a message not decoded yet, which the feed
resolves when the consumer takes it. Items a ``LATEST`` feed conflates away are thus never decoded.
"""

from __future__ import annotations

import abc
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs
import trio

from flexconn.config import Backpressure
from flexconn.errors import FeedOverflow

__all__ = ["Deferred", "Feed", "FeedStatistics", "StreamRestarted"]

T = TypeVar("T")


class Deferred(abc.ABC):
    """A feed item that becomes its message only when a consumer takes it.

    :meth:`resolve` returns the message, or ``None`` when there is none after all (the frame was
    malformed: the producer reports that itself); the feed then moves on to its next item. Every
    feed holding the same item gets the same result, computed once.
    """

    __slots__ = ()

    @abc.abstractmethod
    def resolve(self) -> Any:
        """The message, or ``None`` if the item turned out to hold none."""


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


class Feed(trio.abc.ReceiveChannel[T | StreamRestarted], Generic[T]):
    """One consumer's bounded, policy-governed channel of messages for one subscription."""

    def __init__(
        self,
        channel: str,
        *,
        policy: Backpressure,
        capacity: int,
        on_close: Callable[[Feed[T]], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("feed capacity must be at least 1")
        self.channel = channel
        self.policy = policy
        self.capacity = capacity
        self._items: deque[T | StreamRestarted] = deque()
        self._readers = trio.lowlevel.ParkingLot()
        self._writers = trio.lowlevel.ParkingLot()
        self._failure: BaseException | None = None
        self._ended = False  # producer finished: raise EndOfChannel once drained
        self._closed = False  # consumer closed its end
        self._on_close = on_close
        self._delivered = 0
        self._conflated = 0
        self._last_item_at: float | None = None

    # -- consumer side --------------------------------------------------------------------------

    def receive_nowait(self) -> T | StreamRestarted:
        """Take the next item without waiting; raises ``trio.WouldBlock`` when none is ready."""
        if self._closed:
            raise trio.ClosedResourceError("feed was closed")
        while self._items:
            item = self._items.popleft()
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
        raise trio.WouldBlock

    async def receive(self) -> T | StreamRestarted:
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                item = self.receive_nowait()
            except trio.WouldBlock:
                await self._readers.park()
                continue
            await trio.lowlevel.cancel_shielded_checkpoint()
            return item

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """Close the consumer's end and detach it from its subscription; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._items.clear()
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

    async def put(self, item: T | StreamRestarted) -> None:
        """Offer an item, waiting while a ``BLOCK`` feed is full; a no-op once closed."""
        while (
            self.policy is Backpressure.BLOCK
            and not self._closed
            and len(self._items) >= self.capacity
        ):
            await self._writers.park()
        self.put_nowait(item)

    def put_nowait(self, item: T | StreamRestarted) -> bool:
        """Offer an item without waiting; returns ``False`` if a ``BLOCK`` feed had no room."""
        if self._closed or self._ended or self._failure is not None:
            return True
        self._last_item_at = trio.current_time()
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
        self._readers.unpark_all()
        return True

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
