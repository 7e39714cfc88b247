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
sans-IO transport. A socket that closes raises a :class:`~flexconn.errors.ConnectionClosed`
that also says why, typed (:class:`~flexconn._socket.DisconnectReason`: the peer's close code, a
message over ``max_frame_bytes``, a protocol error, a lost connection); the connection reports
it in its ``disconnected`` events. Neither transport logs the login command's signature: the
sans-IO one redacts what websockets logs, trio-websocket logs only sizes.
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

from flexconn._socket import DisconnectReason, SocketClosed
from flexconn._ws_sansio import open_sansio_websocket
from flexconn.config import DEFAULT_MAX_FRAME_BYTES
from flexconn.errors import ConnectTimeout, TransportError

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


#: Opens a transport: ``factory(url, ssl_context=..., connect_timeout=...)``, plus
#: ``max_frame_bytes=...`` when the connection was given a limit other than
#: :data:`~flexconn.config.DEFAULT_MAX_FRAME_BYTES` (both built-in factories take it and default
#: to that value, so a factory that wraps one keeps the limit without knowing of it).
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
        raise _closed(exc.reason) from exc
    except trio_websocket.ConnectionTimeout as exc:
        raise ConnectTimeout("WebSocket connect timed out") from exc
    except trio_websocket.ConnectionRejected as exc:
        raise TransportError(f"WebSocket handshake rejected with HTTP {exc.status_code}") from exc
    except trio_websocket.HandshakeError as exc:
        raise TransportError(f"WebSocket handshake failed: {exc!r}") from exc
    except trio_websocket.DisconnectionTimeout as exc:
        raise SocketClosed(
            "close handshake timed out", disconnect=DisconnectReason.CONNECTION_LOST
        ) from exc
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise SocketClosed(
            f"connection broken: {exc!r}", disconnect=DisconnectReason.CONNECTION_LOST
        ) from exc
    except ssl.SSLError as exc:
        raise TransportError(f"TLS error: {exc}") from exc
    except OSError as exc:
        raise TransportError(f"network error: {exc}") from exc


#: The reason trio-websocket gives its own 1009 close when a message exceeds its size limit.
_TOO_BIG_PREFIX = "Exceeded maximum message size"


def _closed(reason: trio_websocket.CloseReason | None) -> SocketClosed:
    """Why trio-websocket says the connection closed, as a typed :class:`SocketClosed`."""
    if reason is None:
        # Its reader stops without a close reason only after a protocol error from the peer.
        return SocketClosed(
            "closed: the peer broke the protocol", disconnect=DisconnectReason.PROTOCOL_ERROR
        )
    code = reason.code
    if code == 1009 and (reason.reason or "").startswith(_TOO_BIG_PREFIX):
        return SocketClosed(
            f"frame too large: {reason.reason}",
            disconnect=DisconnectReason.FRAME_TOO_LARGE,
            close_code=code,
        )
    if code == 1006:
        return SocketClosed(
            "closed by peer: code 1006 (no close frame)",
            disconnect=DisconnectReason.CONNECTION_LOST,
        )
    text = f"closed by peer: code {code}"
    if reason.reason:
        text += f" ({reason.reason})"
    return SocketClosed(text, disconnect=DisconnectReason.CLOSED_BY_SERVER, close_code=code)


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
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
) -> AsyncIterator[Transport]:
    """Open a WebSocket with trio-websocket (certificates verified for wss:// by default).

    A message larger than ``max_frame_bytes`` is dropped as it arrives (never held whole): the
    socket closes with code 1009 and ``receive`` raises a
    :class:`~flexconn.errors.ConnectionClosed` whose reason says so.

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
        max_message_size=max_frame_bytes,
        receive_buffer_size=65536,
    )
    with _translated():
        async with manager as ws:
            yield _TrioWebsocketTransport(ws)


#: The transport :func:`flexconn.connection.open_connection` uses unless told otherwise.
DEFAULT_TRANSPORT: TransportFactory = open_sansio_websocket
