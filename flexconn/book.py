"""A local order book kept from depth snapshots, with sequence and checksum checks (sans-IO).

The exchange's ``depth`` channels send a *full snapshot* every 50 ms, so each message replaces
the book outright; merging snapshots as if they were diffs would leave stale levels behind.
:class:`OrderBook` therefore only has to decide whether a snapshot may be trusted:

* ``seqNum`` must move strictly forward; a snapshot at or behind the last one is ignored;
* when a ``checksum`` is present it must match :func:`depth_checksum` of the levels received.

A failed checksum marks the book invalid until a good snapshot arrives; the connection
resubscribes the channel to resynchronise. :meth:`OrderBook.invalidate` marks it invalid for any
other :class:`InvalidationReason` (the connection does so the moment its socket is considered
dead). The checksum is the simulator's documented definition: CRC-32 of
``bid1price:bid1qty:ask1price:ask1qty:...`` interleaving best-first levels (a longer side
continues alone), each number in positional decimal notation without trailing zeros.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum

import attrs

from flexconn._codec import plain_decimal as _text
from flexconn.models.market import DepthSnapshot, PriceLevel

__all__ = ["BookCheck", "InvalidationReason", "OrderBook", "depth_checksum"]


class InvalidationReason(StrEnum):
    """Why a book stopped being valid (``OrderBook.invalid_reason``, ``ConnectionEvent.reason``)."""

    #: The socket was considered dead (heartbeat timeout, close, transport error); the book
    #: stays invalid until the first snapshot of the resubscription after a reconnect.
    DISCONNECTED = "disconnected"
    #: A snapshot failed its checksum (it was not applied).
    CHECKSUM_MISMATCH = "checksum_mismatch"
    #: The snapshots' ``seqNum`` stopped moving forward (three in a row at or behind the book's):
    #: the stream cannot be trusted, so the channel is resubscribed.
    SEQUENCE_GAP = "sequence_gap"
    #: The channel is being resubscribed (after repeated checksum or sequence failures); the
    #: book is invalid until the first snapshot of the new subscription.
    RESUBSCRIBED = "resubscribed"
    #: No snapshot yet (a new book).
    NO_SNAPSHOT = "no_snapshot"


def depth_checksum(bids: Sequence[PriceLevel], asks: Sequence[PriceLevel]) -> int:
    """CRC-32 of the interleaved best-first levels (see the module docstring)."""
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts.append(_text(bids[i].price))
            parts.append(_text(bids[i].quantity))
        if i < len(asks):
            parts.append(_text(asks[i].price))
            parts.append(_text(asks[i].quantity))
    return zlib.crc32(":".join(parts).encode())


@attrs.frozen(kw_only=True)
class BookCheck:
    """The verdict on one snapshot: ``accepted``, or why not (``"stale"``, ``"checksum"``)."""

    accepted: bool
    problem: str | None = None


class OrderBook:
    """The latest trusted snapshot of one market's book, and whether it is currently valid."""

    def __init__(self, market_code: str, *, levels: int | None = None) -> None:
        self.market_code = market_code
        self.levels = levels
        self._snapshot: DepthSnapshot | None = None
        self._valid = False
        self._invalid_reason: InvalidationReason | None = InvalidationReason.NO_SNAPSHOT
        self.checksum_failures = 0
        self.stale_snapshots = 0

    @property
    def valid(self) -> bool:
        """Whether the book reflects a verified, in-sequence snapshot."""
        return self._valid

    @property
    def invalid_reason(self) -> InvalidationReason | None:
        """Why the book is invalid (``None`` while it is valid)."""
        return self._invalid_reason

    @property
    def seq_num(self) -> int | None:
        return self._snapshot.seq_num if self._snapshot is not None else None

    @property
    def timestamp(self) -> int | None:
        return self._snapshot.timestamp if self._snapshot is not None else None

    @property
    def bids(self) -> tuple[PriceLevel, ...]:
        """Bid levels, best first (empty before the first snapshot)."""
        if self._snapshot is None:
            return ()
        bids = self._snapshot.bids
        return bids if self.levels is None else bids[: self.levels]

    @property
    def asks(self) -> tuple[PriceLevel, ...]:
        """Ask levels, best first (empty before the first snapshot)."""
        if self._snapshot is None:
            return ()
        asks = self._snapshot.asks
        return asks if self.levels is None else asks[: self.levels]

    @property
    def best_bid(self) -> PriceLevel | None:
        bids = self.bids
        return bids[0] if bids else None

    @property
    def best_ask(self) -> PriceLevel | None:
        asks = self.asks
        return asks[0] if asks else None

    @property
    def spread(self) -> Decimal | None:
        bid, ask = self.best_bid, self.best_ask
        return None if bid is None or ask is None else ask.price - bid.price

    def apply(self, snapshot: DepthSnapshot) -> BookCheck:
        """Replace the book with ``snapshot`` if it is in sequence and its checksum matches."""
        if snapshot.market_code != self.market_code:
            raise ValueError(f"snapshot for {snapshot.market_code} applied to {self.market_code}")
        last = self.seq_num
        if snapshot.seq_num is not None and last is not None and snapshot.seq_num <= last:
            self.stale_snapshots += 1
            return BookCheck(accepted=False, problem="stale")
        if snapshot.checksum is not None and (
            depth_checksum(snapshot.bids, snapshot.asks) != snapshot.checksum
        ):
            self.checksum_failures += 1
            self._valid = False
            self._invalid_reason = InvalidationReason.CHECKSUM_MISMATCH
            return BookCheck(accepted=False, problem="checksum")
        self._snapshot = snapshot
        self._valid = True
        self._invalid_reason = None
        return BookCheck(accepted=True)

    def invalidate(self, reason: InvalidationReason = InvalidationReason.DISCONNECTED) -> None:
        """Mark the book untrusted for ``reason`` and forget the sequence: the next snapshot
        that passes its checksum is accepted whatever its ``seqNum``."""
        self._valid = False
        self._invalid_reason = reason
        self._snapshot = None
