"""Decoding never fails with anything but RemoteProtocolError, whatever the peer sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flexconn.errors import RemoteProtocolError
from flexconn.models import Greeting, Pong, UnknownMessage
from flexconn.protocol import decode
from flexconn.sim.server_codec import decode_request

FRAMES = sorted((Path(__file__).parent / "frames").glob("*.json"))
REAL = [case["frame"] for path in FRAMES for case in orjson.loads(path.read_bytes())["cases"]]

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["BUY", "buy", "LIMIT", "OrderOpened", "depth", "1592491945248", "NaN", "-1"])
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)


def _decodes_or_refuses(frame: str | bytes) -> None:
    try:
        decode(frame)
    except RemoteProtocolError as exc:
        assert exc.raw == frame


def _reads_or_refuses(frame: str | bytes) -> None:
    try:
        decode_request(frame)
    except RemoteProtocolError as exc:
        assert exc.raw == frame


@given(st.text(max_size=200))
def test_random_text(frame: str) -> None:
    _decodes_or_refuses(frame)
    _reads_or_refuses(frame)


@given(st.binary(max_size=200))
def test_random_bytes(frame: bytes) -> None:
    _decodes_or_refuses(frame)
    _reads_or_refuses(frame)


@given(_json)
def test_random_json(value: Any) -> None:
    frame = orjson.dumps(value).decode()
    _decodes_or_refuses(frame)
    _reads_or_refuses(frame)


_keys = st.sampled_from(
    [
        "table",
        "event",
        "data",
        "notice",
        "asks",
        "bids",
        "instrumentId",
        "marketCode",
        "orderId",
        "price",
        "quantity",
        "side",
        "status",
        "timestamp",
        "candle",
        "channel",
        "tag",
        "seqNum",
    ]
)


@st.composite
def _mutated(draw: st.DrawFn) -> Any:
    """A real frame with one value replaced, removed or retyped somewhere inside it."""
    frame = orjson.loads(orjson.dumps(draw(st.sampled_from(REAL))))
    node: Any = frame
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        if isinstance(node, dict) and node:
            child = node[draw(st.sampled_from(sorted(node)))]
        elif isinstance(node, list) and node:
            child = node[draw(st.integers(min_value=0, max_value=len(node) - 1))]
        else:
            break
        if not isinstance(child, dict | list) or not child:
            break
        node = child
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if isinstance(node, dict) and node:
        key = draw(st.sampled_from(sorted(node)))
        if action == "delete":
            del node[key]
        else:
            node[key if action == "replace" else draw(_keys)] = draw(_json)
    elif isinstance(node, list) and node:
        index = draw(st.integers(min_value=0, max_value=len(node) - 1))
        if action == "delete":
            del node[index]
        else:
            node[index] = draw(_json)
    return frame


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutated_real_frames(frame: Any) -> None:
    _decodes_or_refuses(orjson.dumps(frame).decode())


@given(st.sampled_from(REAL), st.data())
def test_truncated_and_corrupted_real_frames(frame: Any, data: st.DataObject) -> None:
    text = orjson.dumps(frame).decode()
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    _decodes_or_refuses(text[:cut])
    position = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    _decodes_or_refuses(text[:position] + data.draw(st.characters()) + text[position + 1 :])


def test_unknown_objects_are_kept_not_raised() -> None:
    for frame in [
        '{"table": "fundingRate", "data": [{"marketCode": "X"}]}',
        '{"event": "welcome"}',
        '{"hello": 1}',
        '{"table": ["order"]}',
        '{"event": 5}',
    ]:
        message = decode(frame)
        assert isinstance(message, UnknownMessage)
        assert message.raw == frame
        assert message.payload == orjson.loads(frame)


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "pong!",
        "[]",
        "null",
        '"text"',
        '{"table": "order", "data": {"notice": "OrderOpened"}}',
        '{"table": "order", "data": [{"notice": "OrderDeleted", "timestamp": "1"}]}',
        '{"table": "trade", "data": [{"side": "buy"}]}',
        '{"table": "depth", "data": [{"instrumentId": "X", "timestamp": "1", "asks": [[1]],'
        ' "bids": []}]}',
        '{"table": "depth", "data": [{"instrumentId": "X", "timestamp": "1", "asks": [["x", "1"]],'
        ' "bids": []}]}',
        '{"table": "futures/depth", "data": [{"instrumentId": "X", "timestamp": "yesterday",'
        ' "asks": [], "bids": []}]}',
        '{"table": "candle60s", "data": [{"marketCode": "X", "candle": ["1", "2"]}]}',
        '{"event": "login"}',
        '{"event": "placeorder", "submitted": "maybe"}',
        '{"event": "CANCEL", "submitted": true, "data": {"side": "UP"}}',
        '{"nonce": null}',
    ],
)
def test_known_but_unusable_frames_raise_remote_protocol_error(frame: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode(frame)
    assert info.value.raw == frame


def test_pong_and_greeting() -> None:
    assert decode("pong") == Pong()
    assert decode(b"pong") == Pong()
    assert decode(" pong\n") == Pong()
    assert decode('{"nonce": 123}') == Greeting(nonce="123")
