"""REST models: the documents' example bodies decode to the right values, and round trips."""

from __future__ import annotations

import inspect
import json
from decimal import Decimal
from enum import Enum
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

import attrs
import pytest
from cattrs.errors import ClassValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from flexconn.models import rest
from flexconn.models.enums import (
    CandleGranularity,
    MatchType,
    OrderNotice,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from flexconn.protocol.codec import converter, dumps, loads

FRAMES = Path(__file__).parent / "frames" / "rest"


def frame(name: str) -> Any:
    return json.loads((FRAMES / f"{name}.json").read_text())


def decode(name: str, cls: type[Any]) -> Any:
    return converter.structure(frame(name), cls)


def wire(obj: object) -> Any:
    return loads(dumps(obj))


# --- the documented examples ------------------------------------------------------------------


def test_accountinfo_both_eras() -> None:
    old = decode("accountinfo_2020", rest.AccountInfoReply)
    assert old.success is True and old.code == "0000" and old.message is None
    assert old.data[0].risk_ratio == Decimal("20.0000")
    assert old.data[0].timestamp == 1235445
    new = decode("accountinfo", rest.AccountInfoReply)
    assert new.account_id == "677473"
    assert new.timestamp == 1648800334773
    info = new.data[0]
    assert info.total_balance == Decimal("33860283.6914636")
    assert info.collateral_balance == Decimal("28661274.5806472")
    assert info.portfolio_var_margin == Decimal("910198.2835522")
    assert wire(new) == frame("accountinfo")


def test_balances() -> None:
    reply = decode("balances", rest.BalancesReply)
    assert reply.trade_type == "LINEAR"
    assert [b.instrument_id for b in reply.data] == ["1INCH", "AAVE"]
    assert reply.data[1].quantity_last_updated == 1646413705827
    assert reply.data[0].total == Decimal("100.00000000")
    assert wire(reply) == frame("balances")
    old = decode("balances_2020", rest.BalancesReply)
    assert old.data[1].reserved == Decimal("1260")
    assert old.data[1].available == Decimal("325.890")


def test_balances_by_id_list_or_object() -> None:
    listed = decode("balances_by_id_list", rest.BalancesReply)
    single = decode("balances_by_id_object", rest.BalancesReply)
    assert listed.event == single.event == "balancesById"
    assert listed.timestamp == 1593627415293
    assert [b.instrument_id for b in listed.data] == ["FLEX"]
    assert single.data[0].total == Decimal("695180.143917630")


def test_positions_eras_and_shapes() -> None:
    reply = decode("positions", rest.PositionsReply)
    eth = reply.data[0]
    assert eth.quantity == Decimal("-461.64")
    assert eth.est_liquidation_price == Decimal("64473.25")
    assert eth.last_updated == 1648518794680
    assert wire(reply) == frame("positions")
    old = decode("positions_2020", rest.PositionsReply).data[0]
    assert old.est_liquidation_price == Decimal("2342.2")  # estLiqPrice is the documented one
    one = decode("positions_by_id_object", rest.PositionsReply)
    assert one.data[0].position_pnl == Decimal("-387.4240")
    assert decode("positions_by_id_empty", rest.PositionsReply).data == ()


def test_account_trades() -> None:
    reply = decode("trades", rest.AccountTradesReply)
    maker, taker = reply.data
    assert maker.match_id == 448821476099870304
    assert maker.fee_instrument_id is None
    assert maker.order_match_type is MatchType.MAKER
    assert maker.client_order_id == 1612249737434
    assert taker.total == Decimal("96.800000000000000000")
    assert taker.side is Side.SELL
    assert wire(reply) == frame("trades")


def test_open_orders_both_eras() -> None:
    new = decode("orders", rest.OpenOrdersReply).data[0]
    assert new.order_id == 1000200608142
    assert new.remaining_quantity == Decimal("1.0")
    assert new.stop_price is None and new.limit_price == Decimal("10.0")
    assert new.order_created == 1648809816385
    assert new.time_in_force is TimeInForce.GTC
    assert wire(decode("orders", rest.OpenOrdersReply)) == frame("orders")
    old = decode("orders_2020", rest.OpenOrdersReply).data[0]
    assert old.remaining_quantity == Decimal("1.00")
    assert old.order_type is OrderType.STOP
    assert old.price is None and old.client_order_id is None
    assert old.last_trade_timestamp == 1593617008698


def test_orders_v21() -> None:
    reply = decode("orders_v21", rest.OrderRecordsReply)
    closed, opened, matched, partial = reply.data
    assert closed.status is rest.OrderRecordStatus.CLOSED
    assert closed.order_closed_timestamp == 1619131050779
    assert opened.order_opened_timestamp == 1619131049574
    assert matched.fees == {"FLEX": Decimal("-0.00440786")}
    assert matched.is_triggered is False
    assert matched.match_ids == (
        rest.OrderMatch(
            match_id=448528458527567630,
            match_quantity=Decimal("12.1"),
            match_price=Decimal("0.170"),
            timestamp=1618870088471,
            order_match_type=MatchType.TAKER,
        ),
    )
    assert partial.match_ids is not None and len(partial.match_ids) == 2
    assert partial.filled_quantity == Decimal("0.002")
    assert partial.time_in_force is None
    assert wire(reply) == frame("orders_v21")


def test_cancel_all_shapes() -> None:
    everything = decode("cancel_all", rest.CancelAllReply)
    assert everything.data.msg.startswith("All open orders for the account")
    assert everything.data.market_code is None
    assert wire(everything) == frame("cancel_all")
    market = decode("cancel_all_market", rest.CancelAllReply)
    assert market.data.market_code == "BTC-USD-SWAP-LIN"
    assert wire(market) == frame("cancel_all_market")
    old = decode("cancel_all_market_2020", rest.CancelAllReply)
    assert old.market_code == "BTC-USD"
    assert old.data.msg.endswith("queued for cancellation")


def test_delivery() -> None:
    history = decode("delivery_orders", rest.DeliveryOrdersReply)
    assert history.timestamp == 1596685339910
    delivered, pending = history.data
    assert delivered.quantity is None and delivered.status == "DELIVERED"
    assert delivered.deliver_order_id == 575770851486007299
    assert pending.quantity == Decimal("0.100000000")
    assert wire(history)["data"] == frame("delivery_orders")["data"]
    submitted = decode("delivery_submit", rest.DeliverySubmitReply)
    sub = submitted.data[0]
    assert sub.deliver_type == "NEXT_CYCLE" and sub.status == "PENDING"
    assert sub.transfer_qty == Decimal("4528.500")
    assert sub.auction_time == 1648801949919
    assert wire(submitted) == frame("delivery_submit")
    assert decode("delivery_cancel_ok", rest.DeliveryCancelReply).cancelled
    assert not decode("delivery_cancel_failed", rest.DeliveryCancelReply).cancelled
    auction = decode("deliver_auction", rest.DeliverAuctionReply).data[0]
    assert auction.net_deliver == Decimal("-5.100000000")
    assert auction.est_funding_rate == Decimal("0.0001")


def test_markets_both_eras_and_assets() -> None:
    new = decode("markets", rest.MarketsReply).data[0]
    assert new.market_id == 2001000000000
    assert new.listing_date == 2208988800000 and new.end_date == 0
    assert new.market_price_last_updated == 1620810131131
    assert wire(decode("markets", rest.MarketsReply)) == frame("markets")
    old = decode("markets_2020", rest.MarketsReply).data[0]
    assert old.listing_date == -2208988800000
    assert old.end_date is None and old.margin_currency is None
    assert old.tick_size == Decimal("0.1")
    assets = decode("assets", rest.AssetsReply)
    assert assets.data[1].base is None and assets.data[1].type == "SPOT"
    assert wire(assets) == frame("assets")


def test_public_market_data() -> None:
    trades = decode("public_trades", rest.PublicTradesReply)
    assert trades.market_code == "BTC-USD-SWAP-LIN"
    assert trades.data[0].match_price == Decimal("9600.000000000")
    assert wire(trades) == frame("public_trades")
    ticker = decode("ticker", rest.TickerReply).data[0]
    assert ticker.mark_price == Decimal("11012.80409769")
    assert ticker.currency_volume24h == Decimal("1025.7")
    assert ticker.open_interest == Decimal("1726003")
    assert wire(decode("ticker", rest.TickerReply)) == frame("ticker")
    depth = decode("depth", rest.DepthReply)
    assert depth.event == "depthL5"
    book = depth.data[0]
    assert book.asks[0] == (Decimal("54792"), Decimal("0.001"))
    assert book.bids[-1] == (Decimal("54745.5"), Decimal("0.339"))
    assert book.timestamp == 1615457834388
    assert wire(depth) == frame("depth")
    candles = decode("candles", rest.CandlesReply)
    assert candles.timeframe is CandleGranularity.S60
    assert candles.data[1].high == Decimal("51833.00000000")
    assert wire(candles) == frame("candles")
    funding = decode("funding_rates", rest.FundingRatesReply).data[0]
    assert funding.funding_rate == Decimal("0.00008")
    assert funding.timestamp == 1606461774458
    public = converter.structure(frame("public_funding"), tuple[rest.PublicFunding, ...])
    assert public[0].timestamp == 1607400000000  # 2020-12-08 04:00:00 UTC
    assert public[1].funding_rate == Decimal("0.000060000")
    assert wire(public) == frame("public_funding")
    assert converter.structure(frame("ping"), rest.Ping).success is True
    assert wire(rest.Ping(success=True)) == frame("ping")


def test_order_results() -> None:
    placed = decode("place_orders", rest.OrderResultsReply)
    refused, opened, matched = placed.data
    assert refused.success is False and refused.code == "710006"
    assert refused.order_id is None
    assert opened.notice is OrderNotice.OPENED and opened.status is OrderStatus.OPEN
    assert opened.match_id == 0 and opened.is_triggered is False
    assert matched.status is OrderStatus.PARTIAL_FILL
    assert matched.fees == Decimal("0.00170064") and matched.fee_instrument_id == "FLEX"
    assert matched.remain_quantity == Decimal("0.099")
    assert wire(placed) == frame("place_orders")
    modified = decode("modify_orders", rest.OrderResultsReply)
    assert modified.data[0].code == "40032"
    assert wire(modified) == frame("modify_orders")
    cancelled = decode("cancel_orders", rest.OrderResultsReply)
    assert cancelled.data[0].status is OrderStatus.CANCELED_BY_USER
    assert cancelled.data[1].message == "Open order not found with id"
    assert wire(cancelled) == frame("cancel_orders")


_ACCOUNT_ID_BODIES = [
    ("accountinfo", rest.AccountInfoReply),
    ("balances_2020", rest.BalancesReply),
    ("positions_2020", rest.PositionsReply),
    ("trades", rest.AccountTradesReply),
    ("orders_2020", rest.OpenOrdersReply),
    ("orders_v21", rest.OrderRecordsReply),
    ("cancel_all_market_2020", rest.CancelAllReply),
    ("place_orders", rest.OrderResultsReply),
    ("delivery_submit", rest.DeliverySubmitReply),
    ("delivery_cancel_ok", rest.DeliveryCancelReply),
]


def _with_account_id(body: Any, value: object) -> Any:
    """``body`` with every ``accountId`` (nested ones too) replaced by ``value``."""
    if isinstance(body, dict):
        return {
            k: value if k == "accountId" else _with_account_id(v, value) for k, v in body.items()
        }
    if isinstance(body, list):
        return [_with_account_id(item, value) for item in body]
    return body


def _account_ids(obj: object) -> list[object]:
    found: list[object] = []
    cls = type(obj)
    if attrs.has(cls):
        for field in attrs.fields(cls):
            value = getattr(obj, field.name)
            if field.name == "account_id":
                found.append(value)
            else:
                found += _account_ids(value)
    elif isinstance(obj, tuple):
        for item in obj:
            found += _account_ids(item)
    return found


@pytest.mark.parametrize(("name", "cls"), _ACCOUNT_ID_BODIES)
@pytest.mark.parametrize(
    ("given", "expected"),
    [("<Your Account ID>", "<Your Account ID>"), ("677473", "677473"), (677473, "677473")],
)
def test_account_id_is_a_string_whatever_the_body_holds(
    name: str, cls: type[Any], given: object, expected: str
) -> None:
    # The documents type accountId STRING and show placeholders; a number is read leniently.
    reply = converter.structure(_with_account_id(frame(name), given), cls)
    ids = _account_ids(reply)
    assert ids and all(value == expected for value in ids), ids


def test_error_reply() -> None:
    err = decode("error", rest.RestErrorReply)
    assert (err.success, err.code, err.message) == (False, "20000", "Signature is invalid")
    assert wire(err) == frame("error")


# --- requests encode as the parameter tables say ----------------------------------------------


def test_requests_encode_as_documented() -> None:
    place = rest.PlaceOrdersRequest(
        recv_window=20000,
        timestamp=1615430912440,
        orders=(
            rest.RestPlaceOrder(
                client_order_id=1612249737724,
                market_code="BTC-USD-SWAP-LIN",
                side=Side.SELL,
                quantity=Decimal("0.001"),
                time_in_force=TimeInForce.GTC,
                order_type=OrderType.LIMIT,
                price=Decimal("50007"),
            ),
        ),
    )
    assert wire(place) == frame("place_request")
    modify = rest.ModifyOrdersRequest(
        recv_window=13000,
        timestamp=1614331650143,
        orders=(
            rest.RestModifyOrder(
                order_id=304369975621712260,
                market_code="BTC-USD-SWAP-LIN",
                client_order_id=1614330009059,
                side=Side.BUY,
                quantity=Decimal("0.007"),
                price=Decimal("40001.0"),
            ),
        ),
    )
    assert wire(modify) == frame("modify_request")
    cancel = rest.CancelOrdersRequest(
        recv_window=200000,
        timestamp=1615454880374,
        orders=(
            rest.RestCancelOrder(
                market_code="BTC-USD-SWAP-LIN",
                order_id=304384250571714215,
                client_order_id=1615453494726,
            ),
            rest.RestCancelOrder(market_code="BTC-USD-SWAP-LIN", client_order_id=1612249737724),
        ),
    )
    assert wire(cancel) == frame("cancel_request")
    delivery = rest.DeliveryRequest(instrument_id="BTC-USD-SWAP-LIN", qty_deliver=Decimal("0.1"))
    assert wire(delivery) == frame("delivery_request")


def test_query_params() -> None:
    assert rest.query_params(rest.TimeWindowQuery()) == {}
    assert rest.query_params(rest.TimeWindowQuery(limit=3, end_time=1613978625000)) == {
        "limit": "3",
        "endTime": "1613978625000",
    }
    assert rest.query_params(
        rest.OrdersQuery(market_code="FLEX-USD", client_order_id=7, limit=1)
    ) == {"marketCode": "FLEX-USD", "clientOrderId": "7", "limit": "1"}
    assert rest.query_params(
        rest.CandlesQuery(timeframe=CandleGranularity.S300, start_time=1579450778000)
    ) == {"timeframe": "300s", "startTime": "1579450778000"}
    assert rest.query_params(
        rest.PublicFundingQuery(instrument_id="UNI-USD-SWAP-LIN", start_time=1638950400000)
    ) == {"instrumentId": "UNI-USD-SWAP-LIN", "startTime": "2021-12-08 08:00:00"}


def test_false_string_is_false_and_garbage_is_refused() -> None:
    assert converter.structure({"success": "false"}, rest.Ping).success is False
    assert converter.structure({"success": False}, rest.Ping).success is False
    with pytest.raises(ClassValidationError) as info:
        converter.structure({"success": "yes"}, rest.Ping)
    assert "expected a boolean" in str(info.value.exceptions[0])


# --- hypothesis round trips -------------------------------------------------------------------

decimals = st.decimals(
    allow_nan=False, allow_infinity=False, places=8, min_value=-(10**12), max_value=10**12
)
# raw (JSON number) decimals survive a float round trip up to 15 significant digits.
short_decimals = st.decimals(
    allow_nan=False, allow_infinity=False, places=4, min_value=0, max_value=10**9
)
ms = st.integers(min_value=0, max_value=4_102_444_800_000)
ids = st.integers(min_value=0, max_value=2**63 - 1)

MODELS = [
    obj
    for _, obj in inspect.getmembers(rest, inspect.isclass)
    if attrs.has(obj)
    and obj.__module__ == rest.__name__
    and not obj.__name__.startswith("_")
    and obj not in (rest.PageRule, rest.OrderMatch)  # not bodies: a config and a wire fragment
]


def _for_type(tp: Any, name: str) -> st.SearchStrategy[Any]:
    """A strategy for one field type, built here so no global hypothesis registry is touched."""
    args = get_args(tp)
    if get_origin(tp) in (UnionType, Union) and NoneType in args:
        (inner,) = (a for a in args if a is not NoneType)
        return st.none() | _for_type(inner, name)
    if get_origin(tp) is tuple:
        if args[-1] is Ellipsis:
            return st.lists(_for_type(args[0], name), max_size=3).map(tuple)
        return st.tuples(*(_for_type(a, name) for a in args))
    if get_origin(tp) is dict:
        return st.dictionaries(st.text(max_size=5), _for_type(args[1], name), max_size=3)
    if tp is Decimal:
        return decimals
    if tp is int:
        if name == "timestamp" or name.endswith(("_timestamp", "_time", "_updated", "created")):
            return ms
        return ids
    if tp is str:
        return st.text(max_size=10)
    if tp is bool:
        return st.booleans()
    if isinstance(tp, type) and issubclass(tp, Enum):
        return st.sampled_from(list(tp))
    if attrs.has(tp):
        return _strategy(tp)
    raise TypeError(f"no strategy for {tp!r}")


def _strategy(cls: type[Any]) -> st.SearchStrategy[Any]:
    kwargs = {f.name: _for_type(f.type, f.name) for f in attrs.fields(cls)}
    if cls is rest.DepthSnapshot:
        level = st.tuples(short_decimals, short_decimals)
        kwargs["asks"] = kwargs["bids"] = st.lists(level, max_size=5).map(tuple)
    if cls in (rest.PublicFunding, rest.PublicFundingQuery):  # the wire keeps whole seconds
        seconds = st.integers(0, 4_102_444_800).map(lambda s: s * 1000)
        for key in ("timestamp", "start_time", "end_time"):
            if key in kwargs:
                kwargs[key] = seconds if cls is rest.PublicFunding else st.none() | seconds
    return st.builds(cls, **kwargs)


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_round_trip_through_json(cls: type[Any], data: st.DataObject) -> None:
    value = data.draw(_strategy(cls))
    assert converter.structure(loads(dumps(value)), cls) == value
