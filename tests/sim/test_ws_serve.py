"""The embedded entry points: public surface, lifecycle, REST wiring and live markets."""

from __future__ import annotations

import math

import httpx
import orjson
import pytest
import trio
import trio.testing
from conftest import connect

import flexconn.sim
from flexconn.auth import Credentials, RestSigner
from flexconn.sim import Cadences, Simulator, serve, serve_sim


def test_public_surface() -> None:
    assert sorted(flexconn.sim.__all__) == sorted(
        [
            "DEFAULT_MARKETS",
            "DEFAULT_RATE_LIMITS",
            "WS_PATH",
            "ApiKey",
            "Cadences",
            "Faults",
            "InjectedFailure",
            "MarketSpec",
            "RateLimits",
            "SimExchange",
            "Simulator",
            "WsOptions",
            "WsServer",
            "WsStatistics",
            "depth_checksum",
            "serve",
            "serve_sim",
            "serve_ws",
        ]
    )
    for name in flexconn.sim.__all__:
        assert getattr(flexconn.sim, name) is not None


async def test_serve_exposes_urls_and_keys_and_stops_cleanly() -> None:
    async with serve() as sim:
        assert sim.ws_url.startswith("ws://127.0.0.1:") and sim.ws_url.endswith("/v2/websocket")
        assert sim.rest_url is not None and sim.rest_url.startswith("http://127.0.0.1:")
        assert sim.demo_key.can_trade and not sim.read_only_key.can_trade
        assert sim.demo_key.account_id == sim.read_only_key.account_id == "1001"
        assert sim.faults is sim.exchange.faults
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{sim.rest_url}/v2/ping")).status_code == 200
        ws_url = sim.ws_url
    host, port = ws_url.split("//")[1].split("/")[0].rsplit(":", 1)
    with pytest.raises(OSError):
        await trio.open_tcp_stream(host, int(port))


async def test_an_exception_in_the_block_propagates_unwrapped() -> None:
    with pytest.raises(KeyError):
        async with serve(participants_rate=None, rest_port=None):
            raise KeyError("boom")


async def test_a_bind_failure_propagates_unwrapped() -> None:
    async with serve(participants_rate=None, rest_port=None) as first:
        port = int(first.ws_url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(OSError):
            async with serve(port, participants_rate=None, rest_port=None):
                pass


async def test_serve_sim_runs_in_the_callers_nursery() -> None:
    async with trio.open_nursery() as nursery:
        sim: Simulator = await nursery.start(
            lambda task_status: serve_sim(
                participants_rate=None, rest_port=None, task_status=task_status
            )
        )
        async with connect(sim) as client:
            await client.send("ping")
            assert await client.recv_text() == "pong"
        nursery.cancel_scope.cancel()


async def test_cancelling_the_block_stops_everything() -> None:
    with trio.CancelScope() as scope:
        async with serve(participants_rate=None, rest_port=None) as sim:
            url = sim.ws_url
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
    with pytest.raises(OSError):
        await trio.open_tcp_stream(host, int(port))


async def test_orders_placed_over_rest_reach_websocket_subscribers() -> None:
    async with serve(participants_rate=None) as sim:
        assert sim.rest_url is not None
        async with connect(sim) as client:
            await client.login(sim.demo_key)
            await client.subscribe("order:all")
            signer = RestSigner(Credentials(sim.demo_key.api_key, sim.demo_key.api_secret))
            body = orjson.dumps(
                {
                    "responseType": "FULL",
                    "orders": [
                        {
                            "clientOrderId": 42,
                            "marketCode": "BTC-USD-SWAP-LIN",
                            "side": "BUY",
                            "quantity": "1",
                            "orderType": "LIMIT",
                            "price": "40000",
                        }
                    ],
                }
            ).decode()
            host = sim.rest_url.split("//", 1)[1]
            headers = signer.headers("POST", host, "/v2/orders/place", body)
            async with httpx.AsyncClient() as http:
                response = await http.post(
                    f"{sim.rest_url}/v2/orders/place", content=body, headers=headers
                )
            assert response.status_code == 200, response.text
            opened = await client.table("order")
            assert opened["data"][0]["notice"] == "OrderOpened"
            assert opened["data"][0]["clientOrderId"] == "42"
            headers = signer.headers("DELETE", host, "/v2/cancel/orders", "")
            async with httpx.AsyncClient() as http:
                response = await http.delete(f"{sim.rest_url}/v2/cancel/orders", headers=headers)
            assert response.status_code == 200, response.text
            cancel = await client.reply("CANCEL")
            assert cancel["submitted"] is True


async def test_participants_keep_the_public_feeds_moving(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serve(participants_rate=200, rest_port=None, seed=7) as sim:
        assert sim.participants is not None
        async with connect(sim) as client:
            await client.subscribe("depthL5:BTC-USD-SWAP-LIN")
            first = (await client.table("depthL5"))["data"][0]
            assert len(first["bids"]) == 5 and len(first["asks"]) == 5
            await trio.sleep(1.0)
            await client.subscribe("trade:BTC-USD-SWAP-LIN", tag=2)
            trade = await client.table("trade")
            assert trade["data"][0]["marketCode"] == "BTC-USD-SWAP-LIN"


async def test_firehose_mode_publishes_depth_on_every_change() -> None:
    cadences = Cadences.firehose()
    firehose = serve(participants_rate=math.inf, rest_port=None, cadences=cadences)
    async with firehose as sim, connect(sim) as client:
        await client.subscribe("depthL25:BTC-USD-SWAP-LIN")
        seqs = [(await client.table("depthL25"))["data"][0]["seqNum"] for _ in range(10)]
        assert seqs == sorted(set(seqs))
