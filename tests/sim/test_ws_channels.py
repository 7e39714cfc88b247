"""Every channel: subscribe/unsubscribe replies, the initial state, message shapes, cadences."""

from __future__ import annotations

import itertools
import json
import zlib
from decimal import Decimal
from typing import Any

import pytest
import trio
from conftest import Client, Json, connect
from hypothesis import given
from hypothesis import strategies as st

from flexconn.models.enums import CandleGranularity, OrderType, Side
from flexconn.sim import Simulator, depth_checksum
from flexconn.sim.ws_messages import depth_payload

MARKET = "BTC-USD-SWAP-LIN"


async def place(client: Client, side: str, price: Any, quantity: Any = 1) -> Json:
    await client.send(
        {
            "op": "placeorder",
            "tag": 1,
            "data": {
                "marketCode": MARKET,
                "side": side,
                "orderType": "LIMIT",
                "quantity": quantity,
                "price": price,
            },
        }
    )
    reply = await client.reply("placeorder")
    assert reply["submitted"] is True, reply
    return reply


def build_book(sim: Simulator, levels: int) -> None:
    """``levels`` bids and asks, one lot each, 1 USD apart around 50,000 (placed directly on
    the engine, as the REST server would, to stay clear of the WebSocket order rate limit)."""
    engine = sim.exchange.engine
    for i in range(levels):
        for side, price in ((Side.BUY, 49_999 - i), (Side.SELL, 50_001 + i)):
            engine.place(
                "1001",
                market_code=MARKET,
                side=side,
                order_type=OrderType.LIMIT,
                quantity=Decimal(1),
                price=Decimal(price),
            )
    sim.exchange.flush()


def checksum_of(raw: str) -> tuple[int, int]:
    """(the message's checksum, the checksum recomputed from its exact number texts)."""
    message = json.loads(raw, parse_float=str, parse_int=str)
    entry = message["data"][0]
    bids = [(level[0], level[1]) for level in entry["bids"]]
    asks = [(level[0], level[1]) for level in entry["asks"]]
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts += bids[i]
        if i < len(asks):
            parts += asks[i]
    return int(entry["checksum"]), zlib.crc32(":".join(parts).encode())


async def raw_table(client: Client, name: str) -> str:
    for _ in range(500):
        text = await client.recv_text()
        if text.startswith(f'{{"table":"{name}"'):
            return text
    raise AssertionError(f"no {name} message")


# --- subscribe / unsubscribe -------------------------------------------------------------------


async def test_multi_channel_subscribe_replies_once_per_channel(client: Client) -> None:
    channels = [f"trade:{MARKET}", "ticker:all", "market:BTC-USD"]
    await client.send({"op": "subscribe", "tag": 103, "args": channels})
    replies = [await client.reply("subscribe") for _ in channels]
    for reply, channel in zip(replies, channels, strict=True):
        assert list(reply) == ["event", "success", "tag", "channel", "timestamp"]
        assert reply == {
            "event": "subscribe",
            "success": True,
            "tag": "103",
            "channel": channel,
            "timestamp": reply["timestamp"],
        }


@pytest.mark.parametrize("channel", ["order:all", "balance:USD", f"position:{MARKET}"])
async def test_private_channels_need_login_20026(client: Client, channel: str) -> None:
    await client.send({"op": "subscribe", "tag": 2, "args": [channel]})
    reply = await client.recv()
    assert list(reply) == ["event", "success", "tag", "message", "code", "timestamp"]
    assert reply["event"] == "subscribe" and reply["success"] is False
    assert reply["code"] == "20026"


@pytest.mark.parametrize(
    ("channel", "code"),
    [
        ("depth:NOPE-USD", "20015"),
        ("candles60s:NOPE", "20015"),
        ("ticker:NOPE", "20015"),
        ("candles61s:BTC-USD", "20002"),
        ("weather:all", "20002"),
        ("depth", "20002"),
        (42, "20002"),
    ],
)
async def test_bad_channels_are_refused(client: Client, channel: Any, code: str) -> None:
    await client.send({"op": "subscribe", "tag": 2, "args": [channel]})
    reply = await client.recv()
    assert reply["success"] is False and reply["code"] == code


async def test_missing_args_is_20002(client: Client) -> None:
    await client.send({"op": "subscribe", "tag": 2})
    reply = await client.recv()
    assert reply["event"] == "subscribe" and reply["code"] == "20002"


async def test_liquidation_rfq_subscription_is_accepted(client: Client) -> None:
    (reply,) = await client.subscribe("liquidationRFQ")
    assert reply["channel"] == "liquidationRFQ" and reply["success"] is True


async def test_unsubscribe_replies_and_stops_the_channel(
    client: Client, autojump_clock: trio.testing.MockClock
) -> None:
    await client.subscribe("ticker:BTC-USD")
    await client.table("ticker")
    await trio.sleep(1.0)  # an unauthenticated socket may send one message per second
    await client.send({"op": "unsubscribe", "tag": 5, "args": ["ticker:BTC-USD"]})
    reply = await client.reply("unsubscribe")
    assert reply == {
        "event": "unsubscribe",
        "success": True,
        "tag": "5",
        "channel": "ticker:BTC-USD",
        "timestamp": reply["timestamp"],
    }
    assert await client.nothing_within(5.0)


async def test_injected_subscribe_failure(sim: Simulator, client: Client) -> None:
    sim.faults.fail_next("subscribe", "20001")
    await client.send({"op": "subscribe", "tag": 1, "args": ["ticker:all", "market:all"]})
    reply = await client.recv()
    assert reply["success"] is False and reply["code"] == "20001"


# --- depth -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "levels"), [("depthL5", 5), ("depthL10", 10), ("depthL25", 25)])
async def test_depth_levels_shape_and_checksum(
    sim: Simulator, trader: Client, kind: str, levels: int
) -> None:
    build_book(sim, 30)
    await trader.subscribe(f"{kind}:{MARKET}")
    raw = await raw_table(trader, kind)
    message = json.loads(raw)
    assert list(message) == ["table", "data"] and len(message["data"]) == 1
    entry = message["data"][0]
    assert list(entry) == ["instrumentId", "seqNum", "timestamp", "checksum", "asks", "bids"]
    assert entry["instrumentId"] == MARKET
    assert isinstance(entry["seqNum"], int) and isinstance(entry["timestamp"], str)
    assert len(entry["asks"]) == levels and len(entry["bids"]) == levels
    assert entry["bids"][0] == [49999, 1, 0, 0]
    assert entry["asks"][0] == [50001, 1, 0, 0]
    assert [a[0] for a in entry["asks"]] == sorted(a[0] for a in entry["asks"])
    assert [b[0] for b in entry["bids"]] == sorted((b[0] for b in entry["bids"]), reverse=True)
    stated, recomputed = checksum_of(raw)
    assert stated == recomputed


async def test_full_depth_carries_the_whole_book(sim: Simulator, trader: Client) -> None:
    build_book(sim, 30)
    await trader.subscribe(f"depth:{MARKET}")
    entry = (await trader.table("depth"))["data"][0]
    assert len(entry["asks"]) == 30 and len(entry["bids"]) == 30


async def test_empty_book_snapshot_has_checksum_zero(client: Client) -> None:
    await client.subscribe("depthL5:ETH-USD")
    entry = (await client.table("depthL5"))["data"][0]
    assert entry["asks"] == [] and entry["bids"] == [] and entry["checksum"] == 0


async def test_2020_futures_depth_uses_string_levels(sim: Simulator, trader: Client) -> None:
    build_book(sim, 3)
    await trader.subscribe(f"futures/depth:{MARKET}")
    message = await trader.table("futures/depth")
    entry = message["data"][0]
    assert list(entry) == ["asks", "bids", "instrumentId", "timestamp"]
    assert entry["asks"][0] == ["50001", "1", "0", "0"]
    assert entry["bids"] == [
        ["49999", "1", "0", "0"],
        ["49998", "1", "0", "0"],
        ["49997", "1", "0", "0"],
    ]


async def test_depth_updates_within_50ms_with_increasing_seq_and_valid_checksums(
    trader: Client, autojump_clock: trio.testing.MockClock
) -> None:
    await trader.subscribe(f"depthL10:{MARKET}")
    first = json.loads(await raw_table(trader, "depthL10"))["data"][0]
    seqs = [first["seqNum"]]
    for i in range(5):
        placed_at = trio.current_time()
        await place(trader, "BUY", 40_000 + i)
        raw = await raw_table(trader, "depthL10")
        assert trio.current_time() - placed_at <= 0.05 + 1e-9
        entry = json.loads(raw)["data"][0]
        assert entry["bids"][0][0] == 40_000 + i
        seqs.append(entry["seqNum"])
        stated, recomputed = checksum_of(raw)
        assert stated == recomputed
    assert seqs == list(range(seqs[0], seqs[0] + 6))


async def test_unchanged_depth_is_resent_every_heartbeat(
    client: Client, autojump_clock: trio.testing.MockClock
) -> None:
    await client.subscribe(f"depthL5:{MARKET}")
    first = (await client.table("depthL5"))["data"][0]
    start = trio.current_time()
    again = (await client.table("depthL5"))["data"][0]
    assert trio.current_time() - start == pytest.approx(1.0, abs=0.051)
    assert again["seqNum"] == first["seqNum"] + 1
    assert again["asks"] == first["asks"]


async def test_two_subscribers_see_the_same_sequence(sim: Simulator, trader: Client) -> None:
    async with connect(sim) as other:
        await trader.subscribe(f"depthL5:{MARKET}")
        await other.subscribe(f"depthL5:{MARKET}")
        mine = (await trader.table("depthL5"))["data"][0]
        theirs = (await other.table("depthL5"))["data"][0]
        assert mine == theirs
        await place(trader, "SELL", 55_000)
        mine = (await trader.table("depthL5"))["data"][0]
        theirs = (await other.table("depthL5"))["data"][0]
        assert mine == theirs


@given(
    st.lists(
        st.tuples(
            st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**6), places=2),
            st.decimals(min_value=Decimal("0.001"), max_value=Decimal(10**4), places=3),
        ),
        max_size=30,
    ),
    st.lists(
        st.tuples(
            st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**6), places=2),
            st.decimals(min_value=Decimal("0.001"), max_value=Decimal(10**4), places=3),
        ),
        max_size=30,
    ),
)
def test_checksum_is_recomputable_from_any_message(
    bids: list[tuple[Decimal, Decimal]], asks: list[tuple[Decimal, Decimal]]
) -> None:
    raw = depth_payload(MARKET, 1, 2, bids, asks).decode()
    stated, recomputed = checksum_of(raw)
    assert stated == recomputed
    texts = [(format(p.normalize(), "f"), format(q.normalize(), "f")) for p, q in bids]
    ask_texts = [(format(p.normalize(), "f"), format(q.normalize(), "f")) for p, q in asks]
    assert stated == depth_checksum(texts, ask_texts)


# --- trade, ticker, candles, market ------------------------------------------------------------


async def test_trade_channel_is_real_time(trader: Client) -> None:
    await trader.subscribe(f"trade:{MARKET}")
    await place(trader, "SELL", 50_000, 2)
    await place(trader, "BUY", 50_000, "0.5")
    trade = (await trader.table("trade"))["data"]
    assert [(t["side"], t["price"], t["quantity"]) for t in trade] == [("buy", "50000", "0.5")]
    assert list(trade[0]) == ["side", "tradeId", "price", "quantity", "marketCode", "timestamp"]


async def test_ticker_single_and_all_with_documented_fields(trader: Client, sim: Simulator) -> None:
    client = trader
    await client.subscribe("ticker:BTC-USD")
    single = await client.table("ticker")
    assert len(single["data"]) == 1
    assert list(single["data"][0]) == [
        "last",
        "open24h",
        "high24h",
        "low24h",
        "volume24h",
        "currencyVolume24h",
        "openInterest",
        "marketCode",
        "timestamp",
        "lastQty",
        "markPrice",
        "lastMarkPrice",
    ]
    assert all(isinstance(v, str) for v in single["data"][0].values())
    await client.send({"op": "unsubscribe", "args": ["ticker:BTC-USD"]})
    await client.subscribe("ticker:all")
    everything = await client.recv_until(
        lambda m: m.get("table") == "ticker" and len(m["data"]) > 1
    )
    assert {t["marketCode"] for t in everything["data"]} == set(sim.exchange.markets)


async def test_ticker_cadence_is_100ms(
    client: Client, autojump_clock: trio.testing.MockClock
) -> None:
    await client.subscribe(f"ticker:{MARKET}")
    await client.table("ticker")
    await client.table("ticker")
    stamps = []
    for _ in range(4):
        await client.table("ticker")
        stamps.append(trio.current_time())
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert gaps == pytest.approx([0.1] * 3)


async def test_market_cadence_is_one_second(
    client: Client, autojump_clock: trio.testing.MockClock
) -> None:
    await client.subscribe("market:all")
    await client.table("market")
    await client.table("market")
    start = trio.current_time()
    await client.table("market")
    assert trio.current_time() - start == pytest.approx(1.0)


async def test_every_candle_granularity(
    trader: Client, autojump_clock: trio.testing.MockClock
) -> None:
    await place(trader, "SELL", 50_000, 2)
    await place(trader, "BUY", 50_000, 1)
    channels = [f"candles{g.value}:{MARKET}" for g in CandleGranularity]
    await trader.subscribe(*channels)
    seen: dict[str, Json] = {}
    while len(seen) < len(channels):
        message = await trader.recv_until(lambda m: str(m.get("table", "")).startswith("candles"))
        seen[message["table"]] = message
    assert set(seen) == {f"candles{g.value}" for g in CandleGranularity}
    for message in seen.values():
        (entry,) = message["data"]
        assert entry["marketCode"] == MARKET
        ts, open_, high, low, close, volume, base_volume = entry["candle"]
        assert ts.isdigit()
        assert (open_, high, low, close) == ("50000", "50000", "50000", "50000")
        assert (volume, base_volume) == ("50000", "1")
    start = trio.current_time()
    await trader.table("candles60s")
    assert trio.current_time() - start <= 0.5 + 1e-9


async def test_market_channel_single_and_all(trader: Client, sim: Simulator) -> None:
    client = trader
    await client.subscribe("market:BTC-USD")
    entry = (await client.table("market"))["data"][0]
    assert list(entry) == [
        "marketPrice",
        "listingDate",
        "qtyIncrement",
        "upperPriceBound",
        "lowerPriceBound",
        "counter",
        "type",
        "marketId",
        "referencePair",
        "tickSize",
        "marketPriceLastUpdated",
        "contractValCurrency",
        "name",
        "marketCode",
        "marginCurrency",
        "base",
    ]
    assert entry["marketCode"] == "BTC-USD" and entry["referencePair"] == "BTC/USD"
    assert entry["tickSize"] == "0.1" and entry["type"] == "SPOT"
    await client.subscribe("market:all")
    everything = await client.recv_until(
        lambda m: m.get("table") == "market" and len(m["data"]) > 1
    )
    assert [m["marketCode"] for m in everything["data"]] == list(sim.exchange.markets)


# --- balance and position ----------------------------------------------------------------------


async def test_balance_all_and_single(trader: Client) -> None:
    await trader.subscribe("balance:all")
    everything = await trader.table("balance")
    assert list(everything) == ["table", "accountId", "timestamp", "tradeType", "data"]
    assert everything["accountId"] == "1001" and everything["tradeType"] == "LINEAR"
    by_asset = {b["instrumentId"]: b for b in everything["data"]}
    assert by_asset["USD"] == {
        "total": "1000000",
        "reserved": "0",
        "instrumentId": "USD",
        "available": "1000000",
        "quantityLastUpdated": by_asset["USD"]["quantityLastUpdated"],
    }
    await trader.subscribe("balance:BTC")
    single = await trader.recv_until(lambda m: m.get("table") == "balance" and len(m["data"]) == 1)
    assert single["data"][0]["instrumentId"] == "BTC"


async def test_balance_follows_orders_at_its_cadence(
    trader: Client, autojump_clock: trio.testing.MockClock
) -> None:
    await trader.subscribe("balance:USD")
    await trader.table("balance")
    await place(trader, "BUY", 40_000, 1)
    start = trio.current_time()
    update = await trader.table("balance")
    assert trio.current_time() - start <= 0.25 + 1e-9
    (usd,) = update["data"]
    assert Decimal(usd["reserved"]) > 0
    assert Decimal(usd["available"]) == Decimal(usd["total"]) - Decimal(usd["reserved"])


async def test_position_is_pushed_on_every_fill(sim: Simulator, trader: Client) -> None:
    async with connect(sim) as counterparty:
        sim.exchange.open_account("cp", {"USD": Decimal(10**7)})
        await counterparty.login(sim.exchange.create_api_key("cp"))
        await trader.subscribe("position:all", f"position:{MARKET}")
        empty = await trader.table("position")
        assert empty["data"] == []
        await place(counterparty, "SELL", 50_000, 2)
        await place(trader, "BUY", 50_000, "0.5")
        first = await trader.table("position")
        second = await trader.table("position")
        for message in (first, second):
            assert list(message) == ["table", "accountId", "timestamp", "data"]
            (entry,) = message["data"]
            assert list(entry) == [
                "entryPrice",
                "lastUpdated",
                "contractValCurrency",
                "quantity",
                "instrumentId",
                "positionPnl",
                "estLiquidationPrice",
            ]
            assert entry["quantity"] == "0.5" and entry["entryPrice"] == "50000"
            assert entry["contractValCurrency"] == "BTC"
