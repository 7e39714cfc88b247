"""Encoding requests: exact frames per the parameter tables, validation, and reading them back."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexconn import channels
from flexconn.auth import Credentials
from flexconn.errors import RemoteProtocolError, ValidationError
from flexconn.models import (
    CancelOrder,
    CancelOrderRequest,
    CancelOrdersRequest,
    DepthLevel,
    LimitOrder,
    LoginRequest,
    MarketOrder,
    ModifyOrder,
    ModifyOrderRequest,
    ModifyOrdersRequest,
    Ping,
    PlaceOrderRequest,
    PlaceOrdersRequest,
    Request,
    Side,
    StopLimitOrder,
    SubscribeRequest,
    TimeInForce,
    UnknownRequest,
    UnsubscribeRequest,
)
from flexconn.protocol import (
    MAX_BATCH_SIZE,
    MAX_MESSAGE_LENGTH,
    encode,
    message_length,
    validate_order,
)
from flexconn.protocol.routing import login_request, subscribe_request, unsubscribe_request
from flexconn.sim.server_codec import decode_request
from flexconn.sim.signatures import verify_ws_login

D = Decimal
BTC = "BTC-USD-SWAP-LIN"


def _json(frame: str) -> Any:
    return orjson.loads(frame)


# --- exact frames, compared with the documents' request examples -----------------------------


def test_limit_order_frame() -> None:
    order = LimitOrder(BTC, Side.BUY, D("1.5"), D("9431.48"), client_order_id=1)
    assert _json(encode(PlaceOrderRequest(order=order, tag=123))) == {
        "op": "placeorder",
        "tag": 123,
        "data": {
            "clientOrderId": 1,
            "marketCode": BTC,
            "side": "BUY",
            "orderType": "LIMIT",
            "quantity": 1.5,
            "timeInForce": "GTC",
            "price": 9431.48,
        },
    }


def test_numbers_are_written_exactly() -> None:
    order = LimitOrder(BTC, Side.BUY, D("1.50"), D("9431.480000000000000001"))
    frame = encode(PlaceOrderRequest(order=order))
    assert '"quantity":1.50' in frame
    assert '"price":9431.480000000000000001' in frame
    assert '"tag"' not in frame


def test_market_order_frame() -> None:
    order = MarketOrder("ETH-USD-SWAP-LIN", Side.SELL, D(5), client_order_id=1)
    assert _json(encode(PlaceOrderRequest(order=order, tag=123))) == {
        "op": "placeorder",
        "tag": 123,
        "data": {
            "clientOrderId": 1,
            "marketCode": "ETH-USD-SWAP-LIN",
            "side": "SELL",
            "orderType": "MARKET",
            "quantity": 5,
        },
    }


def test_stop_limit_order_frame() -> None:
    order = StopLimitOrder(
        "ETH-USD-SWAP-LIN",
        Side.BUY,
        D(10),
        stop_price=D(100),
        limit_price=D(120),
        time_in_force=TimeInForce.MAKER_ONLY_REPRICE,
        client_order_id=1,
        timestamp=1638237934061,
        recv_window=500,
    )
    assert _json(encode(PlaceOrderRequest(order=order, tag=123)))["data"] == {
        "timestamp": 1638237934061,
        "recvWindow": 500,
        "clientOrderId": 1,
        "marketCode": "ETH-USD-SWAP-LIN",
        "side": "BUY",
        "orderType": "STOP",
        "quantity": 10,
        "timeInForce": "MAKER_ONLY_REPRICE",
        "stopPrice": 100,
        "limitPrice": 120,
    }


def test_batch_frames_use_data_array() -> None:
    place = PlaceOrdersRequest(
        orders=[
            LimitOrder(
                "ETH-USD-SWAP-LIN",
                Side.BUY,
                D(10),
                D(100),
                time_in_force=TimeInForce.MAKER_ONLY,
                client_order_id=1,
            ),
            MarketOrder("BTC-USD", Side.SELL, D("0.2"), client_order_id=2),
        ],
        tag=123,
    )
    assert _json(encode(place)) == {
        "op": "placeorders",
        "tag": 123,
        "dataArray": [
            {
                "clientOrderId": 1,
                "marketCode": "ETH-USD-SWAP-LIN",
                "side": "BUY",
                "orderType": "LIMIT",
                "quantity": 10,
                "timeInForce": "MAKER_ONLY",
                "price": 100,
            },
            {
                "clientOrderId": 2,
                "marketCode": "BTC-USD",
                "side": "SELL",
                "orderType": "MARKET",
                "quantity": 0.2,
            },
        ],
    }
    cancel = CancelOrdersRequest(orders=[CancelOrder(BTC, 12), CancelOrder("BCH-USD", 34)], tag=456)
    assert _json(encode(cancel)) == {
        "op": "cancelorders",
        "tag": 456,
        "dataArray": [
            {"marketCode": BTC, "orderId": 12},
            {"marketCode": "BCH-USD", "orderId": 34},
        ],
    }
    modify = ModifyOrdersRequest(
        orders=[
            ModifyOrder("ETH-USD-SWAP-LIN", 304304315061932310, side=Side.BUY, price=D(101)),
            ModifyOrder("BTC-USD", 304304315061864646, price=D(10001), quantity=D("0.21")),
        ],
        tag=123,
    )
    assert _json(encode(modify))["dataArray"] == [
        {
            "marketCode": "ETH-USD-SWAP-LIN",
            "orderId": 304304315061932310,
            "side": "BUY",
            "price": 101,
        },
        {"marketCode": "BTC-USD", "orderId": 304304315061864646, "price": 10001, "quantity": 0.21},
    ]


def test_cancel_and_modify_frames() -> None:
    assert _json(encode(CancelOrderRequest(order=CancelOrder(BTC, 12), tag=456))) == {
        "op": "cancelorder",
        "tag": 456,
        "data": {"marketCode": BTC, "orderId": 12},
    }
    modify = ModifyOrder(BTC, 888, side=Side.BUY, price=D(9800), quantity=D(2))
    assert _json(encode(ModifyOrderRequest(order=modify, tag=1))) == {
        "op": "modifyorder",
        "tag": 1,
        "data": {"marketCode": BTC, "orderId": 888, "side": "BUY", "price": 9800, "quantity": 2},
    }


def test_subscribe_and_login_frames() -> None:
    request = SubscribeRequest(channels=[channels.trade(BTC), "balance:all"], tag=1)
    assert _json(encode(request)) == {
        "op": "subscribe",
        "tag": 1,
        "args": ["trade:BTC-USD-SWAP-LIN", "balance:all"],
    }
    assert _json(encode(UnsubscribeRequest(channels=["depth:BTC-USD-SWAP-LIN"]))) == {
        "op": "unsubscribe",
        "args": ["depth:BTC-USD-SWAP-LIN"],
    }
    credentials = Credentials("key", "secret")
    login = _json(encode(login_request(credentials, timestamp_ms=1592491803978, tag="a")))
    assert login["op"] == "login"
    assert login["tag"] == "a"
    assert login["data"]["apiKey"] == "key"
    assert login["data"]["timestamp"] == "1592491803978"
    assert verify_ws_login("secret", "1592491803978", login["data"]["signature"])


def test_routing_request_builders() -> None:
    request = subscribe_request([channels.depth(BTC, DepthLevel.L25), "order:all"], tag=3)
    assert request == SubscribeRequest(channels=("depthL25:BTC-USD-SWAP-LIN", "order:all"), tag=3)
    assert unsubscribe_request(["order:all"]).channels == ("order:all",)


def test_ping() -> None:
    assert encode(Ping()) == "ping"
    assert decode_request("ping") == Ping()


# --- validation --------------------------------------------------------------------------------


def _place(order: Any, tag: Any = None) -> PlaceOrderRequest:
    return PlaceOrderRequest(order=order, tag=tag)


def _field_of(request: Request) -> str:
    with pytest.raises(ValidationError) as info:
        encode(request)
    return info.value.field


@pytest.mark.parametrize("tag", ["x" * 33, 10**32, "", True, 1.5])
def test_tag_rules(tag: Any) -> None:
    assert _field_of(_place(MarketOrder(BTC, Side.BUY, D(1)), tag=tag)) == "tag"


@pytest.mark.parametrize("tag", ["x" * 32, 2**63 - 1, 0, "123", -1])
def test_tags_accepted(tag: Any) -> None:
    frame = encode(_place(MarketOrder(BTC, Side.BUY, D(1)), tag=tag))
    assert _json(frame)["tag"] == tag


def test_big_integer_tag_is_refused() -> None:
    assert _field_of(_place(MarketOrder(BTC, Side.BUY, D(1)), tag=2**64)) == "tag"


@pytest.mark.parametrize("client_order_id", [0, -5, 2**63, True, "7"])
def test_client_order_id_is_a_positive_64_bit_integer(client_order_id: Any) -> None:
    order = LimitOrder(BTC, Side.BUY, D(1), D(100), client_order_id=client_order_id)
    assert _field_of(_place(order)) == "data.clientOrderId"


def test_largest_client_order_id_is_accepted() -> None:
    order = LimitOrder(BTC, Side.BUY, D(1), D(100), client_order_id=2**63 - 1)
    assert _json(encode(_place(order)))["data"]["clientOrderId"] == 2**63 - 1


@pytest.mark.parametrize("quantity", [D(0), D(-1), D("NaN"), D("Infinity"), 1.5])
def test_quantity_must_be_a_positive_decimal(quantity: Any) -> None:
    assert _field_of(_place(MarketOrder(BTC, Side.BUY, quantity))) == "data.quantity"


def test_limit_needs_a_positive_price() -> None:
    assert _field_of(_place(LimitOrder(BTC, Side.BUY, D(1), None))) == "data.price"  # type: ignore[arg-type]
    assert _field_of(_place(LimitOrder(BTC, Side.BUY, D(1), D(0)))) == "data.price"
    assert _field_of(_place(LimitOrder(BTC, Side.BUY, D(1), D("-3")))) == "data.price"


def test_stop_needs_both_prices() -> None:
    missing_stop = StopLimitOrder(BTC, Side.BUY, D(1), stop_price=None, limit_price=D(1))  # type: ignore[arg-type]
    assert _field_of(_place(missing_stop)) == "data.stopPrice"
    missing_limit = StopLimitOrder(BTC, Side.BUY, D(1), stop_price=D(1), limit_price=None)  # type: ignore[arg-type]
    assert _field_of(_place(missing_limit)) == "data.limitPrice"
    zero = StopLimitOrder(BTC, Side.SELL, D(1), stop_price=D(0), limit_price=D(1))
    assert _field_of(_place(zero)) == "data.stopPrice"


def test_stop_limit_price_side_rules() -> None:
    buy = StopLimitOrder(BTC, Side.BUY, D(1), stop_price=D(100), limit_price=D(99))
    assert _field_of(_place(buy)) == "data.limitPrice"
    sell = StopLimitOrder(BTC, Side.SELL, D(1), stop_price=D(100), limit_price=D(101))
    assert _field_of(_place(sell)) == "data.limitPrice"
    for side in Side:
        equal = StopLimitOrder(BTC, side, D(1), stop_price=D(100), limit_price=D(100))
        assert _json(encode(_place(equal)))["data"]["limitPrice"] == 100
    encode(_place(StopLimitOrder(BTC, Side.BUY, D(1), stop_price=D(100), limit_price=D(101))))
    encode(_place(StopLimitOrder(BTC, Side.SELL, D(1), stop_price=D(100), limit_price=D(99))))


def test_side_market_code_and_time_in_force_are_checked() -> None:
    assert _field_of(_place(MarketOrder(BTC, "HOLD", D(1)))) == "data.side"  # type: ignore[arg-type]
    assert _field_of(_place(MarketOrder("", Side.BUY, D(1)))) == "data.marketCode"
    tif = LimitOrder(BTC, Side.BUY, D(1), D(1), time_in_force="GTD")  # type: ignore[arg-type]
    assert _field_of(_place(tif)) == "data.timeInForce"
    late = MarketOrder(BTC, Side.BUY, D(1), recv_window=0)
    assert _field_of(_place(late)) == "data.recvWindow"


def test_cancel_and_modify_rules() -> None:
    assert _field_of(CancelOrderRequest(order=CancelOrder(BTC, 0))) == "data.orderId"
    assert _field_of(ModifyOrderRequest(order=ModifyOrder(BTC, 5))) == "data"
    bad_price = ModifyOrder(BTC, 5, price=D(0))
    assert _field_of(ModifyOrderRequest(order=bad_price)) == "data.price"
    bad_quantity = ModifyOrder(BTC, 5, quantity=D(-1))
    assert _field_of(ModifyOrderRequest(order=bad_quantity)) == "data.quantity"


def test_wrong_order_kind_for_the_command() -> None:
    wrong = PlaceOrderRequest(order=CancelOrder(BTC, 1))  # type: ignore[arg-type]
    assert _field_of(wrong) == "data"
    mixed = CancelOrdersRequest(orders=[CancelOrder(BTC, 1), ModifyOrder(BTC, 1, price=D(1))])  # type: ignore[list-item]
    assert _field_of(mixed) == "dataArray[1]"


def test_batch_size_limits() -> None:
    order = MarketOrder(BTC, Side.BUY, D(1))
    assert _field_of(PlaceOrdersRequest(orders=[])) == "dataArray"
    assert _field_of(PlaceOrdersRequest(orders=[order] * (MAX_BATCH_SIZE + 1))) == "dataArray"
    encode(PlaceOrdersRequest(orders=[order] * MAX_BATCH_SIZE))


def test_batch_errors_name_the_order() -> None:
    good = MarketOrder(BTC, Side.BUY, D(1))
    bad = MarketOrder(BTC, Side.BUY, D(0))
    assert _field_of(PlaceOrdersRequest(orders=[good, good, bad])) == "dataArray[2].quantity"


def test_message_length_limit() -> None:
    long_code = "X" * 180
    order = LimitOrder(long_code, Side.BUY, D(1), D(1), client_order_id=2**63 - 1)
    request = PlaceOrdersRequest(orders=[order] * MAX_BATCH_SIZE, tag="t" * 32)
    with pytest.raises(ValidationError) as info:
        encode(request)
    assert info.value.field == "dataArray"
    assert "4096" in info.value.message


def test_twenty_documented_size_orders_fit() -> None:
    # The documents: 20 orders of about 200 characters each fit in one message.
    order = StopLimitOrder(
        "BTC-USD-SWAP-LIN",
        Side.BUY,
        D("12.345"),
        stop_price=D("39999.5"),
        limit_price=D("40000.25"),
        time_in_force=TimeInForce.MAKER_ONLY_REPRICE,
        client_order_id=2**63 - 1,
    )
    one = encode(PlaceOrderRequest(order=order))
    envelope = len('{"op":"placeorder","data":}')
    assert 190 <= len(one) - envelope <= 200
    frame = encode(PlaceOrdersRequest(orders=[order] * 20, tag="t" * 32))
    assert message_length(frame) <= MAX_MESSAGE_LENGTH


def test_message_length_counts_utf8_bytes() -> None:
    assert message_length("é") == 2
    assert message_length(b"ab") == 2


def test_subscribe_rules() -> None:
    assert _field_of(SubscribeRequest(channels=[])) == "args"
    assert _field_of(SubscribeRequest(channels=["trade:BTC-USD", "nonsense"])) == "args[1]"
    assert _field_of(UnsubscribeRequest(channels=["trade:all"])) == "args[0]"


def test_login_rules() -> None:
    assert _field_of(LoginRequest(api_key="", timestamp="1", signature="s")) == "data.apiKey"
    assert _field_of(LoginRequest(api_key="k", timestamp="soon", signature="s")) == "data.timestamp"
    assert _field_of(LoginRequest(api_key="k", timestamp="1", signature="")) == "data.signature"


def test_validate_order_alone_uses_the_given_path() -> None:
    with pytest.raises(ValidationError) as info:
        validate_order(MarketOrder(BTC, Side.BUY, D(0)), "dataArray[4]")
    assert info.value.field == "dataArray[4].quantity"
    with pytest.raises(ValidationError):
        validate_order("not an order")


# --- decode_request ----------------------------------------------------------------------------


def test_decode_request_reads_the_documents_examples() -> None:
    limit = decode_request(
        '{"op": "placeorder", "tag": 123, "data": {"timestamp": 1638237934061, "recvWindow": 500,'
        ' "clientOrderId": 1, "marketCode": "BTC-USD-SWAP-LIN", "side": "BUY",'
        ' "orderType": "LIMIT", "quantity": 1.5, "timeInForce": "GTC", "price": 9431.48}}'
    )
    assert limit == PlaceOrderRequest(
        order=LimitOrder(
            BTC,
            Side.BUY,
            D("1.5"),
            D("9431.48"),
            client_order_id=1,
            timestamp=1638237934061,
            recv_window=500,
        ),
        tag=123,
    )
    stop = decode_request(
        '{"op": "placeorder", "tag": 123, "data": {"clientOrderId": 1, "marketCode": "X",'
        ' "side": "BUY", "orderType": "STOP_LIMIT", "quantity": 10, "stopPrice": 100,'
        ' "limitPrice": 120}}'
    )
    assert isinstance(stop, PlaceOrderRequest)
    assert isinstance(stop.order, StopLimitOrder)
    modify = decode_request(
        '{"op": "modifyorders", "tag": 123, "dataArray": [{"marketCode": "ETH-USD-SWAP-LIN",'
        ' "side": "BUY", "orderID": 304304315061932310, "price": 101}]}'
    )
    assert modify == ModifyOrdersRequest(
        orders=[ModifyOrder("ETH-USD-SWAP-LIN", 304304315061932310, side=Side.BUY, price=D(101))],
        tag=123,
    )
    login = decode_request(
        '{"op": "login", "tag": 1, "data": {"apiKey": "k", "timestamp": "1", "signature": "s"}}'
    )
    assert login == LoginRequest(api_key="k", timestamp="1", signature="s", tag=1)


def test_decode_request_unknown_op() -> None:
    frame = '{"op": "withdraw", "data": {}}'
    assert decode_request(frame) == UnknownRequest(op="withdraw", raw=frame)


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2]",
        '{"op": "placeorder", "data": {"orderType": "LIMIT"}}',
        '{"op": "placeorder", "data": {"orderType": "ICEBERG", "marketCode": "X"}}',
        '{"op": "placeorders", "dataArray": {"a": 1}}',
        '{"op": "subscribe", "args": "trade:X"}',
        '{"op": "cancelorder", "data": {"marketCode": "X", "orderId": "twelve"}}',
        '{"op": "placeorder", "data": {"orderType": "MARKET", "marketCode": "X", "side": "BUY",'
        ' "quantity": NaN}}',
        '{"op": "login", "tag": [1], "data": {}}',
        b"\xff\xfe",
    ],
)
def test_decode_request_malformed(frame: str | bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_request(frame)
    assert info.value.raw == frame


# --- round trips -------------------------------------------------------------------------------

_market_codes = st.from_regex(r"[A-Z0-9]{2,6}(-[A-Z0-9]{2,6}){0,3}", fullmatch=True)
_positive = st.decimals(min_value=D("0.00000001"), max_value=D(10**9), places=8)
_tags = st.none() | st.integers(min_value=0, max_value=10**18) | st.text(min_size=1, max_size=32)
_client_ids = st.none() | st.integers(min_value=1, max_value=2**63 - 1)
_order_ids = st.integers(min_value=1, max_value=2**63 - 1)
_windows = st.none() | st.integers(min_value=1, max_value=2**40)


@st.composite
def _stop_limits(draw: st.DrawFn) -> StopLimitOrder:
    side = draw(st.sampled_from(Side))
    low, high = sorted([draw(_positive), draw(_positive)])
    stop, limit = (low, high) if side is Side.BUY else (high, low)
    return StopLimitOrder(
        draw(_market_codes),
        side,
        draw(_positive),
        stop_price=stop,
        limit_price=limit,
        time_in_force=draw(st.sampled_from(TimeInForce)),
        client_order_id=draw(_client_ids),
        timestamp=draw(_windows),
        recv_window=draw(_windows),
    )


_limits = st.builds(
    LimitOrder,
    _market_codes,
    st.sampled_from(Side),
    _positive,
    _positive,
    time_in_force=st.sampled_from(TimeInForce),
    client_order_id=_client_ids,
    timestamp=_windows,
    recv_window=_windows,
)
_markets = st.builds(
    MarketOrder,
    _market_codes,
    st.sampled_from(Side),
    _positive,
    client_order_id=_client_ids,
    timestamp=_windows,
    recv_window=_windows,
)
_orders = _limits | _markets | _stop_limits()
_cancels = st.builds(CancelOrder, _market_codes, _order_ids)
_modifies = st.builds(
    ModifyOrder,
    _market_codes,
    _order_ids,
    side=st.sampled_from(Side),
    price=st.none() | _positive,
    quantity=st.none() | _positive,
    timestamp=_windows,
    recv_window=_windows,
)
_channel_names = st.sampled_from(
    [
        channels.trade("BTC-USD-SWAP-LIN"),
        channels.depth("ETH-USD-SWAP-LIN", DepthLevel.L10),
        channels.order(),
        channels.balance("USD"),
        channels.ticker(),
    ]
)
_requests = st.one_of(
    st.builds(PlaceOrderRequest, order=_orders, tag=_tags),
    st.builds(PlaceOrdersRequest, orders=st.lists(_orders, min_size=1, max_size=5), tag=_tags),
    st.builds(CancelOrderRequest, order=_cancels, tag=_tags),
    st.builds(CancelOrdersRequest, orders=st.lists(_cancels, min_size=1, max_size=20), tag=_tags),
    st.builds(ModifyOrderRequest, order=_modifies, tag=_tags),
    st.builds(ModifyOrdersRequest, orders=st.lists(_modifies, min_size=1, max_size=5), tag=_tags),
    st.builds(
        SubscribeRequest,
        channels=st.lists(_channel_names, min_size=1, max_size=4).map(tuple),
        tag=_tags,
    ),
    st.builds(
        UnsubscribeRequest,
        channels=st.lists(_channel_names, min_size=1, max_size=4).map(tuple),
        tag=_tags,
    ),
    st.builds(
        LoginRequest,
        api_key=st.text(min_size=1, max_size=40),
        timestamp=st.integers(min_value=0, max_value=2**45).map(str),
        signature=st.text(min_size=1, max_size=60),
        tag=_tags,
    ),
    st.just(Ping()),
)


@given(_requests)
def test_every_request_round_trips(request: Request) -> None:
    assert decode_request(encode(request)) == request
