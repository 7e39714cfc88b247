"""The msgspec fast path gives exactly what the general path gives, or leaves the frame to it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flexconn.errors import RemoteProtocolError
from flexconn.models import OrderMatched, OrderOpened, OrderUpdate
from flexconn.protocol import decode
from flexconn.protocol.decode import _FAST_TABLES, _decode_general

NOTICE: dict[str, Any] = {
    "notice": "OrderMatched",
    "accountId": "3",
    "clientOrderId": "16",
    "orderId": "567531657",
    "price": "9300",
    "quantity": "20",
    "side": "BUY",
    "status": "FILLED",
    "marketCode": "BTC-USD-SWAP-LIN",
    "timeInForce": "GTC",
    "timestamp": "1592490254168",
    "matchId": "11568123",
    "matchPrice": "9300",
    "matchQuantity": "20",
    "orderMatchType": "MAKER",
    "remainQuantity": "0",
    "orderType": "LIMIT",
    "fees": "3.7",
    "feeInstrumentId": "FLEX",
    "isTriggered": "False",
}


def fast_decode(frame: str | bytes) -> Any:
    """The fast path alone: the update, or the exception that sends the frame elsewhere."""
    (_, _, fast), *_ = _FAST_TABLES
    return fast.decode(frame)


def general(frame: str | bytes) -> Any:
    try:
        return _decode_general(frame)
    except RemoteProtocolError:
        return RemoteProtocolError


def frames(notice: dict[str, Any]) -> list[str]:
    """The frame with ``table`` first (the exchange) and last (the simulator, orjson)."""
    return [
        orjson.dumps({"table": "order", "data": [notice]}).decode(),
        orjson.dumps({"data": [notice], "table": "order"}).decode(),
    ]


def test_the_order_table_has_a_fast_path() -> None:
    assert _FAST_TABLES


@pytest.mark.parametrize("frame", frames(NOTICE))
def test_a_documented_notice_takes_the_fast_path(frame: str) -> None:
    update = fast_decode(frame)
    assert type(update) is OrderUpdate
    (item,) = update.data
    assert type(item) is OrderMatched
    assert item.order_id == 567531657 and item.client_order_id == 16
    assert item.fees == Decimal("3.7") and item.is_triggered is False
    assert update == _decode_general(frame) == decode(frame) == decode(frame.encode())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("orderId", "1e3"),  # msgspec's lax mode would read 1000
        ("orderId", 3.0),
        ("orderId", True),
        ("isTriggered", "1"),
        ("isTriggered", 0),
        ("price", "NaN"),
        ("fees", "-Infinity"),
        ("side", "buy"),  # the codec reads any case: the general path's job
        ("accountId", 3),  # an int for a str: the codec's job
        ("notice", "OrderSomething"),
    ],
)
def test_what_the_fast_path_leaves_to_the_general_path(field: str, value: Any) -> None:
    for frame in frames({**NOTICE, field: value}):
        with pytest.raises(Exception):  # noqa: B017 - any failure means: fall back
            fast_decode(frame)
        expected = general(frame)
        if expected is RemoteProtocolError:
            with pytest.raises(RemoteProtocolError):
                decode(frame)
        else:
            assert decode(frame) == expected


@pytest.mark.parametrize(("field", "value"), [("orderType", "STOP LIMIT"), ("status", "FILL")])
def test_enum_aliases_read_by_the_enum_itself_agree(field: str, value: str) -> None:
    for frame in frames({**NOTICE, field: value}):
        assert fast_decode(frame) == _decode_general(frame)


def test_other_spellings_of_field_names_primary_wins() -> None:
    notice = {**NOTICE, "clientOrderID": "99", "matchID": "7"}
    del notice["matchId"]
    for frame in frames(notice):
        (item,) = fast_decode(frame).data
        assert item.client_order_id == 16 and item.match_id == 7
        assert fast_decode(frame) == _decode_general(frame)


def test_json_numbers_keep_every_digit_on_the_fast_path() -> None:
    frame = frames({**NOTICE, "fees": 0})[0].replace('"fees":0', '"fees":1.10')
    update = decode(frame)
    assert isinstance(update, OrderUpdate)
    (item,) = update.data
    assert isinstance(item, OrderMatched)
    assert str(item.fees) == "1.10"
    assert decode(frame) == _decode_general(frame)  # equal as numbers


_ints = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 10**12).map(str),
    st.sampled_from(["1e3", "12.0", " 7 ", "+5", "0x1", "", "1_000"]),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: float(f"{x:.6g}")),
    st.booleans(),
)
_decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
    st.integers(-(10**12), 10**12),
    st.floats(-1e9, 1e9).map(lambda x: float(f"{x:.8g}")),
    st.sampled_from(["NaN", "inf", "-Infinity", "sNaN", "1.5e3", " 2 ", "abc", "1_0"]),
)
_bools = st.one_of(
    st.booleans(), st.sampled_from(["True", "False", "true", "FALSE", "1", "0", " true"])
)
_enums = st.sampled_from(["BUY", "SELL", "buy", "Sell", "LIMIT", "MARKET", "STOP LIMIT", "x"])
_maybe_missing = st.none()


@settings(max_examples=300, deadline=None)
@given(
    notice_name=st.sampled_from(
        ["OrderOpened", "OrderModified", "OrderClosed", "OrderRejected", "OrderMatched", "Nope"]
    ),
    ints=st.dictionaries(
        st.sampled_from(["orderId", "clientOrderId", "clientOrderID", "timestamp", "matchId"]),
        _ints,
    ),
    decimals=st.dictionaries(
        st.sampled_from(["price", "quantity", "matchPrice", "fees", "remainQuantity"]), _decimals
    ),
    bools=st.dictionaries(st.just("isTriggered"), _bools),
    enums=st.dictionaries(st.sampled_from(["side", "orderType", "ordertype"]), _enums),
    dropped=st.sets(st.sampled_from(sorted(NOTICE))),
    extra=st.dictionaries(st.sampled_from(["source", "x", "matchID"]), st.integers(0, 2**40)),
)
def test_the_fast_path_agrees_with_the_general_path(
    notice_name: str,
    ints: dict[str, Any],
    decimals: dict[str, Any],
    bools: dict[str, Any],
    enums: dict[str, Any],
    dropped: set[str],
    extra: dict[str, Any],
) -> None:
    notice = {**NOTICE, "notice": notice_name, **ints, **decimals, **bools, **enums, **extra}
    for key in dropped:
        notice.pop(key, None)
    for frame in frames(notice):
        expected = general(frame)
        try:
            got = fast_decode(frame)
        except Exception:
            got = None  # left to the general path, which decode() then takes
        if got is not None:
            assert got == expected
        if expected is RemoteProtocolError:
            with pytest.raises(RemoteProtocolError):
                decode(frame)
        else:
            assert decode(frame) == expected


def test_a_batch_of_notices_decodes_fast() -> None:
    opened = {**NOTICE, "notice": "OrderOpened", "status": "OPEN"}
    for key in ("matchId", "matchPrice", "matchQuantity", "orderMatchType", "fees"):
        opened.pop(key)
    frame = orjson.dumps({"table": "order", "data": [opened, NOTICE]}).decode()
    update = fast_decode(frame)
    assert [type(item) for item in update.data] == [OrderOpened, OrderMatched]
    assert update == _decode_general(frame)
