"""Fixtures for the simulator tests: a running simulator and a plain WebSocket client.

The client is deliberately not flexconn's: trio-websocket plus orjson, speaking the documented
JSON exactly as a third-party client would, so these tests check the simulator against the
documents rather than against flexconn's own reading of them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from flexconn.auth import ws_login_signature
from flexconn.sim import ApiKey, Simulator, serve

Json = dict[str, Any]


class Client:
    """A bare WebSocket client: sends JSON, receives JSON, nothing else."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws

    async def send(self, message: Json | str) -> None:
        text = message if isinstance(message, str) else orjson.dumps(message).decode()
        await self.ws.send_message(text)

    async def recv_text(self) -> str:
        message = await self.ws.get_message()
        assert isinstance(message, str), message
        return message

    async def recv(self) -> Json:
        message = orjson.loads(await self.recv_text())
        assert isinstance(message, dict), message
        return message

    async def recv_until(self, match: Callable[[Json], bool], *, limit: int = 500) -> Json:
        """The next message satisfying ``match``, skipping others (at most ``limit``)."""
        for _ in range(limit):
            message = await self.recv()
            if match(message):
                return message
        raise AssertionError("no matching message")

    async def reply(self, event: str) -> Json:
        """The next message with this ``event`` (skipping channel data)."""
        return await self.recv_until(lambda m: m.get("event") == event)

    async def table(self, name: str) -> Json:
        """The next channel message of this table."""
        return await self.recv_until(lambda m: m.get("table") == name)

    async def login(self, key: ApiKey, *, tag: int | str | None = 1) -> Json:
        await self.send(login_request(key, tag=tag))
        reply = await self.reply("login")
        assert reply["success"] is True, reply
        return reply

    async def subscribe(self, *channels: str, tag: int = 1) -> list[Json]:
        await self.send({"op": "subscribe", "tag": tag, "args": list(channels)})
        replies: list[Json] = []
        while len(replies) < len(channels):
            replies.append(await self.reply("subscribe"))
        return replies

    async def nothing_within(self, seconds: float) -> bool:
        """True when no message arrives for ``seconds``."""
        with trio.move_on_after(seconds):
            await self.ws.get_message()
            return False
        return True


def close_code(closed: ConnectionClosed) -> int | None:
    """The close code a trio-websocket ``ConnectionClosed`` reports."""
    reason = closed.reason
    assert reason is not None
    return reason.code


def login_request(
    key: ApiKey, *, tag: int | str | None = 1, timestamp_ms: int | None = None
) -> Json:
    """A documented login request for ``key``."""
    ts = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    request: Json = {
        "op": "login",
        "data": {
            "apiKey": key.api_key,
            "timestamp": ts,
            "signature": ws_login_signature(key.api_secret, ts),
        },
    }
    if tag is not None:
        request["tag"] = tag
    return request


@asynccontextmanager
async def connect(sim: Simulator, *, greeting: bool = True) -> AsyncIterator[Client]:
    """Open a plain client on the simulator and consume its ``nonce`` greeting."""
    async with open_websocket_url(sim.ws_url, message_queue_size=100_000) as ws:
        client = Client(ws)
        if greeting:
            hello = await client.recv()
            assert set(hello) == {"nonce"}, hello
        yield client


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A quiet simulator (no synthetic participants, no REST), documented limits."""
    async with serve(participants_rate=None, rest_port=None) as running:
        yield running


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[Client]:
    """A plain client connected to :func:`sim`, not logged in."""
    async with connect(sim) as connected:
        yield connected


@pytest.fixture
async def trader(sim: Simulator) -> AsyncIterator[Client]:
    """A plain client logged in with the demo (can-trade) key."""
    async with connect(sim) as connected:
        await connected.login(sim.demo_key)
        yield connected
