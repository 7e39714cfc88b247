"""Decoding on consumption: depth frames routed on a peek at their text, decoded when read.

The sans-IO half checks :func:`peek_depth_key` against the decoder: whenever the peek names a key
it is the key the decoded frame routes to, and every frame the exchange's encoder writes for one
snapshot gets one. The connection half runs on both transports: a malformed snapshot is reported
when a consumer reaches it, and one a ``latest`` feed conflates away unread is never decoded.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import orjson
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from flexconn import channels
from flexconn.config import Backpressure
from flexconn.connection import ConnectionEvent, open_connection
from flexconn.errors import RemoteProtocolError
from flexconn.feeds import StreamRestarted
from flexconn.models.enums import DepthLevel
from flexconn.models.market import DepthSnapshot, DepthUpdate
from flexconn.protocol.decode import decode, peek_depth_key
from flexconn.sim import Simulator, serve
from flexconn.sim.server_codec import encode_message
from flexconn.transport import TransportFactory

MARKET = "BTC-USD-SWAP-LIN"

_prices = st.decimals(min_value=1, max_value=100_000, places=1, allow_nan=False)
_levels = st.lists(st.tuples(_prices, _prices), max_size=5)
_markets = st.from_regex(r"[A-Z0-9][A-Z0-9.-]{0,15}", fullmatch=True)


@st.composite
def depth_updates(draw: st.DrawFn) -> DepthUpdate:
    level = draw(st.sampled_from(list(DepthLevel)))
    snapshot = DepthSnapshot.from_levels(
        market_code=draw(_markets),
        level=level,
        timestamp=draw(st.integers(min_value=0, max_value=2**41)),
        asks=draw(_levels),
        bids=draw(_levels),
        seq_num=None if level is DepthLevel.FUTURES else draw(st.integers(0, 2**53)),
        checksum=None if level is DepthLevel.FUTURES else draw(st.integers(0, 2**32)),
    )
    return DepthUpdate(level=level, data=(snapshot,))


@given(depth_updates())
def test_every_encoded_snapshot_peeks_as_the_key_it_decodes_to(update: DepthUpdate) -> None:
    frame = encode_message(update)
    ((key, _),) = decode(frame).split()  # type: ignore[union-attr]
    assert peek_depth_key(frame) == key == f"{update.level.value}:{update.data[0].market_code}"


_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=8)
_raw_levels = st.lists(
    st.lists(st.integers(0, 10**6) | st.floats(0, 1e6) | st.text(max_size=3), min_size=1),
    max_size=3,
)


@st.composite
def depth_like_frames(draw: st.DrawFn) -> str:
    """Frames built to be mistaken for depth snapshots: routing keys present, absent, repeated,
    nested or of the wrong type, levels valid or not, any key order and spacing."""

    def item() -> dict[str, object]:
        fields: dict[str, object] = draw(
            st.dictionaries(
                st.sampled_from(["instrumentId", "marketCode", "timestamp", "seqNum", "table"]),
                _json | _markets,
            )
        )
        for side in ("asks", "bids"):
            if draw(st.booleans()):
                fields[side] = draw(_raw_levels)
        if draw(st.booleans()):
            fields["instrumentId"] = draw(_markets)
        if draw(st.booleans()):
            fields["timestamp"] = str(draw(st.integers(0, 2**41)))
        return fields

    obj: dict[str, object] = {
        "table": draw(st.sampled_from(["depth", "depthL25", "futures/depth", "trade", 3])),
        "data": [item() for _ in range(draw(st.integers(0, 2)))],
    }
    if draw(st.booleans()):
        obj["instrumentId"] = draw(_markets)
    keys = draw(st.permutations(list(obj)))
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (",", " : ")]))
    return json.dumps({key: obj[key] for key in keys}, separators=separators)


@given(depth_like_frames())
def test_a_peeked_key_is_never_wrong_about_a_one_snapshot_depth_frame(frame: str) -> None:
    key = peek_depth_key(frame)
    try:
        message = decode(frame)
    except RemoteProtocolError:
        return  # malformed: reported by whoever decodes it
    if key is not None and isinstance(message, DepthUpdate) and len(message.data) == 1:
        assert [k for k, _ in message.split()] == [key]
    # Any other frame with a key is not what its text suggests: the connection's consumer-side
    # decode reports it as malformed (test below) instead of delivering it.


@pytest.mark.parametrize(
    "frame",
    [
        '{"table":"trade","data":[{"marketCode":"BTC-USD"}]}',
        '{"table":"depth","data":[{"instrumentId":"A"},{"instrumentId":"B"}]}',
        '{"table":"depth","data":[{"marketCode":"BTC-USD"}]}',
        '{"table":"depth","data":[{"instrumentId":"BTC\\u002dUSD"}]}',
        '{"table":"depth","data":[{"instrumentId":7}]}',
        '{"table":"depth","table":"depth","data":[{"instrumentId":"A"}]}',
        '{"event":"subscribe","data":[{"instrumentId":"A"}]}',
    ],
)
def test_ambiguous_frames_get_no_key(frame: str) -> None:
    assert peek_depth_key(frame) is None


def test_spacing_and_key_order_do_not_matter() -> None:
    frame = '{ "data" : [ { "instrumentId" : "ETH-USD" } ], "table" : "depthL10" }'
    assert peek_depth_key(frame) == "depthL10:ETH-USD"
    assert peek_depth_key(frame.encode()) is None  # bytes are decoded now, not peeked


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with serve(participants_rate=200, seed=5) as simulator:
        yield simulator


def _malformed_snapshot(market: str) -> str:
    """Routes as a depth snapshot of ``market`` by its text; its levels are not levels."""
    return orjson.dumps(
        {
            "table": "depth",
            "data": [{"instrumentId": market, "timestamp": "1", "asks": "oops", "bids": []}],
        }
    ).decode()


async def _until(predicate: Callable[[], bool]) -> None:
    with trio.fail_after(5):
        while not predicate():  # noqa: ASYNC110 - counters of the connection's own tasks
            await trio.sleep(0.01)


async def test_a_malformed_snapshot_is_reported_when_read_and_skipped(
    sim: Simulator, transport: TransportFactory
) -> None:
    async with (
        open_connection(sim.ws_url, transport=transport) as conn,
        conn.events() as events,
        conn.subscribe(channels.depth(MARKET), policy=Backpressure.BLOCK) as books,
    ):
        assert not isinstance(await books.receive(), StreamRestarted)
        # Both read as snapshots of MARKET; neither is one: bad levels, no snapshot at all.
        bad = [
            _malformed_snapshot(MARKET),
            f'{{"table":"depth","data":[],"instrumentId":"{MARKET}"}}',
        ]
        for frame in bad:
            sim.faults.inject(frame)
        # The bad frames are buffered, then skipped: the next item is a good one, typed.
        update = await books.receive()
        assert isinstance(update, DepthUpdate)
        assert update.data[0].market_code == MARKET
        assert update.data[0].best_bid is not None
        assert isinstance(update.data[0].best_bid.price, Decimal)
        await _until(lambda: conn.stats().malformed_frames == 2)
        reported: list[object] = []
        while len(reported) < 2:
            event = await events.receive()
            assert isinstance(event, ConnectionEvent)
            if event.kind == "malformed_frame":
                reported.append(event.payload)
        assert reported == bad


async def test_a_snapshot_conflated_away_unread_is_never_decoded(
    sim: Simulator, transport: TransportFactory
) -> None:
    async with (
        open_connection(sim.ws_url, transport=transport) as conn,
        conn.subscribe(channels.depth(MARKET)) as books,  # latest, capacity 1
    ):
        assert not isinstance(await books.receive(), StreamRestarted)
        frames = conn.stats().frames_in
        sim.faults.inject(_malformed_snapshot(MARKET))
        # Fresh snapshots replace it in the one-item buffer before the consumer looks.
        await _until(lambda: books.statistics().conflated >= 2)
        assert conn.stats().frames_in > frames
        update = await books.receive()
        assert isinstance(update, DepthUpdate)
        assert conn.stats().malformed_frames == 0
