"""Defects the chaos runs found, each pinned by a deterministic test.

A case still open is marked ``xfail(strict=True)``, so the suite stays green while it is open
and turns red (XPASS) the day a fix lands, to remove the mark. Every test runs on trio's MockClock
(``autojump_clock``), the simulator in-process: heartbeats, back-offs and the tests' time bounds
are mock time.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import pytest
import trio
import trio.testing

from flexconn import channels
from flexconn.config import Heartbeat, ReconnectPolicy
from flexconn.connection import ConnectionState, open_connection
from flexconn.errors import ConnectionClosed, TransportError
from flexconn.feeds import StreamRestarted
from flexconn.models.enums import DepthLevel
from flexconn.sim import Simulator, serve
from flexconn.sim.chaos import open_chaos_proxy
from flexconn.transport import Transport, TransportFactory, open_trio_websocket

MARKET = "BTC-USD-SWAP-LIN"


class DoomedTransport:
    """Wraps a real transport; :meth:`kill` makes a pending ``receive`` and ``ping`` fail together,
    as both do when a reset lands while a ping awaits its pong."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.doomed = trio.Event()
        self.pinging = trio.Event()
        self._receiving: set[trio.CancelScope] = set()

    async def send(self, text: str) -> None:
        await self.inner.send(text)

    async def receive(self) -> str:
        with trio.CancelScope() as scope:
            self._receiving.add(scope)
            try:
                return await self.inner.receive()
            finally:
                self._receiving.discard(scope)
        raise ConnectionClosed("connection broken: reset by peer")

    async def ping(self) -> None:
        self.pinging.set()
        await self.doomed.wait()  # the pong never comes
        raise ConnectionClosed("connection broken: reset by peer")

    async def aclose(self, reason: str = "") -> None:
        await self.inner.aclose(reason)

    def kill(self) -> None:
        self.doomed.set()
        for scope in self._receiving:
            scope.cancel()


async def test_reader_and_heartbeat_failing_together_cause_one_reconnect(
    wall_sim: Simulator, autojump_clock: trio.testing.MockClock
) -> None:
    transports: list[DoomedTransport] = []

    @asynccontextmanager
    async def doomed(
        url: str, *, ssl_context: ssl.SSLContext | None, connect_timeout: float
    ) -> AsyncIterator[Transport]:
        async with open_trio_websocket(
            url, ssl_context=ssl_context, connect_timeout=connect_timeout
        ) as ws:
            transports.append(DoomedTransport(ws))
            yield transports[-1]

    heartbeat = Heartbeat(interval=0.01, timeout=30)
    retry = ReconnectPolicy(initial_delay=0.01, max_delay=0.05)
    with trio.fail_after(10):
        async with (
            open_connection(
                wall_sim.ws_url, heartbeat=heartbeat, reconnect=retry, transport=doomed
            ) as conn,
            conn.subscribe(channels.ticker(MARKET)) as tickers,
        ):
            await tickers.receive()
            await transports[0].pinging.wait()
            transports[0].kill()
            item = await tickers.receive()
            while not isinstance(item, StreamRestarted):
                item = await tickers.receive()
            # the marker comes right after the login; the reconnect counts once CONNECTED
            await conn.wait_state(ConnectionState.CONNECTED)
            assert (conn.stats().drops, conn.stats().reconnects) == (1, 1)
            assert not isinstance(await tickers.receive(), StreamRestarted)
            assert conn.state is ConnectionState.CONNECTED


async def test_a_handshake_reset_by_the_peer_fails_fast(
    transport: TransportFactory,
    wall_sim: Simulator,
    request: pytest.FixtureRequest,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A connection reset before the handshake completes (a load balancer with no backend, a
    refusing proxy) must fail the attempt at once, not after the whole connect timeout."""
    if transport is open_trio_websocket:
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                reason="trio-websocket 0.12 never sets its handshake event when the stream "
                "breaks before the response, so the attempt waits for connect_timeout",
            )
        )
    target = urlsplit(wall_sim.ws_url)
    assert target.hostname is not None and target.port is not None
    async with open_chaos_proxy(target.hostname, target.port) as proxy:
        proxy.refuse(60)
        with trio.move_on_after(2) as waited, pytest.raises(TransportError):
            async with transport(proxy.ws_url, ssl_context=None, connect_timeout=30):
                pytest.fail("connected through a refusing proxy")
        assert proxy.statistics().refused == 1
        assert not waited.cancelled_caught, "the attempt outlived the reset by seconds"


async def test_two_depth_variants_of_one_market_both_get_data(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        serve(participants_rate=50) as sim,
        open_connection(sim.ws_url) as conn,
        conn.subscribe(channels.depth(MARKET)) as full,
        conn.subscribe(channels.depth(MARKET, DepthLevel.L25)) as top,
    ):
        with trio.fail_after(3):
            assert not isinstance(await full.receive(), StreamRestarted)
            assert not isinstance(await top.receive(), StreamRestarted)
