"""Live order books: a local book kept from a depth feed, and depth frames decoded on demand.

:func:`keep_book` applies every snapshot of a depth feed to a :class:`LiveOrderBook`, reporting
checksum failures and sequence breaks through its host (the connection counts and emits them) and
asking the host to resubscribe a channel whose snapshots cannot be trusted. :class:`DeferredDepth`
is a depth frame routed on a peek at its text and decoded by the first consumer that takes it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import attrs
import trio

from flexconn.book import InvalidationReason, OrderBook
from flexconn.channels import Channel
from flexconn.errors import RemoteProtocolError
from flexconn.feeds import Deferred, Feed, StreamRestarted
from flexconn.models.market import DepthUpdate
from flexconn.protocol.decode import decode

__all__ = ["BookKeeping", "DeferredDepth", "Invalidate", "LiveOrderBook", "keep_book"]

log = logging.getLogger("flexconn.connection")


class LiveOrderBook:
    """A local order book that a connection keeps current; read it any time.

    ``book`` is the :class:`~flexconn.book.OrderBook` (``bids``, ``asks``, ``valid``,
    ``invalid_reason``...); :meth:`wait_updated` waits for the next snapshot or invalidation.
    ``book.valid`` is false from the moment the connection's socket is considered dead until
    the first snapshot of the resubscription (see :meth:`Connection.order_book
    <flexconn.connection.Connection.order_book>`).
    """

    def __init__(self, book: OrderBook) -> None:
        self.book = book
        self._updated = trio.Event()

    def changed(self) -> None:
        self._updated.set()
        self._updated = trio.Event()

    async def wait_updated(self) -> None:
        """Wait until the book next changes (a snapshot applied or the book invalidated)."""
        await self._updated.wait()


@attrs.define(eq=False)
class BookKeeping:
    """A live book the connection keeps, with the feed and channel it is kept from."""

    live: LiveOrderBook
    feed: Feed[DepthUpdate]
    channel: Channel[DepthUpdate]


class Invalidate(Protocol):
    """Report a live book invalid (the connection marks, counts and emits it)."""

    def __call__(
        self,
        keeping: BookKeeping,
        reason: InvalidationReason,
        detail: str = "",
        *,
        mark: bool = True,
    ) -> None: ...


async def keep_book(
    keeping: BookKeeping,
    *,
    invalidate: Invalidate,
    resubscribe: Callable[[BookKeeping], Awaitable[None]],
) -> None:
    """Apply every snapshot of ``keeping``'s feed to its book until the feed ends.

    ``resubscribe`` is awaited after three checksum failures or a sequence break in a row (it
    does nothing when the socket is not connected: the reconnect resubscribes anyway).
    """
    live, feed = keeping.live, keeping.feed
    checksum_failures = stale = 0
    while True:
        # Take each item with ``receive_nowait`` right after waiting, so that no checkpoint
        # separates taking a snapshot from applying it: a drop meanwhile (which empties the
        # feed and invalidates the book) can never be undone by a snapshot from before it.
        await feed.wait_ready()
        try:
            message = feed.receive_nowait()
        except trio.WouldBlock:
            continue
        except trio.EndOfChannel:
            return
        if isinstance(message, StreamRestarted):
            continue  # the drop invalidated the book when it happened
        for snapshot in message.data:
            check = live.book.apply(snapshot)
            if check.accepted:
                checksum_failures = stale = 0
            elif check.problem == "checksum":
                checksum_failures += 1
                invalidate(  # (``apply`` already marked it, keeping its levels)
                    keeping,
                    InvalidationReason.CHECKSUM_MISMATCH,
                    f"seqNum {snapshot.seq_num}",
                    mark=False,
                )
            else:
                stale += 1
        if stale >= 3:
            invalidate(
                keeping,
                InvalidationReason.SEQUENCE_GAP,
                f"seqNum {live.book.seq_num} repeated or went backwards {stale} times",
            )
        live.changed()
        if checksum_failures >= 3 or stale >= 3:
            checksum_failures = stale = 0
            await resubscribe(keeping)


class DeferredDepth(Deferred):
    """A depth frame routed on :func:`~flexconn.protocol.decode.peek_depth_key`, decoded when a
    consumer first takes it (a malformed one is then reported through ``malformed``, as if the
    reader had found it)."""

    __slots__ = ("_frame", "_key", "_malformed", "_message")

    def __init__(
        self, malformed: Callable[[RemoteProtocolError], None], frame: str, key: str
    ) -> None:
        self._malformed: Callable[[RemoteProtocolError], None] | None = malformed
        self._frame = frame
        self._key = key
        self._message: DepthUpdate | None = None

    def resolve(self) -> DepthUpdate | None:
        malformed = self._malformed
        if malformed is None:  # resolved before, by this feed or another one
            return self._message
        self._malformed = None
        try:
            message = decode(self._frame)
        except RemoteProtocolError as exc:
            malformed(exc)
            return None
        if (
            not isinstance(message, DepthUpdate)
            or len(message.data) != 1
            or f"{message.level.value}:{message.data[0].market_code}" != self._key
        ):
            malformed(
                RemoteProtocolError(
                    f"a frame that read as a {self._key} snapshot is something else", self._frame
                )
            )
            return None
        self._message = message
        return message
