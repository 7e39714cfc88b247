"""``open_connection``: the supervisor of one CoinFLEX WebSocket, across reconnects.

Design note. A :class:`Connection` owns three kinds of task, all inside one nursery:

* the *supervisor* runs sessions in a loop. A session is one socket: connect, log in, deliver a
  :class:`~flexconn.feeds.StreamRestarted` marker to every feed (after a reconnect), resubscribe
  every active channel in one combined ``subscribe`` command, then wait until the socket dies.
  Between sessions it backs off (first retry immediate, then capped exponential with full jitter)
  and respects the exchange's limit on new connections. Fatal errors (a refused API key or
  signature) end the connection with that error instead of retrying in a storm.
* per session, a *reader* decodes every frame (sans-IO, :func:`flexconn.protocol.decode`) and
  routes it: command replies resolve their waiters, channel updates go to the feeds, everything
  else to the :meth:`Connection.events` stream. Depth snapshots for a live subscription are the
  exception: routed on a peek at their text, they are decoded by the first consumer that takes
  them (a ``latest`` feed conflates most of them away unread, and pays nothing for those).
* per session, a *heartbeat* pings on an interval and declares the socket dead when neither a pong
  nor any other frame arrives in time, which catches half-open connections TCP does not notice.

The moment a socket is considered dead (the first error of its tasks: heartbeat timeout, close,
transport error), before its closing handshake, the connection reports a ``disconnected``
:class:`ConnectionEvent` with a typed :class:`DisconnectReason`, and invalidates every live book
(dropping the snapshots still buffered for it, so none read from the dead socket can validate it
again); a book is valid again only from the first snapshot of the resubscription. A session
after a drop that reaches ``CONNECTED`` reports ``reconnected``.

The protocol state (wanted and acknowledged channels, commands waiting for replies under typed
keys, the heartbeat's clock) is data in a sans-IO :class:`~flexconn._session.SessionCore`: the
tasks here feed it replies and the time and act on the events it returns. Fan-out lives in
:mod:`flexconn._subscriptions`, trade backfill in :mod:`flexconn._backfill`, live books in
:mod:`flexconn._livebooks`; every command leaves through the socket's one
:class:`~flexconn._writer.SocketWriter` (its command bucket and its write, under one lock).

The state machine of a session is linear and every step has a timeout::

    CONNECTING -> [LOGGING_IN ->] SUBSCRIBING -> CONNECTED -> (dead) -> RECONNECTING -> CONNECTING
"""

from __future__ import annotations

import logging
import random
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Any, Final, TypeVar

import attrs
import trio

from flexconn._backfill import TradeBackfill, backfill_trades
from flexconn._groups import collapsed, unwrapped
from flexconn._livebooks import BookKeeping, DeferredDepth, LiveOrderBook, keep_book
from flexconn._session import (
    LOGIN,
    PongReceived,
    ReplyKey,
    ReplyKind,
    ReplySettled,
    SessionCore,
    SessionEvent,
)
from flexconn._socket import DisconnectReason, SocketClosed
from flexconn._subscriptions import Blocked, Fanout, Subscription
from flexconn._writer import SocketWriter
from flexconn.auth import Credentials
from flexconn.book import InvalidationReason, OrderBook
from flexconn.channels import Channel
from flexconn.channels import order as order_channel
from flexconn.config import (
    DEFAULT_HEARTBEAT,
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_RECONNECT,
    DEFAULT_TIMEOUTS,
    Backpressure,
    Heartbeat,
    PingStyle,
    ReconnectPolicy,
    Timeouts,
)
from flexconn.errors import (
    AuthenticationError,
    ConnectionClosed,
    ConnectTimeout,
    ExchangeError,
    FlexconnError,
    HeartbeatTimeout,
    LocalProtocolError,
    RemoteProtocolError,
    ReplyTimeout,
    SubscriptionError,
    TransportError,
)
from flexconn.feeds import Feed, FeedStatistics, StreamRestarted
from flexconn.models.enums import DepthLevel, Side
from flexconn.models.notices import CancelAllNotice, OrderFailureNotice, OrderUpdate
from flexconn.models.orders import CancelOrder, ModifyOrder, OrderSpec
from flexconn.models.replies import Greeting, OrderReply
from flexconn.orders import OpenOrders
from flexconn.outbox import (
    DEFAULT_OUTBOX,
    CancelAck,
    ModifyAck,
    OrderLookup,
    Outbox,
    OutboxConfig,
    OutboxStatistics,
    PlaceAck,
)
from flexconn.protocol import routing
from flexconn.protocol.decode import decode, peek_depth_key
from flexconn.protocol.encode import encode
from flexconn.ratelimit import TokenBucket
from flexconn.transport import DEFAULT_TRANSPORT, Transport, TransportFactory, check_url

__all__ = [
    "Connection",
    "ConnectionEvent",
    "ConnectionEventKind",
    "ConnectionState",
    "ConnectionStatistics",
    "DisconnectReason",
    "InvalidationReason",
    "LiveOrderBook",
    "TradeBackfill",
    "connect",
    "open_connection",
]

log = logging.getLogger("flexconn.connection")
T = TypeVar("T")


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    LOGGING_IN = "logging_in"
    SUBSCRIBING = "subscribing"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class ConnectionEventKind(StrEnum):
    """What a :class:`ConnectionEvent` reports (a ``str``: ``event.kind == "state"`` works)."""

    #: The connection changed state (``state``; on ``RECONNECTING``, ``detail`` says why).
    STATE = "state"
    #: A socket ended, or an attempt to open one failed: ``reason`` is a
    #: :class:`DisconnectReason`, ``close_code`` the close frame's code when there was one.
    DISCONNECTED = "disconnected"
    #: A socket after a drop reached ``CONNECTED`` again (every channel resubscribed).
    RECONNECTED = "reconnected"
    #: A live book became invalid: ``market``, ``channel`` and an :class:`InvalidationReason`.
    BOOK_INVALIDATED = "book_invalidated"
    #: A frame that decoded but matches nothing flexconn knows (``payload``).
    UNKNOWN_MESSAGE = "unknown_message"
    #: A frame that could not be decoded (``payload`` is the raw frame).
    MALFORMED_FRAME = "malformed_frame"
    #: A reply no command was waiting for (``detail`` is its key, ``payload`` the reply).
    UNSOLICITED_REPLY = "unsolicited_reply"
    #: Trade backfill after a reconnect failed (``detail`` names the market and the error).
    BACKFILL_FAILED = "backfill_failed"


@attrs.frozen(kw_only=True)
class ConnectionEvent:
    """Something the caller may want to know about, from :meth:`Connection.events`.

    ``kind`` says what happened and which other fields are set:

    ========================  ===============================================================
    ``STATE``                 ``state``; ``detail`` (why, on ``RECONNECTING``)
    ``DISCONNECTED``          ``reason`` (:class:`DisconnectReason`), ``close_code``, ``detail``
    ``RECONNECTED``           ``state`` (``CONNECTED``), ``detail``
    ``BOOK_INVALIDATED``      ``market``, ``channel``, ``reason`` (:class:`InvalidationReason`)
    ``UNKNOWN_MESSAGE``       ``payload`` (the decoded unknown message)
    ``MALFORMED_FRAME``       ``payload`` (the raw frame), ``detail``
    ``UNSOLICITED_REPLY``     ``payload``, ``detail``
    ``BACKFILL_FAILED``       ``detail``
    ========================  ===============================================================

    Attributes:
        kind: what happened (a :class:`ConnectionEventKind`, which compares equal to its
            string value: ``"state"``, ``"disconnected"``...).
        state: the new state, for ``STATE`` (and ``RECONNECTED``) events.
        reason: the typed reason of a ``DISCONNECTED`` (:class:`DisconnectReason`) or
            ``BOOK_INVALIDATED`` (:class:`InvalidationReason`) event.
        close_code: the WebSocket close code of a ``DISCONNECTED`` event when a close frame
            ended the socket (the server's, or the 1009 flexconn sends for a frame too large).
        market: the book's market code, for ``BOOK_INVALIDATED``.
        channel: the book's depth channel (``depthL25:BTC-USD-SWAP-LIN``), for
            ``BOOK_INVALIDATED``.
        detail: a human-readable explanation (never contains secrets).
        payload: the unknown message or the raw malformed frame, so nothing is lost.
    """

    kind: ConnectionEventKind
    state: ConnectionState | None = None
    reason: DisconnectReason | InvalidationReason | None = None
    close_code: int | None = None
    market: str | None = None
    channel: str | None = None
    detail: str = ""
    payload: object = None


@attrs.frozen(kw_only=True)
class ConnectionStatistics:
    """Counters for one connection (contains no credentials).

    Attributes:
        drops: sockets that were open and ended (any :class:`DisconnectReason`), whether or not
            they had reached ``CONNECTED``.
        connect_failures: attempts that never opened a socket (``CONNECT_FAILED``).
        disconnect_reasons: drops and connect failures by reason.
        reconnects: successful reconnects: sockets after a drop that reached ``CONNECTED``.
        book_invalidations: ``BOOK_INVALIDATED`` events (every live book at every drop, every
            checksum failure, sequence break and resubscription).
    """

    state: ConnectionState
    url: str
    authenticated: bool
    frames_in: int
    frames_out: int
    bytes_in: int
    bytes_out: int
    drops: int
    connect_failures: int
    disconnect_reasons: dict[DisconnectReason, int]
    reconnects: int
    book_invalidations: int
    malformed_frames: int
    unknown_messages: int
    feeds: tuple[FeedStatistics, ...]
    last_message_age: dict[str, float]


class _Fatal(Exception):
    """Internal: wraps an error that must end the connection instead of a reconnect."""

    def __init__(self, error: FlexconnError) -> None:
        super().__init__(str(error))
        self.error = error


def _one_session_failure() -> AbstractContextManager[None]:
    """Collapse the failures of one socket's tasks into the one error that ends the session.

    When a socket dies, its reader and its heartbeat may both fail at once; either error tells
    the supervisor the same thing. A fatal error wins; otherwise the first flexconn error stands
    for the group. Anything that is not a flexconn error keeps the group intact.
    """
    return collapsed(prefer=_Fatal, among=FlexconnError)


class Connection:
    """A live, self-healing CoinFLEX WebSocket connection. See :func:`open_connection`."""

    def __init__(
        self,
        url: str,
        *,
        credentials: Credentials | None,
        heartbeat: Heartbeat,
        reconnect: ReconnectPolicy,
        timeouts: Timeouts,
        ssl_context: ssl.SSLContext | None,
        transport: TransportFactory,
        seed: int | None,
        rest: OrderLookup | None = None,
        outbox: OutboxConfig = DEFAULT_OUTBOX,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        wall_ms: Callable[[], int] | None = None,
    ) -> None:
        #: Epoch milliseconds: login and order timestamps, order windows (tests pass a clock
        #: shared with the simulator).
        self._wall_ms: Callable[[], int] = wall_ms or _now_ms
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be positive")
        self.url = url
        self._max_frame_bytes = max_frame_bytes
        self._credentials = credentials
        self._outbox_config = outbox
        self._heartbeat = heartbeat
        self._policy = reconnect
        self._timeouts = timeouts
        self._ssl_context = ssl_context
        self._transport_factory = transport
        self._rng = random.Random(seed)
        self._state = ConnectionState.CONNECTING
        self._state_changed = trio.Event()
        self._fanout = Fanout(on_unused=self._unused)
        self._subs = self._fanout.subs
        self._core = SessionCore()
        self._waiters: dict[ReplyKey, _Waiter] = {}
        self._events: list[Feed[ConnectionEvent]] = []
        self._cancel_scope = trio.CancelScope()
        self._writer = SocketWriter(self._new_bucket())
        self._connect_stamps: list[float] = []
        self._pong = trio.Event()
        self._failure: FlexconnError | None = None
        self._session_connected = False
        self._sessions_connected = 0
        self._session_nursery: trio.Nursery | None = None
        self._socket_opened = False
        self._drop_reported = False
        self._ever_connected = False
        self._disconnect_reasons: dict[DisconnectReason, int] = {}
        self._books: list[BookKeeping] = []
        self._outbox = Outbox(
            config=outbox,
            writer=self._writer,
            rest=rest,
            wall_ms=self._wall_ms,
        )
        if credentials is not None:
            orders, _ = self._fanout.get_or_add(order_channel())
            orders.internal = True
            self._core.want(orders.channel.wire)
        self._counters = dict.fromkeys(
            (
                "frames_in",
                "bytes_in",
                "reconnects",
                "restarts",
                "drops",
                "connect_failures",
                "book_invalidations",
                "malformed",
                "unknown",
            ),
            0,
        )

    # -- public API ------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def authenticated(self) -> bool:
        return self._credentials is not None

    def __repr__(self) -> str:
        return f"<Connection {self.url} {self._state.value} authenticated={self.authenticated}>"

    # -- orders ----------------------------------------------------------------------------------

    @property
    def orders(self) -> OpenOrders:
        """The account's open orders by order id, kept from the ``order:all`` channel.

        Seeded from ``GET /v2/orders`` on connect and after every reconnect when the connection
        has a REST client (``orders.synced``); without one it holds only the orders whose notices
        arrived while connected. Empty without credentials.
        """
        return self._outbox.orders

    async def place(self, order: OrderSpec, *, send_timeout: float | None = None) -> PlaceAck:
        """Place one order (limit, market or stop-limit) and return once the exchange answered.

        Concurrent requests of one kind leave together in batches (see :mod:`flexconn.outbox`).
        The order gets a unique positive ``client_order_id`` when it has none; a caller-given
        one must not repeat one used on this connection. It is written with ``timestamp`` (when
        written) and ``recvWindow`` (``OutboxConfig.recv_window_ms``) unless it sets its own.
        Every outcome is a fact about the exchange (the table in ``docs/orders.md``).

        Args:
            order: a :class:`LimitOrder`, :class:`MarketOrder` or :class:`StopLimitOrder`.
            send_timeout: seconds the order may wait unsent (for a reconnection, or behind the
                rate limits) before it is abandoned; ``None`` takes the outbox config's default,
                ``math.inf`` waits as long as the connection lives. Once written, the call waits
                for the exchange's answer or, if that is lost, for reconciliation (at most
                ``reconcile_timeout`` after it became unknown).

        Returns:
            The acknowledgement: ``order_id`` (always known; a reply without one waits for the
            order's first notice), the order with its client order id.

        Raises:
            ExchangeError: the exchange refused the order; the subclass, ``code`` and
                ``message`` are the exchange's (``PriceBoundError`` for 710002, an
                ``AuthenticationError`` with code ``20024`` for one that reached the exchange
                after its ``recvWindow``...).
            OrderNotApplied: the order was not placed and never will be: never written
                (``sent`` false), or its reply was lost and a REST lookup made after its
                ``recvWindow`` had provably closed found no trace (``sent`` true).
            OrderOutcomeUnknown: the outcome could not be established (no REST client, REST
                failed, or nothing decided within ``reconcile_timeout``); ``conn.orders`` will
                still show the order if it exists.
            ValidationError: the order breaks a documented rule (nothing was sent).
            LocalProtocolError: the connection has no credentials.
            ConnectionClosed: the connection has ended.
        """
        return await self._trading().place(order, send_timeout=send_timeout)

    async def cancel(
        self,
        market_code: str,
        order_id: int,
        *,
        send_timeout: float | None = None,
        confirm: bool = True,
    ) -> CancelAck:
        """Cancel the open order ``order_id``; returns once the order is known cancelled.

        The reply (``submitted: true``) only says the exchange took the command; the call
        returns when the order channel shows the order closed by it (``OrderClosed``
        ``CANCELED_BY_USER``), or, that lost, REST history does.

        Args:
            confirm: ``False`` returns at the reply, with ``CancelAck(confirmed=False)``: the
                cancel was accepted and may still fail (the order filled first).

        Raises:
            OrderAlreadyClosed: the order had already closed (``close_reason``: ``FILLED``,
                ``CANCELED_BY_USER`` for a second cancel, ``CANCELED_BY_AMEND``...); a subclass
                of ``OrderNotFoundError``, which an unknown order id raises.
            OrderOutcomeUnknown: as for :meth:`place`; also when the connection was lost with
                the cancel and the order is still open (a cancel carries no ``recvWindow``, so
                the exchange may yet apply it: it is never reported not applied then).
            ExchangeError, OrderNotApplied, ...: as for :meth:`place`.
        """
        request = CancelOrder(market_code, order_id)
        return await self._trading().cancel(request, send_timeout=send_timeout, confirm=confirm)

    async def modify(
        self,
        order_id: int,
        market_code: str,
        *,
        side: Side | None = None,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
        send_timeout: float | None = None,
        confirm: bool = True,
    ) -> ModifyAck:
        """Modify the open LIMIT order ``order_id``; returns once the change is confirmed.

        Reducing only the quantity keeps the order id (``OrderModified``: ``replaced_by`` is
        ``None``); any other change closes the order (``CANCELED_BY_AMEND``) and opens a
        replacement with a new id, which the ack's ``replaced_by`` names. Raises like
        :meth:`cancel` (``OrderAlreadyClosed`` when the order was no longer open) and
        :meth:`place`; ``confirm=False`` returns at the reply (``ModifyAck(confirmed=False)``).
        """
        request = ModifyOrder(market_code, order_id, side=side, price=price, quantity=quantity)
        return await self._trading().modify(request, send_timeout=send_timeout, confirm=confirm)

    async def place_many(
        self, orders: Iterable[OrderSpec], *, send_timeout: float | None = None
    ) -> list[PlaceAck | FlexconnError]:
        """Place several orders; returns one outcome per order, in order, never raising for one.

        Each outcome is the order's acknowledgement or the exception :meth:`place` would have
        raised for it, so the acknowledgements of a partly refused batch are never lost. Every
        order is validated before any is sent (a ``ValidationError`` raises at once).
        """
        return await self._trading().place_many(orders, send_timeout=send_timeout)

    async def cancel_many(
        self,
        orders: Iterable[CancelOrder],
        *,
        send_timeout: float | None = None,
        confirm: bool = True,
    ) -> list[CancelAck | FlexconnError]:
        """Cancel several orders; one outcome per order, as :meth:`place_many` and
        :meth:`cancel`."""
        return await self._trading().cancel_many(orders, send_timeout=send_timeout, confirm=confirm)

    async def modify_many(
        self,
        orders: Iterable[ModifyOrder],
        *,
        send_timeout: float | None = None,
        confirm: bool = True,
    ) -> list[ModifyAck | FlexconnError]:
        """Modify several orders; one outcome per order, as :meth:`place_many` and
        :meth:`modify`."""
        return await self._trading().modify_many(orders, send_timeout=send_timeout, confirm=confirm)

    def outbox_stats(self) -> OutboxStatistics:
        """Counters of the order outbox (commands and orders sent, 20007 refusals...)."""
        return self._outbox.statistics()

    def _trading(self) -> Outbox:
        if self._credentials is None:
            raise LocalProtocolError("order commands need a connection opened with credentials")
        if self._state is ConnectionState.CLOSED:
            raise ConnectionClosed("connection is closed")
        return self._outbox

    @asynccontextmanager
    async def subscribe(
        self,
        channel: Channel[T],
        *,
        policy: Backpressure | None = None,
        capacity: int | None = None,
        backfill: TradeBackfill | None = None,
    ) -> AsyncIterator[Feed[T]]:
        """Subscribe to ``channel`` and yield a feed of its typed messages.

        Consumers of the same channel share one exchange subscription; each gets every message.
        The exchange is asked only when the first consumer arrives, and told to stop when the last
        one leaves.

        A wildcard channel (``ticker:all``, ``market:all``, any ``<name>:all``) yields one message
        per market or asset (an exchange frame covering several is split); under ``LATEST`` its
        feed conflates per market or asset, so a slow consumer still gets the newest message of
        every one of them, never one market's in place of another's.

        Args:
            channel: from :mod:`flexconn.channels`, e.g. ``channels.depth("BTC-USD-SWAP-LIN")``.
            policy: backpressure policy; defaults to ``LATEST`` for depth, ticker, candles and
                market, ``BLOCK`` for the rest.
            capacity: the feed's buffer size (default 1 for ``LATEST``, 1024 otherwise); for a
                wildcard channel under ``LATEST``, per market or asset.
            backfill: for ``trade`` channels, a REST client: after a reconnect the trades missed
                during the drop are fetched and delivered (after the continuity marker, before
                live trades, without duplicates).

        Raises:
            SubscriptionError: the exchange refused the subscription.
            ConnectionClosed: the connection has ended.
        """
        if self._state is ConnectionState.CLOSED:
            raise ConnectionClosed("connection is closed")
        if channel.private and self._credentials is None:
            raise SubscriptionError(
                None, f"{channel} is private: open the connection with credentials"
            )
        policy = policy or (Backpressure.LATEST if channel.conflatable else Backpressure.BLOCK)
        if capacity is None:
            capacity = 1 if policy is Backpressure.LATEST else 1024
        if backfill is not None and channel.name != "trade":
            raise ValueError("backfill is only available for trade channels")
        key = channel.wire
        sub, first = self._fanout.get_or_add(channel)
        self._core.want(key)
        feed: Feed[T] = Feed(
            key,
            policy=policy,
            capacity=capacity,
            on_close=self._fanout.detach,
            keyed=sub.wildcard,
        )
        if backfill is not None:
            sub.backfill = backfill
        self._fanout.attach(sub, feed)
        try:
            if first and self._state is ConnectionState.CONNECTED:
                try:
                    await self._subscribe_now([key])
                except ConnectionClosed:
                    # The socket died before the exchange answered: the channel is registered,
                    # so the reconnect's resubscription serves it (or the feed ends with the
                    # connection's final error if it never comes back).
                    log.info("socket lost while subscribing to %s; resubscribing on reconnect", key)
            yield feed
        finally:
            feed.close()

    @asynccontextmanager
    async def events(self, *, capacity: int = 256) -> AsyncIterator[Feed[ConnectionEvent]]:
        """A feed of :class:`ConnectionEvent` from now on, for this block.

        State changes, every drop with its typed :class:`DisconnectReason` (``DISCONNECTED``),
        every successful reconnect (``RECONNECTED``), every live-book invalidation with its
        market and :class:`InvalidationReason` (``BOOK_INVALIDATED``), unknown messages and
        malformed frames. A ``LATEST`` feed of ``capacity`` events: a consumer more than
        ``capacity`` events behind loses the oldest (``stats()`` counts them all anyway).
        """
        feed: Feed[ConnectionEvent] = Feed(
            "events",
            policy=Backpressure.LATEST,
            capacity=capacity,
            on_close=lambda f: self._events.remove(f),
        )
        self._events.append(feed)
        try:
            yield feed
        finally:
            feed.close()

    @asynccontextmanager
    async def order_book(
        self, market_code: str, *, level: DepthLevel = DepthLevel.L25, levels: int | None = None
    ) -> AsyncIterator[LiveOrderBook]:
        """Keep a live local book of ``market_code`` from its depth channel for this block.

        Every snapshot replaces the book once its sequence number and checksum check out.
        ``live.book.valid`` is false, ``live.book.invalid_reason`` says why, and
        :meth:`LiveOrderBook.wait_updated` wakes:

        * from the moment the socket is considered dead (heartbeat timeout, close, transport
          error) until the first snapshot of the resubscription after the reconnect
          (``DISCONNECTED``; snapshots still buffered from the dead socket are dropped unread);
        * after a snapshot fails its checksum, until one passes (``CHECKSUM_MISMATCH``);
        * after three snapshots in a row at or behind the book's ``seqNum`` (``SEQUENCE_GAP``);
        * after three checksum failures or a ``SEQUENCE_GAP``, while the channel is
          resubscribed, until the first snapshot of the new subscription (``RESUBSCRIBED``).

        Each invalidation is also a ``BOOK_INVALIDATED`` :class:`ConnectionEvent` naming the
        market, and counted in ``stats().book_invalidations``.
        """
        from flexconn import channels

        live = LiveOrderBook(OrderBook(market_code, levels=levels))
        channel = channels.depth(market_code, level)
        async with self.subscribe(channel) as feed, trio.open_nursery() as nursery:
            keeping = BookKeeping(live, feed, channel)
            self._books.append(keeping)
            try:
                nursery.start_soon(
                    partial(
                        keep_book,
                        keeping,
                        invalidate=self._invalidate_book,
                        resubscribe=self._resubscribe_book,
                    )
                )
                yield live
            finally:
                self._books.remove(keeping)
                nursery.cancel_scope.cancel()

    async def _resubscribe_book(self, keeping: BookKeeping) -> None:
        """Unsubscribe and subscribe a book's channel again; the book is invalid meanwhile
        (nothing to do unless connected: the reconnect resubscribes every channel)."""
        if self._state is not ConnectionState.CONNECTED:
            return
        wire = keeping.channel.wire
        log.warning("%s: snapshots cannot be trusted, resubscribing", wire)
        self._invalidate_book(keeping, InvalidationReason.RESUBSCRIBED, "resubscribing")
        await self._unsubscribe_now(wire)
        self._core.unsubscribed(wire)
        # Once the exchange confirmed the unsubscription, nothing more comes from the old one.
        keeping.feed.discard_data()
        try:
            await self._subscribe_now([wire])
        except (ConnectionClosed, ReplyTimeout) as exc:
            # The socket is going: the reconnect resubscribes every channel.
            log.info("resubscribing %s failed: %s", wire, exc)

    def _invalidate_book(
        self,
        keeping: BookKeeping,
        reason: InvalidationReason,
        detail: str = "",
        *,
        mark: bool = True,
    ) -> None:
        """Mark a live book invalid (unless ``mark`` is false: it did so itself), wake its
        readers, count and report it."""
        if mark:
            keeping.live.book.invalidate(reason)
        keeping.live.changed()
        self._counters["book_invalidations"] += 1
        self._emit(
            ConnectionEvent(
                kind=ConnectionEventKind.BOOK_INVALIDATED,
                reason=reason,
                market=keeping.live.book.market_code,
                channel=keeping.channel.wire,
                detail=detail,
            )
        )

    async def wait_state(self, state: ConnectionState) -> None:
        """Wait until the connection is in ``state``."""
        while self._state is not state:
            await self._state_changed.wait()

    def stats(self) -> ConnectionStatistics:
        now = trio.current_time()
        feeds = tuple(f.statistics() for f in self._fanout.feeds())
        ages = {s.channel: now - s.last_item_at for s in feeds if s.last_item_at is not None}
        c = self._counters
        return ConnectionStatistics(
            state=self._state,
            url=self.url,
            authenticated=self.authenticated,
            frames_in=c["frames_in"],
            frames_out=self._writer.frames_out,
            bytes_in=c["bytes_in"],
            bytes_out=self._writer.bytes_out,
            drops=c["drops"],
            connect_failures=c["connect_failures"],
            disconnect_reasons=dict(self._disconnect_reasons),
            reconnects=c["reconnects"],
            book_invalidations=c["book_invalidations"],
            malformed_frames=c["malformed"],
            unknown_messages=c["unknown"],
            feeds=feeds,
            last_message_age=ages,
        )

    async def send_raw(self, text: str) -> None:
        """Send one already-encoded command, rate limited; raises ``ConnectionClosed`` if down."""
        await self._writer.send(text)

    async def aclose(self) -> None:
        """Close the connection and stop every task it owns; idempotent."""
        self._cancel_scope.cancel()
        await trio.lowlevel.checkpoint()

    # -- supervisor ------------------------------------------------------------------------------

    async def _supervise(self, *, task_status: trio.TaskStatus[None]) -> None:
        pending_start: trio.TaskStatus[None] | None = task_status
        attempt = 0
        reason = ""
        try:
            with self._cancel_scope:
                while True:
                    connected = False
                    try:
                        connected = await self._session(pending_start, reason)
                    except _Fatal as fatal:
                        raise fatal.error from None
                    except (TransportError, RemoteProtocolError, ExchangeError) as exc:
                        reason = str(exc) or type(exc).__name__
                        log.info("connection to %s lost: %s", self.url, reason)
                        if self._session_connected:
                            connected = True
                        if pending_start is not None and attempt + 1 >= (
                            self._policy.max_initial_attempts
                        ):
                            raise
                    if connected:
                        pending_start = None
                        attempt = 0
                    else:
                        attempt += 1
                        limit = self._policy.max_attempts
                        if pending_start is None and limit is not None and attempt >= limit:
                            raise ConnectionClosed(f"gave up reconnecting: {reason}")
                    self._set_state(ConnectionState.RECONNECTING, reason)
                    await self._backoff(attempt)
        except FlexconnError as exc:
            self._failure = exc
            raise
        finally:
            self._set_state(ConnectionState.CLOSED)
            self._writer.shut()
            self._outbox.close(str(self._failure) if self._failure else "the connection closed")
            for feed in self._fanout.feeds():
                feed.end(self._failure)
            for feed in self._events:
                feed.end()

    async def _backoff(self, attempt: int) -> None:
        await trio.sleep(self._policy.delay(attempt, self._rng))
        # The exchange allows so many new connections per minute: wait for the oldest to age out.
        window = 60.0
        now = trio.current_time()
        self._connect_stamps = [t for t in self._connect_stamps if now - t < window]
        if len(self._connect_stamps) >= self._policy.max_connects_per_minute:
            await trio.sleep_until(self._connect_stamps[0] + window)

    async def _session(self, task_status: trio.TaskStatus[None] | None, reason: str) -> bool:
        """Run one socket until it dies; returns whether it reached CONNECTED."""
        self._session_connected = False
        self._set_state(ConnectionState.CONNECTING)
        self._connect_stamps.append(trio.current_time())
        self._socket_opened = self._drop_reported = False
        try:
            with _one_session_failure():
                await self._run_socket(task_status, reason)
        except (TransportError, RemoteProtocolError, ExchangeError) as exc:
            self._report_drop(exc)  # (a socket that opened was reported as it died)
            raise
        return self._session_connected

    async def _run_socket(self, task_status: trio.TaskStatus[None] | None, reason: str) -> None:
        options: dict[str, Any] = {}
        if self._max_frame_bytes != DEFAULT_MAX_FRAME_BYTES:
            options["max_frame_bytes"] = self._max_frame_bytes
        async with self._transport_factory(
            self.url,
            ssl_context=self._ssl_context,
            connect_timeout=self._policy.connect_timeout,
            **options,
        ) as ws:
            self._writer.open(ws, self._new_bucket(authenticated=False))
            self._socket_opened = True
            self._core.session_started(trio.current_time())
            try:
                with _one_session_failure():
                    async with trio.open_nursery() as nursery:
                        self._session_nursery = nursery
                        nursery.start_soon(self._reader, ws)
                        nursery.start_soon(self._heartbeat_loop, ws)
                        await self._handshake(reason)
                        self._session_connected = True
                        reconnected = self._ever_connected
                        self._ever_connected = True
                        self._set_state(ConnectionState.CONNECTED)
                        if reconnected:
                            self._counters["reconnects"] += 1
                            self._emit(
                                ConnectionEvent(
                                    kind=ConnectionEventKind.RECONNECTED,
                                    state=ConnectionState.CONNECTED,
                                    detail=f"reconnect #{self._counters['reconnects']}",
                                )
                            )
                        if task_status is not None:
                            task_status.started()
            except BaseException as exc:
                self._socket_lost(exc)
                raise
            finally:
                self._writer.shut()
                self._session_nursery = None
                for key in self._core.session_lost():
                    waiter = self._waiters.pop(key, None)
                    if waiter is not None:
                        waiter.fail(ConnectionClosed("connection lost"))
                for waiter in self._waiters.values():  # (abandoned ones: none should be left)
                    waiter.fail(ConnectionClosed("connection lost"))
                self._waiters.clear()

    async def _handshake(self, reason: str) -> None:
        if self._credentials is not None:
            self._set_state(ConnectionState.LOGGING_IN)
            await self._login(self._credentials)
            self._writer.set_bucket(self._new_bucket(authenticated=True))
        if self._sessions_connected:
            self._counters["restarts"] += 1
            marker_count = self._counters["restarts"]
            # Only channels that were live before the drop can have missed anything.
            for sub in [s for key, s in self._subs.items() if self._core.was_live(key)]:
                for feed in list(sub.feeds):
                    await feed.put(
                        StreamRestarted(
                            channel=sub.channel.wire, reconnects=marker_count, reason=reason
                        )
                    )
        backfills = [
            sub
            for sub in self._subs.values()
            if sub.backfill is not None and self._sessions_connected
        ]
        for sub in backfills:
            sub.held = []
        self._sessions_connected += 1
        self._set_state(ConnectionState.SUBSCRIBING)
        self._fanout.forget_latest()
        trading = self._credentials is not None
        if trading:
            self._outbox.begin_sync()  # hold order notices until the REST snapshot is in
        # Consumers may subscribe while this runs: loop until every channel is acknowledged (a
        # refused channel is dropped, failing only its own feeds, never the connection).
        while pending := self._core.unacked():
            await self._subscribe_now(pending, raise_errors=False)
        if trading:
            # Seed ``orders`` and settle the orders whose replies the last socket took with it,
            # before anything new is sent; then the outbox sends on this socket.
            await self._outbox.sync()
            if self._session_nursery is not None:
                self._session_nursery.start_soon(self._outbox.run_session)
        for sub in backfills:
            if self._session_nursery is not None:
                self._session_nursery.start_soon(
                    partial(
                        backfill_trades,
                        sub,
                        deliver=self._fanout.deliver,
                        failed=self._backfill_failed,
                    )
                )

    async def _login(self, credentials: Credentials) -> None:
        tag = self._writer.next_tag()
        request = routing.login_request(credentials, timestamp_ms=self._wall_ms(), tag=tag)
        waiter = self._expect(LOGIN)
        await self.send_raw(encode(request))
        try:
            with _reply_deadline(self._timeouts.login, "login"):
                await waiter.wait()
        except ExchangeError as exc:
            raise _Fatal(
                exc
                if isinstance(exc, AuthenticationError)
                else AuthenticationError(exc.code, exc.message)
            ) from None

    async def _subscribe_now(self, keys: Sequence[str], *, raise_errors: bool = True) -> None:
        replies = self._core.subscribing(keys)
        waiters = {key: self._waiter(reply) for key, reply in zip(keys, replies, strict=True)}
        await self.send_raw(encode(routing.subscribe_request(keys, tag=self._writer.next_tag())))
        errors: list[ExchangeError] = []
        with _reply_deadline(self._timeouts.subscribe, "subscribe"):
            for key, waiter in waiters.items():
                try:
                    await waiter.wait()  # (the core marked the channel acknowledged)
                except ExchangeError as exc:
                    errors.append(SubscriptionError(exc.code, f"{key}: {exc.message}"))
                    self._fanout.drop(key, errors[-1])
        if errors and raise_errors:
            raise errors[0]

    async def _unsubscribe_now(self, key: str) -> None:
        if self._state is not ConnectionState.CONNECTED:
            return
        reply = ReplyKey(ReplyKind.UNSUBSCRIBE, key)
        waiter = self._expect(reply)
        with trio.move_on_after(self._timeouts.subscribe):
            try:
                await self.send_raw(
                    encode(routing.unsubscribe_request([key], tag=self._writer.next_tag()))
                )
                await waiter.wait()
            except (ExchangeError, ConnectionClosed) as exc:
                log.info("unsubscribe from %s failed: %s", key, exc)
        self._waiters.pop(reply, None)
        self._core.abandon(reply)

    def _unused(self, key: str, sub: Subscription) -> None:
        """A channel's last consumer left: unsubscribe (when it is live on this socket)."""
        if self._core.forget(key) and self._state is ConnectionState.CONNECTED:
            self._spawn_unsubscribe(key)

    def _spawn_unsubscribe(self, key: str) -> None:
        nursery = self._session_nursery
        if nursery is not None:
            nursery.start_soon(self._unsubscribe_now, key)

    def _socket_lost(self, exc: BaseException) -> None:
        """The socket is considered dead: ``exc`` is the first error of its tasks (or the
        cancellation that closes the connection). Runs before the socket's closing handshake.

        Reports the drop and ``RECONNECTING`` (a reconnectable error), forgets every channel's
        newest message (a consumer joining now must not start from the dead socket's data), and
        invalidates every live book, dropping the snapshots still buffered for it.
        """
        self._writer.shut()  # nothing more is written to a dead socket
        if isinstance(exc, TransportError | RemoteProtocolError | ExchangeError):
            self._report_drop(exc)
            self._set_state(ConnectionState.RECONNECTING, str(exc) or type(exc).__name__)
        self._fanout.forget_latest()
        for keeping in list(self._books):
            keeping.feed.discard_data()
            self._invalidate_book(keeping, InvalidationReason.DISCONNECTED, str(exc))

    def _report_drop(self, exc: FlexconnError) -> None:
        """Count and report the end of this session's socket (or attempt), once."""
        if self._drop_reported:
            return
        self._drop_reported = True
        reason, close_code = _disconnect_reason(exc, opened=self._socket_opened)
        self._counters["drops" if self._socket_opened else "connect_failures"] += 1
        self._disconnect_reasons[reason] = self._disconnect_reasons.get(reason, 0) + 1
        self._emit(
            ConnectionEvent(
                kind=ConnectionEventKind.DISCONNECTED,
                reason=reason,
                close_code=close_code,
                detail=str(exc) or type(exc).__name__,
            )
        )

    # -- reader and heartbeat --------------------------------------------------------------------

    async def _reader(self, ws: Transport) -> None:
        # Pay only for what is consumed: a depth frame for a live subscription is routed on a
        # peek at its text and reaches the feeds undecoded (a Deferred), to be decoded by the
        # first consumer that takes it; those a ``latest`` feed conflates away are never decoded.
        # Everything else is decoded here.
        receive = ws.receive
        counters = self._counters
        fanout = self._fanout
        subs = fanout.subs
        core = self._core
        while True:
            frame = await receive()
            core.last_inbound = trio.current_time()
            counters["frames_in"] += 1
            counters["bytes_in"] += len(frame)
            # Only a connection with a depth subscription can have a depth frame worth peeking at.
            key = peek_depth_key(frame) if fanout.has_depth else None
            if key is not None:
                sub = subs.get(key) or subs.get(fanout.depth_variant(key))
                if sub is not None and sub.held is None:
                    deferred = DeferredDepth(self._malformed, frame, key)
                    if not fanout.offer(sub, deferred, key):
                        await fanout.deliver(sub, deferred, key)
                    continue
            try:
                message = decode(frame)
            except RemoteProtocolError as exc:
                self._malformed(exc)
                continue
            blocked = self._dispatch(message)
            if blocked:
                for sub, item, item_key in blocked:
                    await fanout.deliver(sub, item, item_key)

    def _malformed(self, exc: RemoteProtocolError) -> None:
        """Count and report a frame that could not be decoded (the connection goes on)."""
        self._counters["malformed"] += 1
        log.warning("malformed frame from %s: %s", self.url, exc)
        self._emit(
            ConnectionEvent(
                kind=ConnectionEventKind.MALFORMED_FRAME, detail=str(exc), payload=exc.raw
            )
        )

    def _dispatch(self, message: object) -> Blocked | None:
        """Route one decoded message; returns the deliveries that must wait for a full
        ``BLOCK`` feed (the reader awaits them in order), if any.

        Delivery is synchronous whenever every feed has room, so the reader pays no coroutine
        per message; once one delivery has to wait, the rest of the message's wait behind it.
        """
        # One look-up in the route table per message (by its exact type, cached).
        cls = type(message)
        handlers = routing.handlers_of(cls)
        if handlers.reply is not None:
            # Order replies go to the outbox that sent the commands; the session core settles
            # the connection's own commands (and reports replies nobody waited for).
            if cls is OrderReply and self._outbox.on_reply(message):  # type: ignore[arg-type]
                return None
            self._apply(self._core.receive_reply(message))
            return None
        route = handlers.route
        if route is None:
            if cls is not Greeting:  # (the exchange greets every new socket with a nonce)
                self._counters["unknown"] += 1
                self._emit(
                    ConnectionEvent(kind=ConnectionEventKind.UNKNOWN_MESSAGE, payload=message)
                )
            return None
        if cls in _ORDER_MESSAGES:
            # Order-channel messages keep ``orders`` and settle requests whose reply was lost,
            # then reach subscribers as usual.
            self._outbox.on_order_message(message)
        return self._fanout.route(route(message))

    def _apply(self, events: list[SessionEvent]) -> None:
        """Act on what the session core made of a reply: wake its waiter, or report it."""
        for event in events:
            if isinstance(event, ReplySettled):
                waiter = self._waiters.pop(event.key, None)
                if waiter is not None:
                    waiter.resolve(event.error)
            elif isinstance(event, PongReceived):
                self._pong.set()
            else:
                if event.error is not None:
                    log.warning("unsolicited error reply: %s", event.error)
                self._emit(
                    ConnectionEvent(
                        kind=ConnectionEventKind.UNSOLICITED_REPLY,
                        detail=event.detail,
                        payload=event.message,
                    )
                )

    def _backfill_failed(self, detail: str) -> None:
        self._emit(ConnectionEvent(kind=ConnectionEventKind.BACKFILL_FAILED, detail=detail))

    async def _heartbeat_loop(self, ws: Transport) -> None:
        hb = self._heartbeat
        while True:
            await trio.sleep(hb.interval)
            self._core.ping_sent(trio.current_time())
            with trio.move_on_after(hb.timeout):
                if hb.style is PingStyle.FRAME:
                    await ws.ping()
                else:
                    self._pong = trio.Event()
                    await self.send_raw("ping")
                    await self._pong.wait()
                continue
            if not self._core.ping_unanswered(delivering=self._fanout.delivering):
                continue
            raise HeartbeatTimeout(
                f"no pong or other traffic within {hb.timeout:g}s of a ping: presumed dead"
            )

    # -- helpers ---------------------------------------------------------------------------------

    def _expect(self, key: ReplyKey) -> _Waiter:
        """Register a command about to be sent as waiting for ``key``'s reply."""
        return self._waiter(self._core.expect(key))

    def _waiter(self, key: ReplyKey) -> _Waiter:
        waiter = self._waiters[key] = _Waiter()
        return waiter

    def _new_bucket(self, *, authenticated: bool = False) -> TokenBucket:
        # The exchange counts by arrival; a 2% longer period and a few tokens of headroom absorb
        # jitter between our send and its receive so that pacing at the limit never provokes a
        # 20007 (see OutboxConfig).
        if not authenticated:
            return TokenBucket(1, per=1.02)
        return self._outbox_config.bucket(self._outbox_config.commands_per_second)

    def _set_state(self, state: ConnectionState, detail: str = "") -> None:
        if state is self._state:
            return
        self._state = state
        self._state_changed.set()
        self._state_changed = trio.Event()
        self._emit(ConnectionEvent(kind=ConnectionEventKind.STATE, state=state, detail=detail))

    def _emit(self, event: ConnectionEvent) -> None:
        for feed in self._events:
            feed.put_nowait(event)


#: Order-channel messages, which the outbox learns from before they reach subscribers.
_ORDER_MESSAGES: Final = frozenset((OrderUpdate, OrderFailureNotice, CancelAllNotice))


def _disconnect_reason(exc: FlexconnError, *, opened: bool) -> tuple[DisconnectReason, int | None]:
    """Why a session's socket ended (``opened``: whether it had opened), and its close code."""
    if not opened or isinstance(exc, ConnectTimeout):
        return DisconnectReason.CONNECT_FAILED, None
    if isinstance(exc, HeartbeatTimeout):
        return DisconnectReason.HEARTBEAT_TIMEOUT, None
    if isinstance(exc, ReplyTimeout):
        return DisconnectReason.REPLY_TIMEOUT, None
    if isinstance(exc, SocketClosed):
        return exc.disconnect, exc.close_code
    if isinstance(exc, ConnectionClosed):
        return DisconnectReason.CONNECTION_LOST, None
    if isinstance(exc, TransportError):
        return DisconnectReason.TRANSPORT_ERROR, None
    if isinstance(exc, RemoteProtocolError):
        return DisconnectReason.PROTOCOL_ERROR, None
    return DisconnectReason.EXCHANGE_ERROR, None


@contextmanager
def _reply_deadline(seconds: float, what: str) -> Iterator[None]:
    """Like ``trio.fail_after``, raising :class:`ReplyTimeout` instead of ``TooSlowError``."""
    try:
        with trio.fail_after(seconds):
            yield
    except trio.TooSlowError:
        raise ReplyTimeout(f"no reply to {what} within {seconds:g}s") from None


class _Waiter:
    """A one-shot rendezvous for a command reply."""

    def __init__(self) -> None:
        self._event = trio.Event()
        self._error: BaseException | None = None

    def resolve(self, error: ExchangeError | None) -> None:
        self._error = error
        self._event.set()

    def fail(self, error: BaseException) -> None:
        if not self._event.is_set():
            self._error = error
            self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        if self._error is not None:
            raise self._error


def _now_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


@asynccontextmanager
async def open_connection(
    url: str,
    *,
    credentials: Credentials | None = None,
    heartbeat: Heartbeat = DEFAULT_HEARTBEAT,
    reconnect: ReconnectPolicy = DEFAULT_RECONNECT,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    ssl_context: ssl.SSLContext | None = None,
    allow_insecure: bool = False,
    transport: TransportFactory = DEFAULT_TRANSPORT,
    seed: int | None = None,
    rest: OrderLookup | None = None,
    outbox: OutboxConfig = DEFAULT_OUTBOX,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    wall_ms: Callable[[], int] | None = None,
) -> AsyncIterator[Connection]:
    """Connect (and log in when ``credentials`` are given), yielding a self-healing connection.

    The connection and all its background tasks live inside this block: leaving it, or cancelling
    it, closes everything. A failure that ends the connection is raised here as itself, never
    wrapped in an ExceptionGroup.

    With ``credentials`` the connection also trades (:meth:`Connection.place` and friends, see
    :mod:`flexconn.outbox`) and keeps :attr:`Connection.orders` from an internal ``order:all``
    subscription.

    Args:
        rest: an authenticated REST client for the same account
            (``RestClient(rest_url, credentials)``). It seeds ``orders`` on every (re)connect and
            settles orders whose replies were lost (a drop, a late reply) by looking them up.
            Without it such orders end with ``OrderOutcomeUnknown`` unless order-channel notices
            proved their outcome, and ``orders`` only knows orders seen while connected. The
            caller owns the client (it is not closed here).
        outbox: batching, pacing (commands and orders per second) and timeout settings.
        transport: the WebSocket implementation (:mod:`flexconn.transport`); the default is
            the sans-IO one, ``open_trio_websocket`` the trio-websocket one.
        max_frame_bytes: the largest inbound message accepted (default 4 MiB,
            :data:`~flexconn.config.DEFAULT_MAX_FRAME_BYTES`, far above the exchange's real
            frames). A larger one is refused as it arrives, never held whole: the socket closes
            (code 1009), a ``DISCONNECTED`` event with ``DisconnectReason.FRAME_TOO_LARGE`` is
            reported and counted, and the connection reconnects. Passed to the transport
            factory as ``max_frame_bytes=`` when it differs from the default.
        wall_ms: the epoch-millisecond clock for login and order timestamps and for deciding
            when an order's ``recvWindow`` has provably closed (default: the system clock).

    Raises:
        AuthenticationError: the exchange refused the API key or signature.
        TransportError: the first connection could not be established.
        ValueError: an insecure ``ws://`` URL to a remote host without ``allow_insecure``.
    """
    check_url(url, allow_insecure=allow_insecure)
    with unwrapped():
        async with trio.open_nursery() as nursery:
            conn = await connect(
                nursery,
                url,
                credentials=credentials,
                heartbeat=heartbeat,
                reconnect=reconnect,
                timeouts=timeouts,
                ssl_context=ssl_context,
                allow_insecure=allow_insecure,
                transport=transport,
                seed=seed,
                rest=rest,
                outbox=outbox,
                max_frame_bytes=max_frame_bytes,
                wall_ms=wall_ms,
            )
            try:
                yield conn
            finally:
                await conn.aclose()


async def connect(
    nursery: trio.Nursery,
    url: str,
    *,
    credentials: Credentials | None = None,
    heartbeat: Heartbeat = DEFAULT_HEARTBEAT,
    reconnect: ReconnectPolicy = DEFAULT_RECONNECT,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    ssl_context: ssl.SSLContext | None = None,
    allow_insecure: bool = False,
    transport: TransportFactory = DEFAULT_TRANSPORT,
    seed: int | None = None,
    rest: OrderLookup | None = None,
    outbox: OutboxConfig = DEFAULT_OUTBOX,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    wall_ms: Callable[[], int] | None = None,
) -> Connection:
    """Like :func:`open_connection`, for callers who bring their own nursery.

    Returns once connected; close it with :meth:`Connection.aclose`.
    """
    check_url(url, allow_insecure=allow_insecure)
    conn = Connection(
        url,
        credentials=credentials,
        heartbeat=heartbeat,
        reconnect=reconnect,
        timeouts=timeouts,
        ssl_context=ssl_context,
        transport=transport,
        seed=seed,
        rest=rest,
        outbox=outbox,
        max_frame_bytes=max_frame_bytes,
        wall_ms=wall_ms,
    )
    # Order lookups that must wait for a window to close outlive a session, not the caller.
    conn._outbox.attach(nursery)
    with unwrapped():
        await nursery.start(_run, conn)
    return conn


async def _run(conn: Connection, *, task_status: trio.TaskStatus[None]) -> None:
    await conn._supervise(task_status=task_status)
