"""The simulator's WebSocket server: trio sockets around wsproto and :class:`Session`.

Design note. wsproto parses the opening handshake and the client's frames; the server writes its
own frames directly (they are unmasked and no extension is negotiated, so a
:class:`~flexconn.sim.wire.Frame` is encoded once and its bytes shared by every connection). Each
connection runs three tasks: a reader (bytes -> wsproto events -> :class:`Session`), a writer
(drains the outbox, many frames per ``send_all``) and a watchdog (idle rule, close timeouts,
stalls).

Slow clients. Nothing a client does can block the publishers or other clients: pushing a frame
only appends it to the connection's outbox. Depth snapshots are conflated there: a queued, unsent
depth message of a channel is dropped when a newer one arrives (each is a full snapshot, and
``seqNum`` still increases), so a client that reads slowly gets fewer, fresher books rather than
a backlog. Every other frame must be delivered; when the outbox holds more than
``WsOptions.outbox_limit`` bytes (16 MiB by default) the client is too slow and its TCP
connection is closed without a close frame (a close frame could not get past the backlog).

Idle rule. A connection that has neither been pushed channel data (counted when it is queued,
so a slow reader fed conflated depth stays open) nor received a ping (a WebSocket ping frame or
the text message ``ping``, answered with the text ``pong``) for ``WsOptions.idle_timeout``
seconds (60) is closed with code 1000. Command replies do not count.

Rate limits: connections beyond ``connections_per_minute`` complete the handshake, receive
``{"event":"error","success":false,"message":..,"code":"20007",...}`` and are closed with 1008.
Message limits are the session's (:mod:`flexconn.sim.ws_session`).

On connect the server sends ``{"nonce": "<hex>"}`` before anything else: the documents' own
sample client waits for a message carrying ``nonce`` before it logs in (``greeting=False`` turns
it off).

All timing uses ``trio.current_time``, so ``MockClock`` governs it.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

import attrs
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError as WsProtocolError

from flexconn.errors import ERROR_CODES
from flexconn.protocol import MAX_MESSAGE_LENGTH
from flexconn.sim import ws_messages as msg
from flexconn.sim.exchange import SimExchange
from flexconn.sim.ratelimit import Limiter
from flexconn.sim.wire import OP_BINARY, OP_TEXT, Frame
from flexconn.sim.ws_session import DEFAULT_LOGIN_WINDOW_MS, Session, SessionOptions

__all__ = ["WS_PATH", "WsOptions", "WsServer", "WsStatistics", "serve_ws"]

logger = logging.getLogger("flexconn.sim.ws")

#: The WebSocket endpoint's path.
WS_PATH: Final = "/v2/websocket"

_OP_CLOSE: Final = 0x8
_OP_PONG: Final = 0xA
_RECEIVE_BYTES: Final = 65536
_WRITE_BATCH_BYTES: Final = 256 * 1024
_PONG: Final = Frame(b"pong", push=False)
_ids = itertools.count(1)


@attrs.frozen(kw_only=True)
class WsOptions:
    """Tunables of the WebSocket server; the defaults are the exchange's documented values.

    Attributes:
        path: the endpoint path; other paths get HTTP 404.
        idle_timeout: seconds without pushed data or pings before the server closes.
        login_window_ms: how far a login timestamp may be from the server clock (20024).
        max_message_length: longest accepted message in UTF-8 bytes (20027).
        outbox_limit: bytes queued for one client before it counts as too slow.
        max_message_bytes: a message this large closes the connection (1009) unread.
        handshake_timeout: seconds allowed for the opening handshake.
        close_timeout: seconds to wait for the client's close frame after ours.
        greeting: send the ``{"nonce": ...}`` message on connect.
    """

    path: str = WS_PATH
    idle_timeout: float = 60.0
    login_window_ms: int = DEFAULT_LOGIN_WINDOW_MS
    max_message_length: int = MAX_MESSAGE_LENGTH
    outbox_limit: int = 16 * 1024 * 1024
    max_message_bytes: int = 1024 * 1024
    handshake_timeout: float = 10.0
    close_timeout: float = 2.0
    greeting: bool = True


@attrs.frozen(kw_only=True)
class WsStatistics:
    """Counters of one WebSocket server since it started.

    Attributes:
        connections_open: connections open now.
        connections_accepted: handshakes completed.
        frames_sent: frames written to sockets (data, replies and control frames).
        bytes_sent: their bytes, headers included.
        frames_conflated: queued depth snapshots replaced by a newer one before being sent.
        slow_clients_dropped: connections closed because their outbox overflowed.
    """

    connections_open: int
    connections_accepted: int
    frames_sent: int
    bytes_sent: int
    frames_conflated: int
    slow_clients_dropped: int


class _Counters:
    __slots__ = ("accepted", "bytes", "conflated", "dropped", "frames", "open")

    def __init__(self) -> None:
        self.open = 0
        self.accepted = 0
        self.frames = 0
        self.bytes = 0
        self.conflated = 0
        self.dropped = 0


def _close_frame(code: int | None, reason: str = "") -> Frame:
    payload = b"" if code is None else struct.pack("!H", code) + reason.encode()[:120]
    return Frame(payload, push=False, opcode=_OP_CLOSE)


class _Connection:
    """One accepted WebSocket connection (a fan-out subscriber and a fault target)."""

    def __init__(
        self,
        exchange: SimExchange,
        options: WsOptions,
        stream: trio.abc.Stream,
        ws: WSConnection,
        counters: _Counters,
    ) -> None:
        self.id = next(_ids)
        self._counters = counters
        self._exchange = exchange
        self._options = options
        self._stream = stream
        self._ws = ws
        self.session = Session(
            exchange,
            self,
            self._reply,
            options=SessionOptions(
                login_window_ms=options.login_window_ms,
                max_message_length=options.max_message_length,
            ),
        )
        self._queue: deque[Frame] = deque()
        self._queued = 0
        self._snapshots: dict[str, Frame] = {}
        self._dead: set[Frame] = set()
        self._wake = trio.Event()
        self._poke = trio.Event()
        self._done = trio.Event()
        self._alive_at = trio.current_time()
        self._closing = False
        self._close_sent = False
        self._peer_closed = False
        self._close_deadline = float("inf")
        self._stall_until = 0.0
        self._resumed = trio.Event()
        self._countdown: int | None = None
        self._delayed: deque[tuple[float, Frame]] = deque()
        self._delay_wake = trio.Event()

    def __repr__(self) -> str:
        return f"<ws connection {self.id} account={self.account_id}>"

    # --- Subscriber / ConnectionControl -----------------------------------------------------

    @property
    def account_id(self) -> str | None:
        return self.session.account_id

    def push(self, frame: Frame) -> None:
        if self._done.is_set() or self._closing or (self._stall_until and self._stalled()):
            return
        if frame.push:
            self._alive_at = trio.current_time()
        self._enqueue(frame)

    def drop(self, close_code: int | None) -> None:
        if close_code is None:
            logger.info("connection %d dropped (fault)", self.id)
            self._done.set()
        else:
            self.begin_close(close_code, "dropped")

    def drop_after(self, frames: int) -> None:
        if frames == 0:
            self._done.set()
        else:
            self._countdown = frames

    def stall(self, until: float) -> None:
        if until <= trio.current_time():
            return
        self._stall_until = until
        self._resumed = trio.Event()
        self._poke.set()

    def resume(self) -> None:
        if self._stall_until:
            self._resumed.set()
            self._poke.set()

    def _stalled(self) -> bool:
        """Whether a stall is in force now; ends it (and restarts the idle clock) once over."""
        until = self._stall_until
        if not until:
            return False
        now = trio.current_time()
        if now < until and not self._resumed.is_set():
            return True
        self._stall_until = 0.0
        self._alive_at = now
        return False

    def inject(self, frame: str | bytes) -> None:
        if isinstance(frame, str):
            self._enqueue(Frame(frame.encode(), opcode=OP_TEXT))
        else:
            self._enqueue(Frame(frame, opcode=OP_BINARY))

    # --- outbox -----------------------------------------------------------------------------

    def _enqueue(self, frame: Frame) -> None:
        if self._done.is_set():
            return
        key = frame.conflate_key
        if key is not None:
            stale = self._snapshots.get(key)
            if stale is not None:
                self._dead.add(stale)
                self._queued -= len(stale.wire)
                self._counters.conflated += 1
            self._snapshots[key] = frame
        self._queue.append(frame)
        self._queued += len(frame.wire)
        if self._queued > self._options.outbox_limit:
            logger.warning(
                "connection %d too slow (%d bytes queued): disconnecting", self.id, self._queued
            )
            self._counters.dropped += 1
            self._done.set()
            return
        self._wake.set()

    def _reply(self, frame: Frame) -> None:
        delay = self._exchange.faults.reply_delay
        if delay <= 0 and not self._delayed:
            self._enqueue(frame)
            return
        due = trio.current_time() + delay
        if self._delayed:
            due = max(due, self._delayed[-1][0])
        self._delayed.append((due, frame))
        self._delay_wake.set()

    def begin_close(self, code: int, reason: str) -> None:
        """Start the closing handshake: our close frame, then wait for the client's."""
        if self._closing or self._done.is_set():
            return
        self._closing = True
        self._close_deadline = trio.current_time() + self._options.close_timeout
        self._queue.append(_close_frame(code, reason))
        self._wake.set()
        self._poke.set()

    # --- tasks ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it closes."""
        faults = self._exchange.faults
        faults.attach(self)
        self._counters.open += 1
        self._counters.accepted += 1
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._guard, self._reader)
                nursery.start_soon(self._guard, self._writer)
                nursery.start_soon(self._guard, self._watchdog)
                nursery.start_soon(self._guard, self._delayer)
                await self._done.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._counters.open -= 1
            faults.detach(self)
            self._exchange.fanout.remove(self)
            self._queue.clear()
            logger.debug("connection %d closed", self.id)

    async def _guard(self, task: Callable[[], Awaitable[None]]) -> None:
        """Run one of the connection's tasks; any failure ends the connection."""
        try:
            await task()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            logger.debug("connection %d: transport ended: %r", self.id, exc)
            self._done.set()
        except WsProtocolError as exc:
            logger.info("connection %d: bad frame from client: %s", self.id, exc)
            self._done.set()
        except Exception:
            logger.exception("connection %d: internal error", self.id)
            self._done.set()

    async def _wait_unstalled(self) -> None:
        if self._stalled():
            with trio.move_on_at(self._stall_until):
                await self._resumed.wait()
            self._stalled()

    async def _reader(self) -> None:
        ws = self._ws
        stream = self._stream
        parts: list[str] = []
        size = 0
        binary = False
        while True:
            for event in ws.events():
                if isinstance(event, TextMessage | BytesMessage):
                    if isinstance(event, TextMessage):
                        parts.append(event.data)
                        size += len(event.data)
                    else:
                        binary = True
                        size += len(event.data)
                    if size > self._options.max_message_bytes:
                        self.begin_close(1009, "message too big")
                        return
                    if event.message_finished:
                        if binary:
                            self.session.handle_binary()
                        else:
                            self._on_text("".join(parts))
                        parts.clear()
                        size = 0
                        binary = False
                elif isinstance(event, Ping):
                    self._alive_at = trio.current_time()
                    self._enqueue(Frame(bytes(event.payload), push=False, opcode=_OP_PONG))
                elif isinstance(event, CloseConnection):
                    self._peer_closed = True
                    if self._close_sent:
                        self._done.set()
                    elif not self._closing:
                        self._closing = True
                        self._close_deadline = trio.current_time() + self._options.close_timeout
                        code = event.code if event.code not in (1005, 1006) else None
                        self._queue.append(_close_frame(code))
                        self._wake.set()
                        self._poke.set()
                    return
            data = await stream.receive_some(_RECEIVE_BYTES)
            if not data:
                self._done.set()
                return
            if self._stall_until:
                await self._wait_unstalled()
            ws.receive_data(data if isinstance(data, bytes) else bytes(data))

    def _on_text(self, text: str) -> None:
        if text == "ping":
            self._alive_at = trio.current_time()
            self._enqueue(_PONG)
        else:
            self.session.handle(text)

    async def _writer(self) -> None:
        queue = self._queue
        dead = self._dead
        snapshots = self._snapshots
        stream = self._stream
        while True:
            if not queue:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            if self._stall_until:
                await self._wait_unstalled()
            chunks: list[bytes] = []
            size = 0
            stop = False
            while queue and size < _WRITE_BATCH_BYTES:
                frame = queue.popleft()
                if dead and frame in dead:
                    dead.discard(frame)
                    continue
                key = frame.conflate_key
                if key is not None and snapshots.get(key) is frame:
                    del snapshots[key]
                wire = frame.wire
                chunks.append(wire)
                size += len(wire)
                if frame.opcode == _OP_CLOSE:
                    self._close_sent = True
                    stop = True
                    break
                if self._countdown is not None:
                    self._countdown -= 1
                    if self._countdown <= 0:
                        stop = True
                        break
            self._queued -= size
            if not chunks:
                continue
            await stream.send_all(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            counters = self._counters
            counters.frames += len(chunks)
            counters.bytes += size
            if stop:
                # After our close frame only the client's may still arrive (the reader or the
                # watchdog ends the connection); after the fault's quota nothing more is sent.
                if self._countdown is not None and self._countdown <= 0:
                    logger.info("connection %d dropped after its frame quota (fault)", self.id)
                    self._done.set()
                elif self._peer_closed:
                    self._done.set()
                return

    async def _watchdog(self) -> None:
        idle = self._options.idle_timeout
        while True:
            now = trio.current_time()
            if self._closing:
                if now >= self._close_deadline:
                    self._done.set()
                    return
                deadline = self._close_deadline
            elif self._stalled():
                deadline = self._stall_until
            else:
                deadline = self._alive_at + idle
                if now >= deadline:
                    logger.info("connection %d idle for %.0f s: closing", self.id, idle)
                    self.begin_close(1000, "idle timeout")
                    continue
            self._poke = trio.Event()
            with trio.move_on_at(deadline):
                await self._poke.wait()

    async def _delayer(self) -> None:
        delayed = self._delayed
        while True:
            if not delayed:
                self._delay_wake = trio.Event()
                await self._delay_wake.wait()
                continue
            due, frame = delayed[0]
            await trio.sleep_until(due)
            delayed.popleft()
            self._enqueue(frame)


class WsServer:
    """The WebSocket server of one exchange; :meth:`serve` runs it, :meth:`statistics` counts.

    Args:
        exchange: the shared exchange state.
        options: server tunables.
    """

    def __init__(
        self,
        exchange: SimExchange,
        options: WsOptions = WsOptions(),
    ) -> None:
        self._exchange = exchange
        self._options = options
        self._connects = Limiter(exchange.rate_limits.connections_per_minute, period=60.0)
        self._counters = _Counters()
        #: ``ws://host:port/v2/websocket`` once serving.
        self.url: str | None = None

    def statistics(self) -> WsStatistics:
        """A snapshot of the server's counters."""
        c = self._counters
        return WsStatistics(
            connections_open=c.open,
            connections_accepted=c.accepted,
            frames_sent=c.frames,
            bytes_sent=c.bytes,
            frames_conflated=c.conflated,
            slow_clients_dropped=c.dropped,
        )

    async def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` until cancelled; reports the URL through ``task_status``."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[1]
        url_host = f"[{host}]" if ":" in host else host
        self.url = f"ws://{url_host}:{bound}{self._options.path}"
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self.handle, listeners)
            logger.info("websocket server listening on %s", self.url)
            task_status.started(self.url)

    async def handle(self, stream: trio.abc.Stream) -> None:
        try:
            await self._handle(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, WsProtocolError):
            pass
        except Exception:
            logger.exception("websocket handler failed")
        finally:
            await trio.aclose_forcefully(stream)

    async def _handle(self, stream: trio.abc.Stream) -> None:
        exchange = self._exchange
        options = self._options
        refusal = exchange.faults.refusal()
        if refusal is not None and refusal.http_status is None:
            logger.info("refusing a connection (fault)")
            return
        ws = WSConnection(ConnectionType.SERVER)
        request: Request | None = None
        with trio.move_on_after(options.handshake_timeout):
            while request is None:
                data = await stream.receive_some(_RECEIVE_BYTES)
                if not data:
                    return
                ws.receive_data(data if isinstance(data, bytes) else bytes(data))
                for event in ws.events():
                    if isinstance(event, Request):
                        request = event
                        break
        if request is None:
            return
        if request.target.partition("?")[0] != options.path:
            await stream.send_all(ws.send(RejectConnection(status_code=404)))
            return
        if refusal is not None:
            assert refusal.http_status is not None
            logger.info("refusing a connection with HTTP %d (fault)", refusal.http_status)
            await stream.send_all(ws.send(RejectConnection(status_code=refusal.http_status)))
            return
        await stream.send_all(ws.send(AcceptConnection()))
        connection = _Connection(exchange, options, stream, ws, self._counters)
        if not self._connects.allow(trio.current_time()):
            logger.info("connection rate limit exceeded: refusing connection %d", connection.id)
            reply = msg.subscription_failure(
                "error", None, "20007", ERROR_CODES["20007"][0], exchange.now_ms()
            )
            connection.push(Frame(msg.dumps(reply), push=False))
            connection.begin_close(1008, "too many connections")
        elif options.greeting:
            nonce = {"nonce": secrets.token_hex(16)}
            connection.push(Frame(msg.dumps(nonce), push=False))
        await connection.run()


async def serve_ws(
    exchange: SimExchange,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    options: WsOptions = WsOptions(),
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the WebSocket API on ``host:port`` until cancelled.

    Args:
        exchange: the shared exchange state.
        host: the interface to bind.
        port: the TCP port; 0 picks a free one.
        options: server tunables.
        task_status: receives the server's URL (``ws://host:port/v2/websocket``) once it is
            listening.
    """
    await WsServer(exchange, options).serve(host=host, port=port, task_status=task_status)
