"""Channel names: constructors, parsing, and what each channel yields."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexconn import channels
from flexconn.channels import Channel
from flexconn.errors import ValidationError
from flexconn.models import (
    BalanceUpdate,
    CancelAllNotice,
    CandleGranularity,
    CandleUpdate,
    DepthLevel,
    DepthUpdate,
    LiquidationRFQUpdate,
    MarketUpdate,
    OrderFailureNotice,
    OrderUpdate,
    PositionUpdate,
    TickerUpdate,
    TradeUpdate,
)

BTC = "BTC-USD-SWAP-LIN"


@pytest.mark.parametrize(
    ("channel", "wire", "private", "conflatable", "types"),
    [
        (channels.depth(BTC), "depth:BTC-USD-SWAP-LIN", False, True, (DepthUpdate,)),
        (
            channels.depth(BTC, DepthLevel.L5),
            "depthL5:BTC-USD-SWAP-LIN",
            False,
            True,
            (DepthUpdate,),
        ),
        (
            channels.depth(BTC, DepthLevel.L10),
            "depthL10:BTC-USD-SWAP-LIN",
            False,
            True,
            (DepthUpdate,),
        ),
        (
            channels.depth(BTC, DepthLevel.L25),
            "depthL25:BTC-USD-SWAP-LIN",
            False,
            True,
            (DepthUpdate,),
        ),
        (
            channels.futures_depth("BTC-USD-190628"),
            "futures/depth:BTC-USD-190628",
            False,
            True,
            (DepthUpdate,),
        ),
        (channels.trade(BTC), "trade:BTC-USD-SWAP-LIN", False, False, (TradeUpdate,)),
        (channels.ticker(BTC), "ticker:BTC-USD-SWAP-LIN", False, True, (TickerUpdate,)),
        (channels.ticker(), "ticker:all", False, True, (TickerUpdate,)),
        (
            channels.candles(BTC, CandleGranularity.S60),
            "candles60s:BTC-USD-SWAP-LIN",
            False,
            True,
            (CandleUpdate,),
        ),
        (channels.market(), "market:all", False, True, (MarketUpdate,)),
        (channels.market("FLEX-USD"), "market:FLEX-USD", False, True, (MarketUpdate,)),
        (channels.balance(), "balance:all", True, False, (BalanceUpdate,)),
        (channels.balance("USD"), "balance:USD", True, False, (BalanceUpdate,)),
        (channels.position(), "position:all", True, False, (PositionUpdate,)),
        (channels.position(BTC), "position:BTC-USD-SWAP-LIN", True, False, (PositionUpdate,)),
        (
            channels.order(),
            "order:all",
            True,
            False,
            (OrderUpdate, OrderFailureNotice, CancelAllNotice),
        ),
        (
            channels.order("FLEX-USD"),
            "order:FLEX-USD",
            True,
            False,
            (OrderUpdate, OrderFailureNotice, CancelAllNotice),
        ),
        (channels.liquidation_rfq(), "liquidationRFQ", False, False, (LiquidationRFQUpdate,)),
    ],
)
def test_constructors(
    channel: Channel[object], wire: str, private: bool, conflatable: bool, types: tuple[type, ...]
) -> None:
    assert channel.wire == wire
    assert str(channel) == wire
    assert channel.private is private
    assert channel.conflatable is conflatable
    assert channel.message_types == types
    assert Channel.parse(wire) == channel


@pytest.mark.parametrize("granularity", list(CandleGranularity))
def test_every_candle_granularity(granularity: CandleGranularity) -> None:
    channel = channels.candles(BTC, granularity)
    assert channel.wire == f"candles{granularity.value}:{BTC}"
    assert Channel.parse(channel.wire) == channel


@pytest.mark.parametrize(
    "text",
    [
        "",
        "trade",
        "liquidationRFQ:",
        "liquidationRFQ:all",
        "liquidationRFQ:BTC-USD-SWAP-LIN",
        "liquidationrfq",
        "trade:",
        "trade:all",
        "depth:all",
        "depthL7:BTC-USD",
        "candles61s:BTC-USD",
        "candle60s:BTC-USD",
        "orders:all",
        "order:BTC USD",
        "order:BTC-USD,ETH-USD",
        "ticker:-BTC",
        ":BTC-USD",
    ],
)
def test_parse_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        Channel.parse(text)
    assert info.value.field == "channel"


def test_parse_reports_the_given_field_and_refuses_non_strings() -> None:
    with pytest.raises(ValidationError) as info:
        Channel.parse("nope", field="args[2]")
    assert info.value.field == "args[2]"
    with pytest.raises(ValidationError):
        Channel.parse(42)  # type: ignore[arg-type]


def test_constructors_refuse_bad_markets() -> None:
    with pytest.raises(ValidationError):
        channels.trade("all")
    with pytest.raises(ValidationError):
        channels.depth("BTC USD")
    with pytest.raises(ValueError):
        channels.candles(BTC, "61s")  # type: ignore[arg-type]


def test_channels_are_values() -> None:
    assert channels.trade(BTC) == channels.trade(BTC)
    assert hash(channels.trade(BTC)) == hash(Channel.parse(f"trade:{BTC}"))
    assert channels.trade(BTC) != channels.trade("ETH-USD")


@given(st.from_regex(r"[A-Z0-9]{1,6}(-[A-Z0-9]{1,6}){0,3}", fullmatch=True))
def test_parse_round_trips(market: str) -> None:
    for channel in (
        channels.trade(market),
        channels.depth(market, DepthLevel.L25),
        channels.order(market),
        channels.candles(market, CandleGranularity.S3600),
    ):
        assert Channel.parse(channel.wire) == channel


def test_liquidation_rfq_is_a_bare_public_channel() -> None:
    channel = channels.liquidation_rfq()
    assert (channel.name, channel.selector) == ("liquidationRFQ", "")
    assert Channel.parse("liquidationRFQ") == channel
    assert hash(channel) == hash(Channel.parse(channel.wire))
