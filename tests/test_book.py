"""The local order book: full-snapshot replacement, sequence and checksum checks."""

from __future__ import annotations

import zlib
from decimal import Decimal

import pytest

from flexconn.book import InvalidationReason, OrderBook, depth_checksum
from flexconn.models.enums import DepthLevel
from flexconn.models.market import DepthSnapshot, PriceLevel

D = Decimal


def snap(
    seq: int | None,
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
    *,
    checksum: int | None = None,
) -> DepthSnapshot:
    return DepthSnapshot.from_levels(
        market_code="BTC-USD-SWAP-LIN",
        level=DepthLevel.FULL,
        timestamp=1_600_000_000_000,
        seq_num=seq,
        checksum=checksum,
        bids=[(D(p), D(q)) for p, q in bids],
        asks=[(D(p), D(q)) for p, q in asks],
    )


def test_checksum_matches_hand_built_string() -> None:
    bids = [PriceLevel(D("100.50"), D("2")), PriceLevel(D("100"), D("0.125"))]
    asks = [PriceLevel(D("101"), D("1.0"))]
    expected = zlib.crc32(b"100.5:2:101:1:100:0.125")
    assert depth_checksum(bids, asks) == expected


def test_empty_book_checksum_is_zero() -> None:
    assert depth_checksum((), ()) == 0


def test_each_snapshot_replaces_the_book_leaving_no_stale_levels() -> None:
    book = OrderBook("BTC-USD-SWAP-LIN")
    book.apply(snap(1, [("100", "1"), ("99", "2")], [("101", "1"), ("102", "5")]))
    check = book.apply(snap(2, [("100", "3")], [("103", "1")]))
    assert check.accepted
    assert book.bids == (PriceLevel(D("100"), D("3")),)
    assert book.asks == (PriceLevel(D("103"), D("1")),)
    assert book.spread == D("3")
    assert book.seq_num == 2


def test_out_of_order_snapshot_is_ignored() -> None:
    book = OrderBook("BTC-USD-SWAP-LIN")
    book.apply(snap(5, [("100", "1")], [("101", "1")]))
    check = book.apply(snap(4, [("90", "1")], [("91", "1")]))
    assert (check.accepted, check.problem) == (False, "stale")
    assert book.best_bid == PriceLevel(D("100"), D("1"))
    assert book.valid and book.stale_snapshots == 1


def test_bad_checksum_invalidates_until_a_good_snapshot() -> None:
    book = OrderBook("BTC-USD-SWAP-LIN")
    good = zlib.crc32(b"100:1:101:1")
    assert book.apply(snap(1, [("100", "1")], [("101", "1")], checksum=good)).accepted
    bad = book.apply(snap(2, [("100", "1")], [("101", "2")], checksum=good))
    assert (bad.accepted, bad.problem, book.valid) == (False, "checksum", False)
    assert book.asks == (PriceLevel(D("101"), D("1")),)  # the bad snapshot was not applied
    fixed = zlib.crc32(b"100:1:101:2")
    assert book.apply(snap(3, [("100", "1")], [("101", "2")], checksum=fixed)).accepted
    assert book.valid and book.checksum_failures == 1


def test_levels_limit_and_invalidate() -> None:
    book = OrderBook("BTC-USD-SWAP-LIN", levels=1)
    book.apply(snap(1, [("100", "1"), ("99", "1")], [("101", "1"), ("102", "1")]))
    assert len(book.bids) == len(book.asks) == 1
    book.invalidate()
    assert not book.valid and book.seq_num is None and len(book.bids) == 0
    assert book.apply(snap(1, [("100", "1")], [("101", "1")])).accepted


def test_snapshot_for_another_market_is_a_programming_error() -> None:
    book = OrderBook("ETH-USD")
    with pytest.raises(ValueError, match="BTC-USD-SWAP-LIN"):
        book.apply(snap(1, [], []))


def test_the_book_says_why_it_is_invalid() -> None:
    book = OrderBook("BTC-USD-SWAP-LIN")
    assert book.invalid_reason is InvalidationReason.NO_SNAPSHOT
    good = zlib.crc32(b"100:1:101:1")
    book.apply(snap(1, [("100", "1")], [("101", "1")], checksum=good))
    assert book.valid and book.invalid_reason is None
    book.apply(snap(2, [("100", "1")], [("101", "1")], checksum=good + 1))
    assert book.invalid_reason is InvalidationReason.CHECKSUM_MISMATCH
    book.invalidate(InvalidationReason.RESUBSCRIBED)
    assert (book.valid, book.invalid_reason) == (False, InvalidationReason.RESUBSCRIBED)
    book.invalidate()
    assert book.invalid_reason is InvalidationReason.DISCONNECTED
