"""The batched order outbox: the trio shell around :mod:`flexconn._outbox_core`.

Design note. A :class:`Connection <flexconn.connection.Connection>` with credentials owns one
:class:`Outbox`. Callers (``conn.place`` and friends) queue tickets in the core and wait on a
``trio.Event`` each; everything else happens in the connection's tasks:

* per session, a *sender* waits until something is queued and the rate limits allow a command
  (the socket's command bucket, which every command shares, and the per-account order bucket for
  place and modify), then packs whatever has accumulated into one command and sends it. When idle
  a lone request leaves at once (its caller writes it, sparing a task switch); requests arriving
  while a send or the limiter is busy leave together next time: batching is natural, never a
  delay. Places and modifies are written with ``timestamp`` (now) and ``recvWindow``;
* per session, an *expiry* task moves requests whose reply or confirmation is overdue to UNKNOWN;
* the connection's reader hands every order reply to :meth:`Outbox.on_reply` and every
  order-channel message to :meth:`Outbox.on_order_message` (which also keeps
  :attr:`Outbox.orders`, the account's open orders). Replies accept; the order channel confirms
  (see the outcome model in ``docs/orders.md``);
* for the connection's whole life (a nursery given to :meth:`Outbox.attach`, so lookups go on
  across reconnections and never hold one back), a *reconciler* looks every UNKNOWN request up
  over REST with the rules of :mod:`flexconn._reconcile`: the open orders, ``GET /v2.1/orders``
  and ``GET /v2/trades/{marketCode}``. A place or modify is called not applied only by a lookup
  made once its ``timestamp + recvWindow`` has provably passed (our clock minus
  ``clock_skew_margin_ms``); until then the reconciler sleeps until it has and looks again. A
  request still undecided ``reconcile_timeout`` after it became unknown ends
  :class:`~flexconn.errors.OrderOutcomeUnknown`;
* after every (re)connection, before the connection reports CONNECTED, :meth:`Outbox.sync`
  seeds the open orders from ``GET /v2/orders`` (bounded by ``reconcile_timeout``). A request
  that was never written simply waits for the next session (bounded by its caller's
  ``send_timeout``).

Without a REST client nothing can be looked up: a request whose reply or confirmation is lost
ends with :class:`~flexconn.errors.OrderOutcomeUnknown` unless order-channel notices proved its
outcome, and the open orders are only those seen on the order channel (``orders.synced`` stays
false).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol, TypeVar

import trio
import trio.lowlevel

from flexconn._outbox_core import Batch, OutboxCore
from flexconn._outbox_types import (
    Ack,
    AckSource,
    CancelAck,
    ModifyAck,
    OutboxConfig,
    OutboxStatistics,
    Outcome,
    PlaceAck,
    Ticket,
    TicketState,
)
from flexconn._reconcile import (
    KeepLooking,
    Verdict,
    cancel_outcome,
    modify_outcome,
    place_outcome,
    place_verdict,
)
from flexconn._writer import SocketWriter
from flexconn.errors import (
    ConnectionClosed,
    FlexconnError,
    OrderOutcomeUnknown,
)
from flexconn.models.enums import OrderStatus
from flexconn.models.notices import CancelAllNotice, OrderMatched, OrderUpdate
from flexconn.models.orders import CancelOrder, ModifyOrder, OrderSpec
from flexconn.models.replies import OrderAction, OrderReply
from flexconn.models.rest import (
    AccountTradesReply,
    OpenOrdersReply,
    OrderRecord,
    OrderRecordsReply,
)
from flexconn.models.rest import OpenOrder as RestOpenOrder
from flexconn.orders import OpenOrders

__all__ = [
    "DEFAULT_OUTBOX",
    "Ack",
    "AckSource",
    "CancelAck",
    "ModifyAck",
    "OrderLookup",
    "Outbox",
    "OutboxConfig",
    "OutboxStatistics",
    "PlaceAck",
]

log = logging.getLogger("flexconn.outbox")

DEFAULT_OUTBOX = OutboxConfig()
A = TypeVar("A", PlaceAck, CancelAck, ModifyAck)
#: How often the reconciler looks again at a request REST cannot decide yet.
_LOOKUP_INTERVAL = 1.0


class OrderLookup(Protocol):
    """The REST calls reconciliation needs; :class:`flexconn.rest.RestClient` provides them."""

    async def open_orders(self) -> OpenOrdersReply: ...

    async def orders(
        self,
        *,
        market_code: str | None = None,
        order_id: int | None = None,
        client_order_id: int | None = None,
        limit: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> OrderRecordsReply: ...

    async def trades(
        self,
        market_code: str,
        *,
        limit: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> AccountTradesReply: ...


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _only_partial_fills(message: object) -> bool:
    """Whether ``message`` holds only partial fills (``OrderMatched``, not filled)."""
    if type(message) is not OrderUpdate:
        return False
    for event in message.data:
        if (
            type(event) is not OrderMatched
            or event.status is OrderStatus.FILLED
            or event.remain_quantity <= 0
        ):
            return False
    return True


def _typed(outcome: Outcome | None, cls: type[A]) -> A | FlexconnError:
    if isinstance(outcome, FlexconnError | cls):
        return outcome
    raise AssertionError(f"expected {cls.__name__}, got {outcome!r}")


def _raise_or(outcome: A | FlexconnError) -> A:
    if isinstance(outcome, FlexconnError):
        raise outcome
    return outcome


class Outbox:
    """Queues, batches, paces and correlates order commands for one connection.

    Args:
        config: batching, pacing and timeout settings.
        writer: the connection's :class:`~flexconn._writer.SocketWriter`: it paces every
            command by the socket's command bucket, writes it, and hands out command tags. The
            outbox hands it whole batches and never calls back into the connection.
        rest: REST calls for seeding and reconciliation (``None``: see the module notes).
        wall_ms: epoch milliseconds: the ``timestamp`` of places and modifies, whether their
            window has closed, REST time windows, the client order id seed. It must agree with
            the exchange's clock within ``clock_skew_margin_ms``.
    """

    def __init__(
        self,
        *,
        config: OutboxConfig,
        writer: SocketWriter,
        rest: OrderLookup | None,
        wall_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self.config = config
        #: The account's open orders, kept from the order channel (and REST when available).
        self.orders = OpenOrders()
        self._core = OutboxCore(config, first_client_order_id=wall_ms() * 1000)
        self._writer = writer
        #: Writes one packed command (the writer's ``send``; a test may wrap it).
        self._send: Callable[[str], Awaitable[None]] = writer.send
        self._rest = rest
        self._wall_ms = wall_ms
        rate = config.orders_per_second
        self._bucket = None if rate is None else config.bucket(rate)
        self._done: dict[int, trio.Event] = {}
        self._wake = trio.Event()
        self._sent_wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._closed: str | None = None
        self._resyncing = False
        self._sending = False
        self._lifetime: trio.Nursery | None = None
        self._watched: dict[int, Ticket] = {}
        self._next_look: dict[int, float] = {}
        self._watch_wake = trio.Event()
        self._reconciling = False
        self._reconciler_scope: trio.CancelScope | None = None

    # -- the callers' side ---------------------------------------------------------------------

    async def place(self, order: OrderSpec, *, send_timeout: float | None = None) -> PlaceAck:
        """Place one order; see :meth:`flexconn.connection.Connection.place`."""
        (outcome,) = await self._request(OrderAction.PLACE, [order], send_timeout)
        return _raise_or(_typed(outcome, PlaceAck))

    async def cancel(
        self, order: CancelOrder, *, send_timeout: float | None = None, confirm: bool = True
    ) -> CancelAck:
        """Cancel one order; see :meth:`flexconn.connection.Connection.cancel`."""
        (outcome,) = await self._request(OrderAction.CANCEL, [order], send_timeout, confirm)
        return _raise_or(_typed(outcome, CancelAck))

    async def modify(
        self, order: ModifyOrder, *, send_timeout: float | None = None, confirm: bool = True
    ) -> ModifyAck:
        """Modify one order; see :meth:`flexconn.connection.Connection.modify`."""
        (outcome,) = await self._request(OrderAction.MODIFY, [order], send_timeout, confirm)
        return _raise_or(_typed(outcome, ModifyAck))

    async def place_many(
        self, orders: Iterable[OrderSpec], *, send_timeout: float | None = None
    ) -> list[PlaceAck | FlexconnError]:
        outcomes = await self._request(OrderAction.PLACE, list(orders), send_timeout)
        return [_typed(outcome, PlaceAck) for outcome in outcomes]

    async def cancel_many(
        self,
        orders: Iterable[CancelOrder],
        *,
        send_timeout: float | None = None,
        confirm: bool = True,
    ) -> list[CancelAck | FlexconnError]:
        outcomes = await self._request(OrderAction.CANCEL, list(orders), send_timeout, confirm)
        return [_typed(outcome, CancelAck) for outcome in outcomes]

    async def modify_many(
        self,
        orders: Iterable[ModifyOrder],
        *,
        send_timeout: float | None = None,
        confirm: bool = True,
    ) -> list[ModifyAck | FlexconnError]:
        outcomes = await self._request(OrderAction.MODIFY, list(orders), send_timeout, confirm)
        return [_typed(outcome, ModifyAck) for outcome in outcomes]

    async def _request(
        self,
        action: OrderAction,
        requests: Sequence[OrderSpec | CancelOrder | ModifyOrder],
        send_timeout: float | None,
        confirm: bool = True,
    ) -> list[Outcome | None]:
        if self._closed is not None:
            raise ConnectionClosed(self._closed)
        if not requests:
            return []
        timeout = self.config.send_timeout if send_timeout is None else send_timeout
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        tickets = self._core.submit_many(action, requests, confirm=confirm)
        for ticket in tickets:
            self._done[ticket.seq] = trio.Event()
        try:
            await self._send_now(tickets)
            if self._core.queued:
                self._wake.set()
            for ticket in tickets:
                event = self._done.get(ticket.seq)
                if event is None:
                    continue
                if ticket.state is TicketState.QUEUED:
                    # Unsent: the caller's deadline applies until it leaves.
                    with trio.move_on_at(deadline):
                        await event.wait()
                    reason = f"no connection to send it on within {timeout:g} s"
                    if self._core.withdraw(ticket, reason):
                        self._settle([ticket])
                        continue
                # It has left: only the exchange (or reconciliation) can settle it now.
                await event.wait()
        finally:
            withdrawn = [t for t in tickets if self._core.withdraw(t, "the caller stopped waiting")]
            self._settle(withdrawn)
        return [t.early if t.early is not None else t.outcome for t in tickets]

    def statistics(self) -> OutboxStatistics:
        return self._core.statistics()

    # -- the connection's side -----------------------------------------------------------------

    def on_reply(self, reply: OrderReply) -> bool:
        """Take an order reply from the reader; ``False`` if it answers no outbox command."""
        consumed, woken = self._core.on_reply(reply, trio.current_time())
        self._settle(woken)
        if consumed and self._core.queued:
            self._wake.set()
        return consumed

    def on_order_message(self, message: object) -> None:
        """Take an order-channel message from the reader (open orders, evidence)."""
        self.orders.apply(message)
        if not self._done and _only_partial_fills(message):
            # Nothing in flight, and partial fills are evidence only for a placement in flight
            # (closes and replacements, which the core remembers, always go through).
            return
        self._settle(self._core.on_order_message(message))
        if isinstance(message, CancelAllNotice):
            self._resync()

    def begin_sync(self) -> None:
        """Hold order notices back until :meth:`sync` (call before subscribing to orders)."""
        if self._rest is not None:
            self.orders.begin_sync()

    def attach(self, nursery: trio.Nursery) -> None:
        """Give the outbox a nursery that lives as long as the connection: lookups that must
        wait (for a window to close) run there, across reconnections."""
        self._lifetime = nursery

    async def sync(self) -> None:
        """Seed the open orders from REST (bounded by ``reconcile_timeout``); see the notes."""
        if self._rest is None:
            self._give_up(
                self._core.unknown(), "the reply was lost and there is no REST client to look it up"
            )
            return
        seconds = self.config.reconcile_timeout
        with trio.move_on_after(seconds) as scope:
            try:
                snapshot = (await self._rest.open_orders()).data
            except FlexconnError as exc:
                log.warning("cannot seed open orders over REST: %s", exc)
                self.orders.abort_sync()
                self.orders.resync_wanted = True  # try again once the session runs
            else:
                self.orders.finish_sync(snapshot)
        if scope.cancelled_caught:
            # The connection must not wait on REST for ever.
            log.warning("seeding the open orders took over %g s; going on without", seconds)
            self.orders.abort_sync()
            self.orders.resync_wanted = True
        self._watch(self._core.unknown())

    async def run_session(self) -> None:
        """The per-session tasks: sender and expiry; on exit, in-flight requests are UNKNOWN."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._expiry)
                if self.orders.resync_wanted:
                    self._resync()
                self._watch(())
                await self._sender()
        finally:
            self._nursery = None
            self._resyncing = False
            now = trio.current_time()
            self._settle(self._core.connection_lost(now))
            self._watch(self._core.unknown())

    def close(self, reason: str) -> None:
        """The connection has ended: settle every request (unsent ones as not applied)."""
        if self._closed is None:
            self._closed = reason
        if self._reconciler_scope is not None:
            self._reconciler_scope.cancel()
        self._watched.clear()
        self._next_look.clear()
        self._settle(self._core.close(reason))

    # -- tasks ---------------------------------------------------------------------------------

    async def _sender(self) -> None:
        core = self._core
        while True:
            if not core.queued or self._sending:
                await self._idle(math.inf)
                continue
            delay = self._delay(trio.current_time())
            if delay > 0:
                await self._idle(delay)
                continue
            batch = self._pack()
            if batch is None:
                await trio.lowlevel.checkpoint()
                continue
            if not await self._transmit(batch):
                await trio.sleep_forever()  # the socket is going away with this session

    def _delay(self, now: float) -> float:
        """Seconds until the limits (and a 20007 backoff) let the next command leave."""
        core = self._core
        bucket = self._bucket
        delay = max(core.hold_until - now, self._writer.delay(now))
        if bucket is not None and core.needs_order_tokens():
            delay = max(delay, bucket.delay(now))
        return delay

    def _pack(self) -> Batch | None:
        """Pack the next command from what is queued and charge the order bucket for it."""
        now = trio.current_time()
        bucket = self._bucket
        tokens = bucket.available(now) if bucket is not None else None
        batch = self._core.next_batch(
            now, tag=self._writer.next_tag(), wall_ms=self._wall_ms(), order_tokens=tokens
        )
        if batch is not None and bucket is not None and batch.counted_orders:
            bucket.try_take(now, batch.counted_orders)
        return batch

    async def _transmit(self, batch: Batch) -> bool:
        """Send one packed command; ``False`` if the send failed (its orders are UNKNOWN)."""
        self._sending = True
        self._sent_wake.set()
        try:
            await self._send(batch.text)
        except FlexconnError as exc:
            # The socket is going away; the frame may have reached the exchange or not.
            log.info("order command not sent cleanly (%s); reconciling", exc)
            self._settle(self._core.send_failed(batch, trio.current_time()))
            return False
        finally:
            self._sending = False
            if self._core.queued:
                self._wake.set()
        return True

    async def _send_now(self, tickets: Sequence[Ticket]) -> None:
        """The idle fast path: when nothing else waits and the limits allow, the caller sends
        its own command instead of waking the sender task (one scheduling hop less)."""
        if (
            self._nursery is None
            or self._sending
            or self._core.queued != len(tickets)
            or self._delay(trio.current_time()) > 0
        ):
            return
        batch = self._pack()
        if batch is None:
            return
        # Shielded: a caller giving up halfway through a frame would corrupt the socket. The
        # send cannot hang past the session: closing the socket makes it fail.
        with trio.CancelScope(shield=True):
            await self._transmit(batch)

    async def _idle(self, seconds: float) -> None:
        self._wake = trio.Event()
        with trio.move_on_after(seconds):
            await self._wake.wait()

    async def _expiry(self) -> None:
        core = self._core
        while True:
            deadline = core.next_deadline()
            if deadline is None:
                self._sent_wake = trio.Event()
                await self._sent_wake.wait()
                continue
            await trio.sleep_until(deadline)
            resolved, lookup = core.expire(trio.current_time())
            self._settle(resolved)
            if lookup:
                log.warning("%d order outcomes overdue: looking them up", len(lookup))
                self._watch(lookup)

    def _resync(self) -> None:
        """Re-seed the open orders (after a cancel-all, which names no orders)."""
        nursery = self._nursery
        if self._rest is None or nursery is None or self._resyncing:
            return
        self._resyncing = True
        self.orders.begin_sync()
        nursery.start_soon(self._resync_task)

    async def _resync_task(self) -> None:
        assert self._rest is not None
        try:
            snapshot = (await self._rest.open_orders()).data
        except FlexconnError as exc:
            log.warning("cannot re-seed open orders: %s", exc)
            self.orders.abort_sync()
        else:
            self.orders.finish_sync(snapshot)
        finally:
            self._resyncing = False

    # -- reconciliation ------------------------------------------------------------------------

    def _watch(self, tickets: Iterable[Ticket]) -> None:
        """Have the reconciler look these UNKNOWN tickets up (now), starting it if needed."""
        if self._closed is not None:
            return
        watched = self._watched
        fresh = [t for t in tickets if t.state is TicketState.UNKNOWN and t.seq not in watched]
        if self._rest is None:
            self._give_up(fresh, "no reply or confirmation in time, and no REST client")
            return
        now = trio.current_time()
        for ticket in fresh:
            self._watched[ticket.seq] = ticket
            self._next_look[ticket.seq] = now
        if fresh:
            self._watch_wake.set()
        if self._watched and not self._reconciling:
            nursery = self._lifetime or self._nursery
            if nursery is not None:
                self._reconciling = True
                nursery.start_soon(self._reconciler)

    async def _reconciler(self) -> None:
        """Look UNKNOWN tickets up until each is settled or out of time (see the notes)."""
        try:
            with trio.CancelScope() as scope:
                self._reconciler_scope = scope
                while self._watched:
                    await self._reconcile_round()
        finally:
            self._reconciler_scope = None
            self._reconciling = False

    async def _reconcile_round(self) -> None:
        core = self._core
        timeout = self.config.reconcile_timeout
        now = trio.current_time()
        for seq, ticket in list(self._watched.items()):
            if ticket.state is not TicketState.UNKNOWN:
                del self._watched[seq]
                self._next_look.pop(seq, None)
            elif now >= ticket.unknown_at + timeout:
                self._unwatch(ticket)
                self._give_up([ticket], f"still undecided after {timeout:g} s of lookups")
        due = [t for seq, t in self._watched.items() if self._next_look[seq] <= now]
        if not due:
            if self._watched:
                wake = min(
                    min(self._next_look.values()),
                    min(t.unknown_at + timeout for t in self._watched.values()),
                )
                self._watch_wake = trio.Event()
                with trio.move_on_at(wake):
                    await self._watch_wake.wait()
            return
        rest = self._rest
        assert rest is not None
        snapshot: Sequence[RestOpenOrder] | None = None
        for ticket in sorted(due, key=lambda t: t.seq):
            if ticket.state is not TicketState.UNKNOWN:
                continue
            # Whether absence proves anything is decided before looking (module notes).
            provable = ticket.window_closed(self._wall_ms(), self.config.clock_skew_margin_ms)
            verdict: Verdict = KeepLooking("the lookup ran out of time")
            with trio.move_on_at(ticket.unknown_at + timeout):
                try:
                    if snapshot is None:
                        snapshot = (await rest.open_orders()).data
                    verdict = await self._verdict(rest, ticket, snapshot, provable)
                except FlexconnError as exc:
                    log.info("looking up a %s failed: %s", ticket.action.value, exc)
                    verdict = KeepLooking(f"looking it up failed: {exc}")
            if ticket.state is not TicketState.UNKNOWN:
                self._unwatch(ticket)
            elif isinstance(verdict, KeepLooking):
                ticket.lookup_note = verdict.reason
                self._next_look[ticket.seq] = trio.current_time() + self._look_again(ticket)
            else:
                self._unwatch(ticket)
                if core.resolve(ticket, verdict):
                    self._settle([ticket])

    def _look_again(self, ticket: Ticket) -> float:
        """Seconds until the next lookup: when the window is provably closed, if it is not."""
        if ticket.stamp_ms is None or ticket.window_ms is None:
            return _LOOKUP_INTERVAL
        proof_ms = ticket.stamp_ms + ticket.window_ms + self.config.clock_skew_margin_ms + 1
        wait = (proof_ms - self._wall_ms()) / 1000
        return wait if wait > 0 else _LOOKUP_INTERVAL

    def _unwatch(self, ticket: Ticket) -> None:
        self._watched.pop(ticket.seq, None)
        self._next_look.pop(ticket.seq, None)

    async def _verdict(
        self,
        rest: OrderLookup,
        ticket: Ticket,
        snapshot: Sequence[RestOpenOrder],
        provable: bool,
    ) -> Verdict:
        request = ticket.request
        market = ticket.market_code
        core = self._core
        margin = self.config.clock_skew_margin_ms
        if isinstance(request, CancelOrder | ModifyOrder):
            order_id = request.order_id
            records: list[OrderRecord] = []
            if not any(o.order_id == order_id for o in snapshot):
                records = list((await rest.orders(market_code=market, order_id=order_id)).data)
                cids = {r.client_order_id for r in records if r.client_order_id is not None}
                for cid in cids:
                    records += (await rest.orders(market_code=market, client_order_id=cid)).data
            others = core.others_on(ticket)
            known = core.closed(order_id)
            if isinstance(request, CancelOrder):
                return cancel_outcome(
                    ticket,
                    open_orders=snapshot,
                    records=records,
                    final=ticket.session != core.session,
                    others=others,
                    known=known,
                    margin_ms=margin,
                )
            return modify_outcome(
                ticket,
                open_orders=snapshot,
                records=records,
                provable=provable,
                others=others,
                known=known,
                margin_ms=margin,
            )
        since = ticket.sent_ms - self.config.lookup_margin_ms
        # The history too when the open orders show it: a modify may have replaced the
        # placement (the replacement keeps the client order id; the placement's id is lowest).
        history = await rest.orders(
            market_code=market, client_order_id=ticket.client_order_id, start_time=since
        )
        ack = place_outcome(ticket, open_orders=snapshot, records=history.data)
        if ack is None:
            trades = await rest.trades(market, start_time=since)
            ack = place_outcome(ticket, trades=trades.data)
        return place_verdict(ticket, ack, provable=provable)

    def _give_up(self, tickets: Sequence[Ticket], reason: str) -> None:
        settled = []
        for t in tickets:
            note = f" (last lookup: {t.lookup_note})" if t.lookup_note else ""
            if self._core.resolve(t, OrderOutcomeUnknown(f"{t.action.value}: {reason}{note}")):
                settled.append(t)
        self._settle(settled)

    def _settle(self, tickets: Iterable[Ticket]) -> None:
        for ticket in tickets:
            outcome = ticket.outcome
            if (
                isinstance(outcome, ModifyAck)
                and outcome.source is AckSource.REST
                and outcome.replaced_by is not None
            ):
                self.orders.record_successor(outcome.order_id, outcome.replaced_by)
            event = self._done.pop(ticket.seq, None)
            if event is not None:
                event.set()
