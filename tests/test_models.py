"""The typed models: construction, depth snapshots, routing, and round trips through the wire."""

from __future__ import annotations

import subprocess
import sys
import types
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Union, get_args, get_origin

import attrs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flexconn.models
import flexconn.protocol
from flexconn.models import (
    Balance,
    BalanceUpdate,
    CancelAllNotice,
    CancelOrder,
    Candle,
    CandleGranularity,
    CandleUpdate,
    DepthLevel,
    DepthSnapshot,
    DepthUpdate,
    ErrorReply,
    FailedOrder,
    Greeting,
    LimitOrder,
    LoginReply,
    MarketInfo,
    MarketOrder,
    MarketUpdate,
    ModifyOrder,
    OrderAction,
    OrderClosed,
    OrderEcho,
    OrderFailureNotice,
    OrderMatched,
    OrderModified,
    OrderOpened,
    OrderRejected,
    OrderReply,
    OrderType,
    OrderUpdate,
    Pong,
    Position,
    PositionUpdate,
    PriceLevel,
    Side,
    StopLimitOrder,
    SubscribeReply,
    Ticker,
    TickerUpdate,
    TimeInForce,
    Trade,
    TradeUpdate,
    UnsubscribeReply,
)
from flexconn.protocol import decode
from flexconn.protocol.codec import converter
from flexconn.protocol.routing import route, subscription_keys
from flexconn.sim.server_codec import encode_message

D = Decimal
BTC = "BTC-USD-SWAP-LIN"


# --- order specs -------------------------------------------------------------------------------


def test_order_specs_construct_as_documented() -> None:
    limit = LimitOrder(
        BTC, Side.BUY, D("1"), D("100"), time_in_force=TimeInForce.GTC, client_order_id=None
    )
    assert (limit.market_code, limit.side, limit.quantity, limit.price) == (
        BTC,
        Side.BUY,
        D(1),
        D(100),
    )
    assert limit.order_type is OrderType.LIMIT
    market = MarketOrder(BTC, Side.SELL, D("2"), client_order_id=5)
    assert market.order_type is OrderType.MARKET
    stop = StopLimitOrder(BTC, Side.BUY, D("1"), stop_price=D("100"), limit_price=D("101"))
    assert stop.order_type is OrderType.STOP
    assert stop.time_in_force is TimeInForce.GTC
    assert CancelOrder(BTC, 12).order_id == 12
    modify = ModifyOrder(BTC, 888, side=None, price=D("9800"), quantity=None)
    assert (modify.order_id, modify.price, modify.side, modify.quantity) == (
        888,
        D(9800),
        None,
        None,
    )


def test_order_specs_are_frozen_with_keyword_only_options() -> None:
    limit = LimitOrder(BTC, Side.BUY, D("1"), D("100"))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        limit.price = D(1)  # type: ignore[misc]
    with pytest.raises(TypeError):
        LimitOrder(BTC, Side.BUY, D("1"), D("100"), TimeInForce.IOC)  # type: ignore[call-arg]


def test_time_helpers() -> None:
    trade = Trade(
        market_code=BTC,
        trade_id=1,
        price=D(1),
        quantity=D(1),
        side=Side.BUY,
        timestamp=1594299886890,
    )
    assert trade.time == datetime(2020, 7, 9, 13, 4, 46, 890000, tzinfo=UTC)


# --- depth snapshots ---------------------------------------------------------------------------

_DEPTH = (
    '{"table": "depthL25", "data": [{"instrumentId": "BTC-USD-SWAP-LIN", "seqNum": 5,'
    ' "timestamp": "1609350022785", "checksum": 42,'
    ' "asks": [[5556.82, 11, 0, 0], [5556.84, 98.13, 0, 0]],'
    ' "bids": [[5556.81, 1.92, 0, 0], [5556.8, 2.1, 0, 0]]}]}'
)


def test_depth_levels_are_typed_on_first_access_and_cached() -> None:
    update = decode(_DEPTH)
    assert isinstance(update, DepthUpdate)
    snapshot = update.data[0]
    assert snapshot.raw_asks == [[5556.82, 11, 0, 0], [5556.84, 98.13, 0, 0]]
    asks = snapshot.asks
    assert asks == (PriceLevel(D("5556.82"), D("11")), PriceLevel(D("5556.84"), D("98.13")))
    assert snapshot.asks is asks
    assert snapshot.bids[0] == PriceLevel(D("5556.81"), D("1.92"))
    assert (snapshot.seq_num, snapshot.checksum, snapshot.timestamp) == (5, 42, 1609350022785)
    assert snapshot.level is DepthLevel.L25
    assert snapshot.time == datetime(2020, 12, 30, 17, 40, 22, 785000, tzinfo=UTC)


def test_depth_equality_compares_typed_levels_not_wire_forms() -> None:
    numbers = DepthSnapshot(
        market_code=BTC, level=DepthLevel.FULL, timestamp=1, raw_asks=[[1.5, 2, 0, 0]], raw_bids=[]
    )
    strings = DepthSnapshot.from_levels(
        market_code=BTC, level=DepthLevel.FULL, timestamp=1, asks=[(D("1.50"), D(2))], bids=[]
    )
    assert numbers == strings
    assert numbers != attrs.evolve(strings, timestamp=2)
    with pytest.raises(TypeError):
        hash(numbers)


def test_depth_levels_come_best_first() -> None:
    snapshot = DepthSnapshot.from_levels(
        market_code=BTC,
        level=DepthLevel.FULL,
        timestamp=1,
        asks=[(D(3), D(1)), (D(1), D(1)), (D(2), D(1))],
        bids=[(D(1), D(1)), (D(3), D(1)), (D(2), D(1))],
    )
    assert [level.price for level in snapshot.asks] == [D(1), D(2), D(3)]
    assert [level.price for level in snapshot.bids] == [D(3), D(2), D(1)]
    assert snapshot.best_ask == PriceLevel(D(1), D(1))
    assert snapshot.best_bid == PriceLevel(D(3), D(1))


# --- routing -----------------------------------------------------------------------------------


def _trade(market: str) -> Trade:
    return Trade(
        market_code=market, trade_id=1, price=D(1), quantity=D(1), side=Side.BUY, timestamp=1
    )


def test_split_keeps_a_single_key_update_whole() -> None:
    update = TradeUpdate(data=(_trade("A"), _trade("A")))
    assert update.split() == (("trade:A", update),)
    assert update.keys() == ("trade:A",)


def test_split_groups_items_by_key_in_order() -> None:
    update = TradeUpdate(data=(_trade("A"), _trade("B"), _trade("A")))
    parts = update.split()
    assert [key for key, _ in parts] == ["trade:A", "trade:B"]
    assert parts[0][1].data == (_trade("A"), _trade("A"))
    assert parts[1][1].data == (_trade("B"),)


def test_order_notice_without_market_routes_to_all() -> None:
    rejected = OrderRejected(status=flexconn.models.OrderStatus.REJECT_QUANTITY_ZERO, timestamp=1)
    assert OrderUpdate(data=(rejected,)).keys() == ("order:all",)


def test_subscription_keys_add_the_wildcard_where_it_exists() -> None:
    assert subscription_keys("order:BTC-USD") == ("order:BTC-USD", "order:all")
    assert subscription_keys("balance:USD") == ("balance:USD", "balance:all")
    assert subscription_keys("ticker:all") == ("ticker:all",)
    assert subscription_keys("trade:BTC-USD") == ("trade:BTC-USD",)
    assert subscription_keys("depthL25:BTC-USD") == ("depthL25:BTC-USD",)


def test_route_ignores_replies_and_connection_messages() -> None:
    assert route(Pong()) is None
    assert route(LoginReply(success=True)) is None
    assert route(Greeting(nonce="n")) is None


def test_order_reply_action_sees_through_the_modify_slip() -> None:
    echo = OrderEcho(order_id=5, price=D(1), market_code=BTC)
    assert OrderReply(event="placeorder", submitted=False, data=echo).action is OrderAction.MODIFY
    placed = OrderEcho(order_id=5, order_type=OrderType.LIMIT)
    assert OrderReply(event="placeorder", submitted=True, data=placed).action is OrderAction.PLACE
    assert OrderReply(event="cancelorders", submitted=True).action is OrderAction.CANCEL


# --- public surface ----------------------------------------------------------------------------


def test_models_public_surface() -> None:
    public = {
        name
        for name in dir(flexconn.models)
        if not name.startswith("_")
        and not isinstance(getattr(flexconn.models, name), types.ModuleType)
    }
    assert set(flexconn.models.__all__) == public
    for name in flexconn.models.__all__:
        assert getattr(flexconn.models, name) is not None


def test_protocol_public_surface() -> None:
    assert set(flexconn.protocol.__all__) == {
        "MAX_BATCH_SIZE",
        "MAX_CLIENT_ORDER_ID",
        "MAX_MESSAGE_LENGTH",
        "MAX_TAG_LENGTH",
        "PING_FRAME",
        "PONG_FRAME",
        "ChannelMessage",
        "Message",
        "codec",
        "decode",
        "encode",
        "message_length",
        "validate",
        "validate_order",
    }
    assert flexconn.protocol.MAX_MESSAGE_LENGTH == 4096


@pytest.mark.parametrize(
    "module",
    [
        "flexconn.models.notices",
        "flexconn.protocol.decode",
        "flexconn.channels",
        "flexconn.protocol.routing",
    ],
)
def test_any_module_can_be_imported_first(module: str) -> None:
    # Whichever module a program imports first, the package loads completely.
    code = (
        f"import {module}\n"
        "from flexconn.protocol import decode\n"
        "import types\n"
        "assert isinstance(decode, types.FunctionType), decode\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- round trips through the wire --------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_exact = st.decimals(
    allow_nan=False, allow_infinity=False, min_value=-(10**20), max_value=10**20, places=10
)
# Decimals written as JSON numbers are read back through a double: 15 significant digits.
_double = st.decimals(
    allow_nan=False, allow_infinity=False, min_value=-(10**8), max_value=10**8, places=6
)
_ids = st.integers(min_value=0, max_value=2**63 - 1)


def _strategy(tp: Any, *, strings: bool) -> st.SearchStrategy[Any]:
    if get_origin(tp) in (Union, types.UnionType):
        return st.one_of([_strategy(arg, strings=strings) for arg in get_args(tp)])
    if tp is type(None):
        return st.none()
    if tp is Decimal:
        return _exact if strings else _double
    if tp is int:
        return _ids
    if tp is str:
        return _text
    if tp is bool:
        return st.booleans()
    if isinstance(tp, type) and issubclass(tp, Enum):
        return st.sampled_from(tp)
    if attrs.has(tp):
        return _model(tp)
    raise AssertionError(f"no strategy for {tp!r}")


def _model(cls: type[Any], **overrides: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    attrs.resolve_types(cls)
    strings = bool(getattr(cls, "__flexconn_decimal_strings__", False))
    fields = {
        f.name: overrides[f.name] if f.name in overrides else _strategy(f.type, strings=strings)
        for f in attrs.fields(cls)
        if f.init
    }
    return st.builds(cls, **fields)


def _items(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(strategy, max_size=3).map(tuple)


_levels = st.lists(st.tuples(_double, _double), max_size=5)
_snapshots = st.builds(
    DepthSnapshot.from_levels,
    market_code=_text,
    level=st.sampled_from([DepthLevel.FULL, DepthLevel.L5, DepthLevel.L10, DepthLevel.L25]),
    timestamp=_ids,
    asks=_levels,
    bids=_levels,
    seq_num=st.none() | _ids,
    checksum=st.none() | st.integers(min_value=-(2**31), max_value=2**32),
)
_futures_snapshots = st.builds(
    DepthSnapshot.from_levels,
    market_code=_text,
    level=st.just(DepthLevel.FUTURES),
    timestamp=st.integers(min_value=0, max_value=4 * 10**12),
    asks=st.lists(st.tuples(_exact, _exact), max_size=5),
    bids=st.lists(st.tuples(_exact, _exact), max_size=5),
)
_order_events = st.one_of(
    [_model(cls) for cls in (OrderOpened, OrderModified, OrderClosed, OrderRejected, OrderMatched)]
)

_messages = st.one_of(
    _model(LoginReply, tag=st.none() | _text),
    _model(SubscribeReply, channels=_items(_text)),
    _model(UnsubscribeReply, channels=_items(_text)),
    _model(
        OrderReply,
        event=st.sampled_from(["placeorder", "cancelorder", "modifyorder"]),
        data=st.none() | _model(OrderEcho),
    ),
    _model(ErrorReply),
    _model(
        OrderFailureNotice, event=st.sampled_from(["CANCEL", "AMEND"]), data=_model(FailedOrder)
    ),
    _model(CancelAllNotice),
    _model(Greeting),
    st.just(Pong()),
    st.builds(TradeUpdate, data=_items(_model(Trade))),
    st.builds(TickerUpdate, data=_items(_model(Ticker))),
    st.builds(MarketUpdate, data=_items(_model(MarketInfo))),
    st.builds(
        CandleUpdate, granularity=st.sampled_from(CandleGranularity), data=_items(_model(Candle))
    ),
    _model(BalanceUpdate, data=_items(_model(Balance))),
    _model(PositionUpdate, data=_items(_model(Position))),
    st.builds(OrderUpdate, data=_items(_order_events)),
    st.builds(
        lambda snapshots: (
            DepthUpdate(level=snapshots[0].level, data=tuple(snapshots))
            if snapshots
            else DepthUpdate(level=DepthLevel.FULL, data=())
        ),
        st.lists(_snapshots, max_size=2).map(
            lambda items: [attrs.evolve(s, level=items[0].level) for s in items]
        ),
    ),
    st.builds(lambda s: DepthUpdate(level=DepthLevel.FUTURES, data=(s,)), _futures_snapshots),
)


@settings(max_examples=300)
@given(_messages)
def test_every_reply_notice_and_update_round_trips(message: Any) -> None:
    if isinstance(message, Pong):
        frame = encode_message(message)
    else:
        frame = orjson.dumps(converter.unstructure(message)).decode()
        assert frame == encode_message(message)
    assert decode(frame) == message
