"""A :class:`~flexconn.transport.Transport` made of a thin trio shell around a sans-IO core.

Design note. The WebSocket protocol itself (handshake, framing, masking, control frames, the
closing handshake, size limits) is websockets' sans-IO :class:`~websockets.client.ClientProtocol`;
this module only moves bytes between it and a trio stream. There is no background task and no
channel between the socket and the caller:

* :meth:`receive` returns the next message already parsed; only when none is left does it read
  the socket, in one large chunk, and feed the whole chunk to the core, which yields every frame
  in it at once. A burst of small frames thus costs one system call and one trip through the
  scheduler, not one of each per frame (the cost that dominates trio-websocket's reader task).
  A queued message is returned without yielding to the scheduler, so a reader that keeps up
  yields once per chunk read; cancellation is still noticed on every call.
* Control frames are handled where they are read: a pong wakes the :meth:`ping` waiting for it
  (and any older ping: pongs may be coalesced), a ping or a close frame is answered at once.
  A pong is therefore only seen while some task is receiving; flexconn's connection always is,
  except while a slow consumer blocks its delivery, which its heartbeat takes into account.
* Writes are serialised by one lock, and the core's outgoing bytes are only drained under it, so
  frames reach the wire in the order the core produced them. A write interrupted half-way (a
  cancelled ``send_all`` may have sent part of a frame) leaves the stream unusable: the
  transport then aborts the socket, so that every operation, the pending receive included, fails
  with :class:`~flexconn.errors.ConnectionClosed` and the caller reconnects.

Every foreign exception (trio's stream errors, ``OSError``, ``ssl`` errors, websockets' handshake
and protocol errors) is translated to :mod:`flexconn.errors` in :func:`_translated`, the one
boundary of this module. A closed socket raises :class:`~flexconn._socket.SocketClosed`, which
says why it closed (the peer's close code, a frame over ``max_frame_bytes``, a protocol error, a
lost connection). The core logs through a :class:`~flexconn._socket.RedactingLogger`, so the
login command's signature never reaches a log record, at any level.
"""

from __future__ import annotations

import itertools
import logging
import ssl
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Final, cast

import trio
from websockets.client import ClientProtocol
from websockets.exceptions import (
    InvalidHandshake,
    InvalidState,
    InvalidStatus,
    InvalidURI,
    PayloadTooBig,
    WebSocketException,
)
from websockets.frames import BINARY, CLOSE, CONT, PING, PONG, TEXT, CloseCode, Frame
from websockets.protocol import CLOSED, CONNECTING, OPEN, Event
from websockets.uri import parse_uri

from flexconn._socket import DisconnectReason, RedactingLogger, SocketClosed
from flexconn.config import DEFAULT_MAX_FRAME_BYTES
from flexconn.errors import ConnectionClosed, ConnectTimeout, TransportError

__all__ = ["DEFAULT_RECEIVE_BYTES", "SansioTransport", "open_sansio_websocket"]

log = logging.getLogger("flexconn.transport.sansio")

#: Bytes asked of the socket per read: large enough to hold dozens of depth snapshots.
DEFAULT_RECEIVE_BYTES: Final = 256 * 1024


@contextmanager
def _translated() -> Iterator[None]:
    """Map trio, socket, TLS and websockets exceptions onto flexconn's tree."""
    try:
        yield
    except trio.TooSlowError as exc:
        raise ConnectTimeout("WebSocket connect timed out") from exc
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise TransportError(f"WebSocket handshake rejected with HTTP {status}") from exc
    except InvalidHandshake as exc:
        raise TransportError(f"WebSocket handshake failed: {exc}") from exc
    except InvalidState as exc:
        raise ConnectionClosed(f"connection is closing: {exc}") from exc
    except InvalidURI as exc:
        raise ValueError(str(exc)) from exc
    except WebSocketException as exc:
        raise TransportError(f"WebSocket error: {exc}") from exc
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        cause = exc.__cause__
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            raise TransportError(f"TLS error: {cause}") from exc
        raise SocketClosed(
            f"connection broken: {exc!r}", disconnect=DisconnectReason.CONNECTION_LOST
        ) from exc
    except ssl.SSLError as exc:
        raise TransportError(f"TLS error: {exc}") from exc
    except OSError as exc:
        raise TransportError(f"network error: {exc}") from exc


def _socket_stream(stream: trio.abc.Stream) -> trio.SocketStream | None:
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    return stream if isinstance(stream, trio.SocketStream) else None


class SansioTransport:
    """:class:`~flexconn.transport.Transport` over websockets' sans-IO client protocol.

    Built by :func:`open_sansio_websocket`; see the module notes for how it works.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        protocol: ClientProtocol,
        *,
        receive_bytes: int = DEFAULT_RECEIVE_BYTES,
        close_timeout: float = 2.0,
    ) -> None:
        self._stream = stream
        self._protocol = protocol
        self._receive_bytes = receive_bytes
        self._close_timeout = close_timeout
        self._messages: deque[str] = deque()
        self._fragments: list[bytes | bytearray | memoryview] = []
        self._fragment_opcode = TEXT
        self._send_lock = trio.Lock()
        self._pings: dict[bytes, trio.Event] = {}
        self._ping_ids = itertools.count(1)
        self._closed: ConnectionClosed | None = None
        self._peer_closed = trio.Event()
        self._reading = False
        self._local_close = False

    # -- Transport -------------------------------------------------------------------------------

    async def receive(self) -> str:
        """The next text message (binary messages are decoded leniently as UTF-8).

        Raises:
            ConnectionClosed: the connection is closed and every message before the close was
                returned.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        messages = self._messages
        while not messages:
            await self._read()
        return messages.popleft()

    async def send(self, text: str) -> None:
        """Send one text message.

        Raises:
            ConnectionClosed: the connection is closed or closing.
        """
        if self._closed is not None:
            raise self._closed_error()
        with _translated():
            async with self._send_lock:
                self._protocol.send_text(text.encode())
                await self._write_pending()

    async def ping(self) -> None:
        """Send a ping frame and wait for its pong (read by whoever is receiving).

        Raises:
            ConnectionClosed: the connection closed before the pong arrived.
        """
        if self._closed is not None:
            raise self._closed_error()
        payload = next(self._ping_ids).to_bytes(4, "big")
        arrived = self._pings[payload] = trio.Event()
        try:
            with _translated():
                async with self._send_lock:
                    self._protocol.send_ping(payload)
                    await self._write_pending()
            await arrived.wait()
            if payload in self._pings and self._closed is not None:
                raise self._closed_error()  # woken by the close, not by a pong
        finally:
            self._pings.pop(payload, None)

    async def aclose(self, reason: str = "") -> None:
        """Close: send a close frame, wait (``close_timeout`` at most) for the peer's, then
        close the socket. Idempotent; never raises for a connection that is already broken."""
        if self._local_close:
            return
        self._local_close = True
        protocol = self._protocol
        try:
            if protocol.state is OPEN and self._closed is None:
                self._close_with(ConnectionClosed(f"closed by us ({reason or 'normal'})"))
                with trio.move_on_after(self._close_timeout):
                    try:
                        with _translated():
                            async with self._send_lock:
                                protocol.send_close(CloseCode.NORMAL_CLOSURE, reason)
                                await self._write_pending()
                            await self._wait_peer_close()
                    except TransportError as exc:
                        log.debug("closing handshake cut short: %s", exc)
            else:
                self._close_with(ConnectionClosed("closed"))
        finally:
            await trio.aclose_forcefully(self._stream)

    # -- internals -------------------------------------------------------------------------------

    async def _read(self) -> None:
        """Read one chunk from the socket and process every frame in it."""
        if self._closed is not None:
            raise self._closed_error()
        protocol = self._protocol
        self._reading = True
        try:
            with _translated():
                data = await self._stream.receive_some(self._receive_bytes)
        except TransportError as exc:
            self._close_with(
                exc
                if isinstance(exc, ConnectionClosed)
                else SocketClosed(str(exc), disconnect=DisconnectReason.TRANSPORT_ERROR)
            )
            raise
        finally:
            self._reading = False
        if data:
            protocol.receive_data(data)
        else:
            protocol.receive_eof()
        await self._absorb(protocol.events_received(), eof=not data)

    async def _absorb(self, events: list[Event], *, eof: bool) -> None:
        """Queue the messages among ``events`` and act on the control frames."""
        answer = self._process(events) or eof
        if answer or self._protocol.state is not OPEN:
            await self._after_control()

    def _process(self, events: list[Event]) -> bool:
        """Queue the messages among ``events``; returns whether the core queued an answer."""
        messages = self._messages
        answer = False
        # Past the opening handshake the core produces nothing but frames.
        for event in cast(list[Frame], events):
            opcode = event.opcode
            if opcode is TEXT and event.fin:
                try:
                    messages.append(str(event.data, "utf-8"))
                except UnicodeDecodeError as exc:
                    self._invalid_utf8(exc)
                    return True
            elif opcode is TEXT or opcode is BINARY or opcode is CONT:
                if opcode is not CONT:
                    self._fragment_opcode = opcode
                self._fragments.append(event.data)
                if event.fin:
                    if not self._message(b"".join(self._fragments)):
                        return True
                    self._fragments.clear()
            elif opcode is PONG:
                self._ponged(bytes(event.data))
            elif opcode is PING or opcode is CLOSE:
                answer = True
        return answer

    def _message(self, payload: bytes) -> bool:
        if self._fragment_opcode is BINARY:
            self._messages.append(payload.decode("utf-8", "replace"))
            return True
        try:
            self._messages.append(payload.decode())
        except UnicodeDecodeError as exc:
            self._invalid_utf8(exc)
            return False
        return True

    def _invalid_utf8(self, exc: UnicodeDecodeError) -> None:
        self._protocol.fail(CloseCode.INVALID_DATA, "invalid UTF-8")
        self._close_with(
            SocketClosed(
                f"peer sent invalid UTF-8: {exc}",
                disconnect=DisconnectReason.PROTOCOL_ERROR,
                close_code=CloseCode.INVALID_DATA,
            )
        )

    def _ponged(self, payload: bytes) -> None:
        if payload not in self._pings:
            return  # unsolicited
        for key in list(self._pings):
            self._pings.pop(key).set()
            if key == payload:
                break

    async def _after_control(self) -> None:
        """Send what the core queued in answer (pong, close echo) and note a closed peer."""
        protocol = self._protocol
        try:
            with _translated():
                async with self._send_lock:
                    await self._write_pending()
        except TransportError:
            if protocol.state is OPEN:
                raise
        if protocol.state is not OPEN:
            self._close_with(self._close_reason())
        if protocol.close_rcvd is not None or protocol.state is CLOSED:
            self._peer_closed.set()

    def _close_reason(self) -> ConnectionClosed:
        """Why the core closed: the frame too large, a protocol error, or the peer's close."""
        protocol = self._protocol
        failure = protocol.parser_exc
        if isinstance(failure, PayloadTooBig):
            return SocketClosed(
                f"frame too large: {failure}",
                disconnect=DisconnectReason.FRAME_TOO_LARGE,
                close_code=CloseCode.MESSAGE_TOO_BIG,
            )
        if failure is not None and not isinstance(failure, EOFError):
            sent = protocol.close_sent
            return SocketClosed(
                f"protocol error: {failure}",
                disconnect=DisconnectReason.PROTOCOL_ERROR,
                close_code=sent.code if sent is not None else None,
            )
        close = protocol.close_rcvd
        if close is None:
            if self._closed is not None:
                return self._closed
            return SocketClosed(
                "closed by peer: code 1006 (no close frame)",
                disconnect=DisconnectReason.CONNECTION_LOST,
            )
        text = f"closed by peer: code {close.code}"
        return SocketClosed(
            f"{text} ({close.reason})" if close.reason else text,
            disconnect=DisconnectReason.CLOSED_BY_SERVER,
            close_code=close.code,
        )

    def _closed_error(self) -> ConnectionClosed:
        """A fresh exception for an operation on the closed connection (raising the one stored
        over and over would grow its traceback with every raise)."""
        closed = self._closed
        assert closed is not None
        if isinstance(closed, SocketClosed):
            return closed.again()
        return ConnectionClosed(closed.reason)

    def _close_with(self, error: ConnectionClosed) -> None:
        """Remember why the connection is over and wake every ping still waiting."""
        if self._closed is None:
            self._closed = error
        for arrived in self._pings.values():
            arrived.set()

    async def _write_pending(self) -> None:
        """Write what the core queued (the caller holds the send lock)."""
        chunks = self._protocol.data_to_send()
        if not chunks:
            return
        stream = self._stream
        data = b"".join(chunks)
        try:
            if data:
                await stream.send_all(data)
        except BaseException:
            self._abort("a write was interrupted: the stream is unusable")
            raise
        if not chunks[-1] and isinstance(stream, trio.abc.HalfCloseableStream):
            # The core is done with the connection (the peer closed); a peer that is already
            # gone cannot refuse our end of the stream in any way that matters.
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await stream.send_eof()

    def _abort(self, reason: str) -> None:
        """Fail everything now: close the socket under any task waiting on it."""
        self._close_with(SocketClosed(reason, disconnect=DisconnectReason.TRANSPORT_ERROR))
        sock = _socket_stream(self._stream)
        if sock is not None:
            sock.socket.close()

    async def _wait_peer_close(self) -> None:
        """After our close frame: wait for the peer's (reading it here unless a task already
        is), discarding any message still in flight."""
        if self._reading:
            await self._peer_closed.wait()
            return
        protocol = self._protocol
        while protocol.close_rcvd is None and protocol.state is not CLOSED:
            data = await self._stream.receive_some(self._receive_bytes)
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            protocol.events_received()
            if not data:
                return

    async def _handshake(self) -> None:
        """Send the opening handshake and read the response (and any frames behind it)."""
        protocol = self._protocol
        stream = self._stream
        await stream.send_all(b"".join(protocol.data_to_send()))
        while protocol.state is CONNECTING:
            data = await stream.receive_some(self._receive_bytes)
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            events = protocol.events_received()
            if protocol.handshake_exc is not None:
                raise protocol.handshake_exc
            if protocol.state is not CONNECTING:
                # The response, then whatever the server sent right behind it (a greeting, a
                # ping, even a frame the core refused), handled as any other read.
                await self._absorb(events[1:], eof=not data)
        # (an end of stream before the response sets ``handshake_exc``, so the loop ends)


@asynccontextmanager
async def open_sansio_websocket(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    connect_timeout: float = 10.0,
    close_timeout: float = 2.0,
    receive_bytes: int = DEFAULT_RECEIVE_BYTES,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
) -> AsyncIterator[SansioTransport]:
    """Open a WebSocket on trio with websockets' sans-IO client (see the module notes).

    ``wss://`` verifies the server's certificate and host name with the system's trust store
    unless another ``ssl_context`` is given. Leaving the block closes the connection (a closing
    handshake of at most ``close_timeout`` seconds).

    Args:
        url: ``ws://`` or ``wss://`` URL.
        ssl_context: TLS settings for ``wss://``.
        connect_timeout: seconds allowed for TCP, TLS and the WebSocket handshake together.
        close_timeout: seconds to wait for the server's close frame when closing.
        receive_bytes: bytes asked of the socket per read.
        max_frame_bytes: the largest inbound message accepted (its fragments together). A
            larger one is refused from its header, before its payload is read: the socket
            closes with code 1009 and :meth:`~SansioTransport.receive` raises a
            :class:`~flexconn.errors.ConnectionClosed` whose reason says so.

    Raises:
        ConnectTimeout: connecting took longer than ``connect_timeout``.
        TransportError: the connection, TLS or the handshake failed (HTTP status included).
        ValueError: ``url`` is not a WebSocket URL.
    """
    with _translated():
        uri = parse_uri(url)
        with trio.fail_after(connect_timeout):
            stream: trio.abc.Stream = await trio.open_tcp_stream(uri.host, uri.port)
            try:
                if uri.secure:
                    context = ssl_context if ssl_context is not None else _default_context()
                    stream = trio.SSLStream(
                        stream, context, server_hostname=uri.host, https_compatible=True
                    )
                    await stream.do_handshake()
                protocol = ClientProtocol(
                    uri, max_size=max_frame_bytes, logger=RedactingLogger(log)
                )
                protocol.send_request(protocol.connect())
                transport = SansioTransport(
                    stream, protocol, receive_bytes=receive_bytes, close_timeout=close_timeout
                )
                await transport._handshake()
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
    try:
        yield transport
    finally:
        await transport.aclose()


def _default_context() -> ssl.SSLContext:
    return ssl.create_default_context()
