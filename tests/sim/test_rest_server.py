"""Conformance of the simulator's REST server: plain httpx, headers signed by hand in the test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import urlencode

import attrs
import httpx
import pytest
import trio

from flexconn.models.enums import OrderType, Side
from flexconn.sim.exchange import ApiKey, SimExchange
from flexconn.sim.ratelimit import Rate, RestLimits
from flexconn.sim.rest import serve_rest


class RecordingExchange(SimExchange):
    """The real exchange, also noting which accounts got the REST cancel-all notice."""

    def __init__(self) -> None:
        super().__init__()
        self.cancel_notices: list[str] = []

    def broadcast_cancel_notice(self, account_id: str) -> None:
        self.cancel_notices.append(account_id)
        super().broadcast_cancel_notice(account_id)


@attrs.frozen
class Sim:
    exchange: RecordingExchange
    url: str
    http: httpx.AsyncClient

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")


@pytest.fixture
async def sim(nursery: trio.Nursery) -> AsyncIterator[Sim]:
    exchange = RecordingExchange()
    limits = RestLimits(overall=(Rate(count=1000, period=1.0),), routes={})
    url = await nursery.start(partial(serve_rest, exchange, rate_limits=limits))
    async with httpx.AsyncClient(base_url=url) as http:
        yield Sim(exchange, url, http)


def sign(
    key: ApiKey,
    verb: str,
    host: str,
    path: str,
    body: str,
    *,
    nonce: str = "1",
    ts: str | None = None,
) -> dict[str, str]:
    ts = ts or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    message = f"{ts}\n{nonce}\n{verb}\n{host}\n{path}\n{body}"
    digest = hmac.new(key.api_secret.encode(), message.encode(), hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "AccessKey": key.api_key,
        "Timestamp": ts,
        "Signature": base64.b64encode(digest).decode(),
        "Nonce": nonce,
    }


async def signed(
    sim: Sim,
    verb: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    body: Any = None,
    key: ApiKey | None = None,
) -> httpx.Response:
    key = key or sim.exchange.demo_key
    qs = urlencode(query) if query else ""
    text = json.dumps(body) if body is not None else ""
    headers = sign(key, verb, sim.host, path, text or qs)
    url = path + (f"?{qs}" if qs else "")
    return await sim.http.request(verb, url, headers=headers, content=text or None)


def error_body(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    # ``event`` names the route; an unknown route has none.
    assert set(body) - {"event"} == {"success", "code", "message", "timestamp"}
    assert body["success"] is False
    assert body["timestamp"].isdigit()
    return response.status_code, body["code"], body["message"]


def trade_into_position(exchange: SimExchange, quantity: str) -> None:
    """Give the demo account a long BTC perpetual position against another account."""
    if not exchange.engine.has_account("maker"):
        exchange.open_account("maker", {"USD": Decimal(10_000_000)})
    for account, side in (("maker", Side.SELL), ("1001", Side.BUY)):
        exchange.engine.place(
            account,
            market_code="BTC-USD-SWAP-LIN",
            side=side,
            order_type=OrderType.LIMIT,
            quantity=Decimal(quantity),
            price=Decimal(50000),
        )
    exchange.flush()


# --- public shapes ----------------------------------------------------------------------------


async def test_ping_body(sim: Sim) -> None:
    response = await sim.http.get("/v2/ping")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"success": "true"}


async def test_markets_body(sim: Sim) -> None:
    body = (await sim.http.get("/v2/all/markets")).json()
    assert set(body) == {"event", "timestamp", "data"}
    assert body["event"] == "markets" and body["timestamp"].isdigit()
    btc = next(x for x in body["data"] if x["marketCode"] == "BTC-USD")
    assert set(btc) == {
        "marketId", "marketCode", "name", "referencePair", "base", "counter", "type",
        "tickSize", "qtyIncrement", "listingDate", "endDate", "marginCurrency",
        "contractValCurrency", "upperPriceBound", "lowerPriceBound", "marketPrice",
        "marketPriceLastUpdated",
    }  # fmt: skip
    assert btc["tickSize"] == "0.1" and btc["qtyIncrement"] == "0.001"
    assert btc["referencePair"] == "BTC/USD" and btc["type"] == "SPOT"
    assert isinstance(btc["listingDate"], int) and btc["endDate"] == 0
    assert btc["marketId"] == "2001000000000"


async def test_assets_ticker_depth_bodies(sim: Sim) -> None:
    assets = (await sim.http.get("/v2/all/assets")).json()
    coin = next(a for a in assets["data"] if a["instrumentId"] == "BTC")
    assert coin == {
        "instrumentId": "BTC", "name": "BTC", "base": None, "counter": None, "type": "SPOT",
        "marginCurrency": None, "contractValCurrency": None, "deliveryDate": None,
        "deliveryInstrument": None,
    }  # fmt: skip
    ticker = (await sim.http.get("/v2/ticker")).json()
    assert ticker["event"] == "ticker"
    first = ticker["data"][0]
    assert set(first) == {
        "marketCode", "last", "markPrice", "open24h", "volume24h", "currencyVolume24h",
        "high24h", "low24h", "openInterest", "lastQty",
    }  # fmt: skip
    trade_into_position(sim.exchange, "0.5")
    sim.exchange.engine.place(
        "maker",
        market_code="BTC-USD-SWAP-LIN",
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        quantity=Decimal("0.25"),
        price=Decimal("50100"),
    )
    sim.exchange.flush()
    depth = (await sim.http.get("/v2/depth/BTC-USD-SWAP-LIN/5")).json()
    assert depth["event"] == "depthL5"
    (book,) = depth["data"]
    assert book["asks"] == [[50100.0, 0.25]] and book["bids"] == []
    assert book["marketCode"] == "BTC-USD-SWAP-LIN" and book["timestamp"].isdigit()
    trades = (await sim.http.get("/v2/publictrades/BTC-USD-SWAP-LIN")).json()
    assert trades["marketCode"] == "BTC-USD-SWAP-LIN"
    (trade,) = trades["data"]
    assert trade["matchPrice"] == "50000.0" and trade["matchQuantity"] == "0.500"
    assert trade["side"] == "BUY" and trade["matchId"].isdigit()


async def test_unknown_route_and_wrong_verb(sim: Sim) -> None:
    unknown = await sim.http.get("/v2/nope")
    assert error_body(unknown) == (404, "20003", "Unrecognized operation")
    assert "event" not in unknown.json()
    assert error_body(await sim.http.post("/v2/ticker"))[:2] == (405, "20003")


async def test_parameter_validation(sim: Sim) -> None:
    bad = [
        ("/v2/publictrades/BTC-USD", {"limit": "0"}, "limit must be between 1 and 300"),
        ("/v2/publictrades/BTC-USD", {"limit": "301"}, "limit must be between 1 and 300"),
        ("/v2/publictrades/BTC-USD", {"limit": "x"}, "limit must be an integer"),
        (
            "/v2/publictrades/BTC-USD",
            {"startTime": "2000", "endTime": "1000"},
            "startTime must not be after endTime",
        ),
        (
            "/v2/publictrades/BTC-USD",
            {"startTime": "0", "endTime": str(8 * 24 * 3600 * 1000)},
            "startTime and endTime must be within 7 days of each other",
        ),
        ("/v2/candles/BTC-USD", {"timeframe": "61s"}, "timeframe is not a supported granularity"),
        ("/v2/depth/BTC-USD/0", {}, "level must be between 1 and 1000"),
    ]
    for path, query, message in bad:
        response = await sim.http.get(path, params=query)
        assert error_body(response) == (400, "40032", f"Invalid request data: {message}")
    unknown = await sim.http.get("/v2/publictrades/NOPE-USD")
    assert error_body(unknown) == (400, "20015", "marketCode is invalid")


# --- authentication ---------------------------------------------------------------------------


async def test_private_balances_with_hand_signed_headers(sim: Sim) -> None:
    response = await signed(sim, "GET", "/v2/balances")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"event", "timestamp", "accountId", "tradeType", "data"}
    assert (body["event"], body["accountId"], body["tradeType"]) == ("balances", "1001", "LINEAR")
    usd = next(b for b in body["data"] if b["instrumentId"] == "USD")
    assert usd["total"] == "1000000" and usd["reserved"] == "0"
    assert set(usd) == {"instrumentId", "total", "available", "reserved", "quantityLastUpdated"}
    one = (await signed(sim, "GET", "/v2/balances/BTC")).json()
    assert one["event"] == "balancesById"
    assert [b["instrumentId"] for b in one["data"]] == ["BTC"]


async def test_signed_query_is_verified(sim: Sim) -> None:
    ok = await signed(sim, "GET", "/v2/trades/BTC-USD", query={"limit": "3"})
    assert ok.status_code == 200 and ok.json()["event"] == "trades"
    headers = sign(sim.exchange.demo_key, "GET", sim.host, "/v2/trades/BTC-USD", "limit=3")
    tampered = await sim.http.get("/v2/trades/BTC-USD?limit=4", headers=headers)
    assert error_body(tampered) == (401, "20000", "Signature is invalid")


async def test_authentication_failures(sim: Sim) -> None:
    key = sim.exchange.demo_key
    good = sign(key, "GET", sim.host, "/v2/positions", "")
    cases: list[tuple[dict[str, str], str]] = [
        ({}, "20025"),
        ({**good, "AccessKey": "unknown"}, "20025"),
        ({k: v for k, v in good.items() if k != "Timestamp"}, "20023"),
        ({k: v for k, v in good.items() if k != "Signature"}, "20000"),
        ({k: v for k, v in good.items() if k != "Nonce"}, "20000"),
        ({**good, "Signature": "AAAA"}, "20000"),
        ({**good, "Nonce": "2"}, "20000"),
        (sign(key, "GET", sim.host, "/v2/positions", "", ts="2020-04-30T15:20:30"), "20024"),
        ({**good, "Timestamp": "yesterday"}, "20000"),
        (sign(ApiKey(api_key=key.api_key, api_secret="wrong", account_id="1001"), "GET",
              sim.host, "/v2/positions", ""), "20000"),
    ]  # fmt: skip
    for headers, code in cases:
        status, got, _ = error_body(await sim.http.get("/v2/positions", headers=headers))
        assert (status, got) == (401, code), headers
    body = (await sim.http.get("/v2/positions")).json()
    assert body["event"] == "positions"


async def test_read_only_key_may_read_but_not_trade(sim: Sim) -> None:
    read_only = sim.exchange.read_only_key
    assert (await signed(sim, "GET", "/v2/orders", key=read_only)).status_code == 200
    refused = await signed(sim, "DELETE", "/v2/cancel/orders", body={}, key=read_only)
    assert error_body(refused) == (403, "05001", "Your operation authority is invalid")


# --- limits and faults ------------------------------------------------------------------------


async def test_rate_limit_reply(nursery: trio.Nursery) -> None:
    exchange = SimExchange()
    limits = RestLimits(overall=(Rate(count=3, period=60.0),), routes={})
    url = await nursery.start(partial(serve_rest, exchange, rate_limits=limits))
    async with httpx.AsyncClient(base_url=url) as http:
        statuses = [(await http.get("/v2/ping")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = await http.get("/v2/ticker")
        assert error_body(limited) == (429, "20007", "You are accessing server too rapidly")
        assert limited.json()["event"] == "ticker"


async def test_delivery_route_limit(nursery: trio.Nursery) -> None:
    exchange = SimExchange()
    url = await nursery.start(serve_rest, exchange)
    trade_into_position(exchange, "1")
    async with httpx.AsyncClient(base_url=url) as http:
        sim = Sim(exchange, url, http)  # type: ignore[arg-type]
        body = {"instrumentId": "BTC-USD-SWAP-LIN", "qtyDeliver": "0.1"}
        codes = [(await signed(sim, "POST", "/v2.1/delivery/orders", body=body)).status_code
                 for _ in range(3)]  # fmt: skip
        assert codes == [200, 200, 429]


async def test_injected_failures(sim: Sim) -> None:
    faults = sim.exchange.faults
    faults.fail_next("GET /v2/ticker", "20001", times=2)
    assert error_body(await sim.http.get("/v2/ticker"))[:2] == (500, "20001")
    assert error_body(await sim.http.get("/v2/ticker"))[:2] == (500, "20001")
    assert (await sim.http.get("/v2/ticker")).status_code == 200
    faults.fail_next("GET /v2/balances/{instrumentId}", "20032")
    assert error_body(await signed(sim, "GET", "/v2/balances/BTC"))[:2] == (504, "20032")
    faults.fail_next("POST /v2/orders/place", "20007", "slow down")
    order = {"clientOrderId": 1, "marketCode": "BTC-USD", "side": "BUY", "quantity": "1",
             "orderType": "LIMIT", "price": "40000"}  # fmt: skip
    body = {"responseType": "FULL", "orders": [order]}
    assert error_body(await signed(sim, "POST", "/v2/orders/place", body=body)) == (
        429,
        "20007",
        "slow down",
    )
    assert sim.exchange.engine.open_orders("1001") == []


# --- orders -----------------------------------------------------------------------------------


async def test_place_modify_cancel_bodies(sim: Sim) -> None:
    order = {
        "clientOrderId": 7,
        "marketCode": "BTC-USD-SWAP-LIN",
        "side": "BUY",
        "quantity": "0.002",
        "timeInForce": "GTC",
        "orderType": "LIMIT",
        "price": "40000",
    }
    bad = {**order, "clientOrderId": 8, "price": "10"}  # below the lower price bound
    response = await signed(sim, "POST", "/v2/orders/place",
                            body={"responseType": "FULL", "orders": [order, bad]})  # fmt: skip
    body = response.json()
    assert (body["event"], body["accountId"]) == ("placeOrder", "1001")
    opened, refused = body["data"]
    assert opened == {
        "success": "true", "timestamp": opened["timestamp"], "clientOrderId": "7",
        "orderId": opened["orderId"], "price": "40000.0", "quantity": "0.002", "side": "BUY",
        "status": "OPEN", "marketCode": "BTC-USD-SWAP-LIN", "timeInForce": "GTC",
        "matchId": "0", "notice": "OrderOpened", "orderType": "LIMIT", "isTriggered": "false",
    }  # fmt: skip
    assert refused["success"] == "false" and refused["code"] == "710002"
    assert refused["clientOrderId"] == "8" and refused["price"] == "10"
    assert refused["message"].startswith("FAILED sanity bound check as price")
    assert "orderId" not in refused

    order_id = opened["orderId"]
    modify = {"responseType": "FULL", "orders": [
        {"orderId": order_id, "marketCode": "BTC-USD-SWAP-LIN", "quantity": "0.001"},
        {"orderId": "1", "marketCode": "BTC-USD-SWAP-LIN", "quantity": "0.001"},
    ]}  # fmt: skip
    modified, missing = (await signed(sim, "POST", "/v2/orders/modify", body=modify)).json()["data"]
    assert modified["notice"] == "OrderModified" and modified["quantity"] == "0.001"
    assert modified["orderId"] == order_id
    assert (missing["success"], missing["code"]) == ("false", "40035")

    cancel = {"responseType": "FULL", "orders": [
        {"marketCode": "BTC-USD-SWAP-LIN", "clientOrderId": 7},
        {"marketCode": "BTC-USD-SWAP-LIN", "clientOrderId": 99},
    ]}  # fmt: skip
    body = (await signed(sim, "DELETE", "/v2/orders/cancel", body=cancel)).json()
    assert body["event"] == "cancelOrder"
    closed, unknown = body["data"]
    assert closed["status"] == "CANCELED_BY_USER" and closed["notice"] == "OrderClosed"
    assert closed["remainQuantity"] == "0.001"
    assert unknown == {
        "success": "false", "timestamp": unknown["timestamp"], "code": "40035",
        "message": "Open order not found with id", "clientOrderId": "99",
        "marketCode": "BTC-USD-SWAP-LIN",
    }  # fmt: skip


async def test_batch_validation(sim: Sim) -> None:
    order = {"clientOrderId": 1, "marketCode": "BTC-USD", "side": "BUY", "quantity": "1",
             "orderType": "LIMIT", "price": "40000"}  # fmt: skip
    no_type = await signed(sim, "POST", "/v2/orders/place", body={"orders": [order]})
    assert error_body(no_type)[:2] == (400, "40032")
    nine = {"responseType": "ACK", "orders": [order] * 9}
    assert error_body(await signed(sim, "POST", "/v2/orders/place", body=nine))[:2] == (
        400,
        "40032",
    )
    headers = sign(sim.exchange.demo_key, "POST", sim.host, "/v2/orders/place", "{nope")
    garbage = await sim.http.post("/v2/orders/place", headers=headers, content="{nope")
    assert error_body(garbage)[:2] == (400, "20009")
    broken = {"responseType": "ACK", "orders": [{"marketCode": "BTC-USD"}]}
    (entry,) = (await signed(sim, "POST", "/v2/orders/place", body=broken)).json()["data"]
    assert (entry["success"], entry["code"]) == ("false", "40032")
    expired = {"responseType": "ACK", "timestamp": 1, "recvWindow": 10, "orders": [order]}
    (entry,) = (await signed(sim, "POST", "/v2/orders/place", body=expired)).json()["data"]
    assert (entry["success"], entry["code"]) == ("false", "20024")
    ack = {"responseType": "ACK", "orders": [order]}
    (entry,) = (await signed(sim, "POST", "/v2/orders/place", body=ack)).json()["data"]
    assert set(entry) == {"success", "timestamp", "clientOrderId", "orderId", "marketCode"}


async def test_open_orders_v2_and_v21_and_cancel_all(sim: Sim) -> None:
    for cid, market in [(1, "BTC-USD"), (2, "ETH-USD")]:
        price = "40000" if market == "BTC-USD" else "2000"
        order = {"clientOrderId": cid, "marketCode": market, "side": "BUY", "quantity": "0.01",
                 "orderType": "LIMIT", "price": price}  # fmt: skip
        await signed(
            sim, "POST", "/v2/orders/place", body={"responseType": "ACK", "orders": [order]}
        )
    body = (await signed(sim, "GET", "/v2/orders")).json()
    assert [o["clientOrderId"] for o in body["data"]] == ["1", "2"]
    first = body["data"][0]
    assert first["remainingQuantity"] == "0.010" and isinstance(first["orderCreated"], int)
    assert first["stopPrice"] is None and first["lastTradeTimestamp"] is None

    by_market = await signed(sim, "DELETE", "/v2/cancel/orders/BTC-USD", body={})
    assert by_market.json()["data"] == {
        "marketCode": "BTC-USD",
        "msg": "All open orders for the specified market have been queued for cancellation",
    }
    assert sim.exchange.cancel_notices == ["1001"]
    history = (await signed(sim, "GET", "/v2.1/orders", query={"marketCode": "BTC-USD"})).json()
    (record,) = history["data"]
    assert record["status"] == "OrderClosed" and "orderClosedTimestamp" in record
    rest = (await signed(sim, "GET", "/v2.1/orders", query={"clientOrderId": "2"})).json()
    assert [r["status"] for r in rest["data"]] == ["OrderOpened"]
    everything = await signed(sim, "DELETE", "/v2/cancel/orders", body={})
    assert everything.json()["data"]["msg"].startswith("All open orders for the account")
    assert sim.exchange.cancel_notices == ["1001", "1001"]
    assert sim.exchange.engine.open_orders("1001") == []


async def test_positions_trades_and_v21_fills(sim: Sim) -> None:
    trade_into_position(sim.exchange, "0.5")
    positions = (await signed(sim, "GET", "/v2/positions")).json()
    (position,) = positions["data"]
    assert position["instrumentId"] == "BTC-USD-SWAP-LIN" and position["quantity"] == "0.500"
    assert set(position) == {
        "instrumentId", "quantity", "lastUpdated", "contractValCurrency", "entryPrice",
        "positionPnl", "estLiquidationPrice",
    }  # fmt: skip
    none = (await signed(sim, "GET", "/v2/positions/ETH-USD-SWAP-LIN")).json()
    assert none["event"] == "positionsById" and none["data"] == []
    trades = (await signed(sim, "GET", "/v2/trades/BTC-USD-SWAP-LIN")).json()
    (trade,) = trades["data"]
    assert trade["orderMatchType"] == "TAKER" and trade["total"] == "25000.0000"
    records = (await signed(sim, "GET", "/v2.1/orders")).json()["data"]
    (filled,) = records
    assert filled["status"] == "OrderMatched" and filled["filledQuantity"] == "0.500"
    (match,) = filled["matchIds"]
    assert match[trade["matchId"]]["orderMatchType"] == "TAKER"


async def test_delivery_flow(sim: Sim) -> None:
    trade_into_position(sim.exchange, "1")
    body = {"instrumentId": "BTC-USD-SWAP-LIN", "qtyDeliver": "0.4"}
    submitted = (await signed(sim, "POST", "/v2.1/delivery/orders", body=body)).json()
    (entry,) = submitted["data"]
    assert (entry["status"], entry["deliverType"]) == ("PENDING", "NEXT_CYCLE")
    assert entry["instrumentIdDeliver"] == "BTC" and entry["transferAsset"] == "USD"
    assert entry["deliverQty"] == "0.4" and entry["clientOrderId"] is None
    too_much = {"instrumentId": "BTC-USD-SWAP-LIN", "qtyDeliver": "0.7"}
    assert error_body(await signed(sim, "POST", "/v2.1/delivery/orders", body=too_much))[:2] == (
        400,
        "40032",
    )
    auction = (await signed(sim, "GET", "/v2.1/deliver-auction/BTC-USD-SWAP-LIN")).json()
    assert auction["data"][0]["netDeliver"] == "-0.4"
    history = (await signed(sim, "GET", "/v2.1/delivery/orders")).json()
    assert [d["status"] for d in history["data"]] == ["PENDING"]
    path = f"/v2.1/delivery/orders/{entry['deliverOrderId']}"
    ok = (await signed(sim, "DELETE", path, body={})).json()
    assert ok["data"] == ["Cancel of user order was successful"]
    again = (await signed(sim, "DELETE", path, body={})).json()
    assert again["data"] == ["Cancel exception please try again"]


async def test_funding_and_candles(sim: Sim) -> None:
    funding = (await sim.http.get("/v2/funding-rates/BTC-USD-SWAP-LIN")).json()
    assert funding["event"] == "fundingRates"
    (record,) = funding["data"]
    assert set(record) == {"fundingRate", "index", "markPrice", "marketCode", "timestamp"}
    assert int(record["timestamp"]) % 3_600_000 == 0
    spot = await sim.http.get("/v2/funding-rates/BTC-USD")
    assert error_body(spot)[:2] == (400, "20015")
    public = (await sim.http.get("/v2/delivery/public/funding")).json()
    assert {p["instrumentId"] for p in public} == {"BTC-USD-SWAP-LIN", "ETH-USD-SWAP-LIN"}
    assert all(len(p["timestamp"]) == 19 for p in public)
    since = public[0]["timestamp"]
    windowed = await sim.http.get("/v2/delivery/public/funding", params={"startTime": since})
    assert [p["timestamp"] for p in windowed.json()] == [since, since]
    garbage = await sim.http.get("/v2/delivery/public/funding", params={"startTime": "today"})
    assert error_body(garbage) == (
        400,
        "40032",
        "Invalid request data: startTime must be like 2021-12-08 08:00:00",
    )
    trade_into_position(sim.exchange, "0.5")
    candles = await sim.http.get("/v2/candles/BTC-USD-SWAP-LIN", params={"timeframe": "60s"})
    body = candles.json()
    assert body["timeframe"] == "60s"
    (candle,) = body["data"]
    assert candle["open"] == candle["close"] == "50000.0"
