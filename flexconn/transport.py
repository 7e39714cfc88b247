"""The boundary between flexconn and the WebSocket libraries.

A :class:`Transport` is a connected WebSocket that can send and receive text, ping and await the
pong, and close. Two implementations open one, both with a ``factory(url, *, ssl_context,
connect_timeout)`` signature (:data:`TransportFactory`):

* :func:`open_sansio_websocket` (the default, :data:`DEFAULT_TRANSPORT`): a thin trio shell around
  websockets' sans-IO protocol core, with no background task; it reads the socket in large
  chunks and hands out every message of a chunk before reading again
  (:mod:`flexconn._ws_sansio`). About three to four times trio-websocket's message rate.
* :func:`open_trio_websocket`: trio-websocket (wsproto under a reader task and a channel).

Each translates every exception its library raises to the :mod:`flexconn.errors` tree at one
place: :func:`_translated` here for trio-websocket, ``flexconn._ws_sansio._translated`` for the
sans-IO transport.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Protocol
from urllib.parse import urlsplit

import trio
import trio_websocket

from flexconn._ws_sansio import open_sansio_websocket
from flexconn.errors import ConnectionClosed, ConnectTimeout, TransportError

__all__ = [
    "DEFAULT_TRANSPORT",
    "Transport",
    "TransportFactory",
    "check_url",
    "open_sansio_websocket",
    "open_trio_websocket",
]


class Transport(Protocol):
    """A connected WebSocket speaking text frames."""

    async def send(self, text: str) -> None:
        """Send one text frame; raises :class:`~flexconn.errors.ConnectionClosed` when closed."""

    async def receive(self) -> str:
        """Wait for the next text frame; raises :class:`~flexconn.errors.ConnectionClosed`."""

    async def ping(self) -> None:
        """Send a ping frame and return when its pong arrives."""

    async def aclose(self, reason: str = "") -> None:
        """Close the connection; idempotent."""


#: Opens a transport: ``factory(url, ssl_context=..., connect_timeout=...)``.
TransportFactory = Callable[..., AbstractAsyncContextManager[Transport]]


def check_url(url: str, *, allow_insecure: bool = False) -> None:
    """Refuse URLs flexconn should not connect to.

    Plain ``ws://`` is only allowed to loopback hosts unless ``allow_insecure`` is set, because it
    would send API keys and signatures in clear text.

    Raises:
        ValueError: the scheme is not ws/wss, or ws:// points off this machine without consent.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"WebSocket URL must start with ws:// or wss://, got {parts.scheme!r}")
    if parts.scheme == "ws" and not allow_insecure and not _is_loopback(parts.hostname or ""):
        raise ValueError(
            f"refusing plain ws:// to non-loopback host {parts.hostname!r}; "
            "use wss:// or pass allow_insecure=True"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextmanager
def _translated() -> Iterator[None]:
    """Map trio-websocket and socket exceptions onto flexconn's tree."""
    try:
        yield
    except trio_websocket.ConnectionClosed as exc:
        reason = exc.reason
        text = f"closed by peer: code {reason.code}" if reason is not None else "closed"
        if reason is not None and reason.reason:
            text += f" ({reason.reason})"
        raise ConnectionClosed(text) from exc
    except trio_websocket.ConnectionTimeout as exc:
        raise ConnectTimeout("WebSocket connect timed out") from exc
    except trio_websocket.ConnectionRejected as exc:
        raise TransportError(f"WebSocket handshake rejected with HTTP {exc.status_code}") from exc
    except trio_websocket.HandshakeError as exc:
        raise TransportError(f"WebSocket handshake failed: {exc!r}") from exc
    except trio_websocket.DisconnectionTimeout as exc:
        raise ConnectionClosed("close handshake timed out") from exc
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise ConnectionClosed(f"connection broken: {exc!r}") from exc
    except ssl.SSLError as exc:
        raise TransportError(f"TLS error: {exc}") from exc
    except OSError as exc:
        raise TransportError(f"network error: {exc}") from exc


class _TrioWebsocketTransport:
    """:class:`Transport` over a trio-websocket connection."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self._ws = ws

    async def send(self, text: str) -> None:
        with _translated():
            await self._ws.send_message(text)

    async def receive(self) -> str:
        with _translated():
            message = await self._ws.get_message()
        return message if isinstance(message, str) else message.decode("utf-8", "replace")

    async def ping(self) -> None:
        with _translated():
            await self._ws.ping()

    async def aclose(self, reason: str = "") -> None:
        with _translated():
            await self._ws.aclose(1000, reason or None)


@asynccontextmanager
async def open_trio_websocket(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    connect_timeout: float = 10.0,
    close_timeout: float = 2.0,
    message_queue_size: int = 64,
) -> AsyncIterator[Transport]:
    """Open a WebSocket with trio-websocket (certificates verified for wss:// by default).

    Raises:
        ConnectTimeout: connecting took longer than ``connect_timeout``.
        TransportError: the connection or handshake failed.
    """
    if url.startswith("wss://") and ssl_context is None:
        ssl_context = ssl.create_default_context()
    manager = trio_websocket.open_websocket_url(
        url,
        ssl_context,
        connect_timeout=connect_timeout,
        disconnect_timeout=close_timeout,
        message_queue_size=message_queue_size,
        max_message_size=16 * 1024 * 1024,
        receive_buffer_size=65536,
    )
    with _translated():
        async with manager as ws:
            yield _TrioWebsocketTransport(ws)


#: The transport :func:`flexconn.connection.open_connection` uses unless told otherwise.
DEFAULT_TRANSPORT: TransportFactory = open_sansio_websocket
