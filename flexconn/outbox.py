"""The batched order outbox: the trio shell around :mod:`flexconn._outbox_core`.

Design note. A :class:`Connection <flexconn.connection.Connection>` with credentials owns one
:class:`Outbox`. Callers (``conn.place`` and friends) queue tickets in the core and wait on a
``trio.Event`` each; everything else happens in the connection's tasks:

* per session, a *sender* waits until something is queued and the rate limits allow a command
  (the socket's command bucket, which every command shares, and the per-account order bucket for
  place and modify), then packs whatever has accumulated into one command and sends it. When idle
  a lone request leaves at once (its caller writes it, sparing a task switch); requests arriving
  while a send or the limiter is busy leave together next time: batching is natural, never a
  delay;
* per session, an *expiry* task moves requests whose reply is overdue to UNKNOWN and looks them up
  over REST (never resending them);
* the connection's reader hands every order reply to :meth:`Outbox.on_reply` and every
  order-channel message to :meth:`Outbox.on_order_message` (which also keeps
  :attr:`Outbox.orders`, the account's open orders);
* after every (re)connection, before the connection reports CONNECTED, :meth:`Outbox.sync`
  seeds the open orders from ``GET /v2/orders`` and reconciles every request whose reply was lost
  with the socket: by order-channel evidence, else the open orders, ``GET /v2.1/orders`` and
  ``GET /v2/trades/{marketCode}``. A request that was never written simply waits for the next
  session (bounded by its caller's ``send_timeout``).

Without a REST client nothing can be looked up: a request whose reply is lost ends with
:class:`~flexconn.errors.OrderOutcomeUnknown` unless order-channel notices proved its outcome,
and the open orders are only those seen on the order channel (``orders.synced`` stays false).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol, TypeVar

import attrs
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
from flexconn._reconcile import cancel_outcome, modify_outcome, place_outcome
from flexconn.errors import (
    ConnectionClosed,
    FlexconnError,
    OrderNotApplied,
    OrderOutcomeUnknown,
)
from flexconn.models.notices import CancelAllNotice
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
        send: sends one command on the current socket, taking a token from the socket's command
            bucket (``Connection.send_raw``).
        command_delay: seconds until that bucket has a token, given trio time.
        next_tag: a tag no other command of the connection uses.
        rest: REST calls for seeding and reconciliation (``None``: see the module notes).
        wall_ms: epoch milliseconds (REST time windows, client order id seed).
    """

    def __init__(
        self,
        *,
        config: OutboxConfig,
        send: Callable[[str], Awaitable[None]],
        command_delay: Callable[[float], float],
        next_tag: Callable[[], int],
        rest: OrderLookup | None,
        wall_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self.config = config
        #: The account's open orders, kept from the order channel (and REST when available).
        self.orders = OpenOrders()
        self._core = OutboxCore(config, first_client_order_id=wall_ms() * 1000)
        self._send = send
        self._command_delay = command_delay
        self._next_tag = next_tag
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

    # -- the callers' side ---------------------------------------------------------------------

    async def place(self, order: OrderSpec, *, send_timeout: float | None = None) -> PlaceAck:
        """Place one order; see :meth:`flexconn.connection.Connection.place`."""
        (outcome,) = await self._request(OrderAction.PLACE, [order], send_timeout)
        return _raise_or(_typed(outcome, PlaceAck))

    async def cancel(self, order: CancelOrder, *, send_timeout: float | None = None) -> CancelAck:
        (outcome,) = await self._request(OrderAction.CANCEL, [order], send_timeout)
        return _raise_or(_typed(outcome, CancelAck))

    async def modify(self, order: ModifyOrder, *, send_timeout: float | None = None) -> ModifyAck:
        (outcome,) = await self._request(OrderAction.MODIFY, [order], send_timeout)
        return _raise_or(_typed(outcome, ModifyAck))

    async def place_many(
        self, orders: Iterable[OrderSpec], *, send_timeout: float | None = None
    ) -> list[PlaceAck | FlexconnError]:
        outcomes = await self._request(OrderAction.PLACE, list(orders), send_timeout)
        return [_typed(outcome, PlaceAck) for outcome in outcomes]

    async def cancel_many(
        self, orders: Iterable[CancelOrder], *, send_timeout: float | None = None
    ) -> list[CancelAck | FlexconnError]:
        outcomes = await self._request(OrderAction.CANCEL, list(orders), send_timeout)
        return [_typed(outcome, CancelAck) for outcome in outcomes]

    async def modify_many(
        self, orders: Iterable[ModifyOrder], *, send_timeout: float | None = None
    ) -> list[ModifyAck | FlexconnError]:
        outcomes = await self._request(OrderAction.MODIFY, list(orders), send_timeout)
        return [_typed(outcome, ModifyAck) for outcome in outcomes]

    async def _request(
        self,
        action: OrderAction,
        requests: Sequence[OrderSpec | CancelOrder | ModifyOrder],
        send_timeout: float | None,
    ) -> list[Outcome | None]:
        if self._closed is not None:
            raise ConnectionClosed(self._closed)
        if not requests:
            return []
        timeout = self.config.send_timeout if send_timeout is None else send_timeout
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        tickets = self._core.submit_many(action, requests)
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
        return [ticket.outcome for ticket in tickets]

    def statistics(self) -> OutboxStatistics:
        return self._core.statistics()

    # -- the connection's side -----------------------------------------------------------------

    def on_reply(self, reply: OrderReply) -> bool:
        """Take an order reply from the reader; ``False`` if it answers no outbox command."""
        consumed, ticket = self._core.on_reply(reply, trio.current_time())
        if ticket is not None:
            self._settle([ticket])
        if consumed and self._core.queued:
            self._wake.set()
        return consumed

    def on_order_message(self, message: object) -> None:
        """Take an order-channel message from the reader (open orders, evidence)."""
        self.orders.apply(message)
        self._settle(self._core.on_order_message(message))
        if isinstance(message, CancelAllNotice):
            self._resync()

    def begin_sync(self) -> None:
        """Hold order notices back until :meth:`sync` (call before subscribing to orders)."""
        if self._rest is not None:
            self.orders.begin_sync()

    async def sync(self) -> None:
        """Seed the open orders and settle every request whose reply was lost; see the notes."""
        unknown = self._core.unknown()
        if self._rest is None:
            self._give_up(unknown, "the reply was lost and there is no REST client to look it up")
            return
        seconds = self.config.reconcile_timeout
        with trio.move_on_after(seconds) as scope:
            try:
                snapshot = (await self._rest.open_orders()).data
            except FlexconnError as exc:
                log.warning("cannot seed open orders over REST: %s", exc)
                self.orders.abort_sync()
                self.orders.resync_wanted = True  # try again once the session runs
                self._give_up(unknown, f"the reply was lost and REST failed: {exc}")
                return
            self.orders.finish_sync(snapshot)
            await self._look_up(unknown, final=True, snapshot=snapshot)
        if scope.cancelled_caught:
            # The connection must not wait on REST for ever: what is left stays unknown.
            log.warning("reconciliation took over %g s; giving up on the rest", seconds)
            if not self.orders.synced:
                self.orders.abort_sync()
                self.orders.resync_wanted = True
            self._give_up(unknown, f"looking it up took over {seconds:g} s")

    async def run_session(self) -> None:
        """The per-session tasks: sender and expiry; on exit, in-flight requests are UNKNOWN."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._expiry)
                if self.orders.resync_wanted:
                    self._resync()
                await self._sender()
        finally:
            self._nursery = None
            self._resyncing = False
            self._settle(self._core.connection_lost())

    def close(self, reason: str) -> None:
        """The connection has ended: settle every request (unsent ones as not applied)."""
        if self._closed is None:
            self._closed = reason
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
        delay = max(core.hold_until - now, self._command_delay(now))
        if bucket is not None and core.needs_order_tokens():
            delay = max(delay, bucket.delay(now))
        return delay

    def _pack(self) -> Batch | None:
        """Pack the next command from what is queued and charge the order bucket for it."""
        now = trio.current_time()
        bucket = self._bucket
        tokens = bucket.available(now) if bucket is not None else None
        batch = self._core.next_batch(
            now, tag=self._next_tag(), wall_ms=self._wall_ms(), order_tokens=tokens
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
            log.info("order command not sent cleanly (%s); reconciling after reconnect", exc)
            self._settle(self._core.send_failed(batch))
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
                log.warning("%d order replies overdue: looking them up", len(lookup))
                assert self._nursery is not None
                self._nursery.start_soon(self._look_up, lookup)

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

    async def _look_up(
        self,
        tickets: Sequence[Ticket],
        *,
        final: bool = False,
        snapshot: Sequence[RestOpenOrder] | None = None,
    ) -> None:
        """Settle UNKNOWN tickets from REST. ``final``: their socket is gone, so a request the
        exchange shows no trace of was not applied (else its outcome stays unknown)."""
        rest = self._rest
        if rest is None:
            self._give_up(tickets, "no reply within the deadline, and no REST client")
            return
        for ticket in tickets:
            if ticket.state is TicketState.DONE:
                continue
            try:
                if snapshot is None:
                    snapshot = (await rest.open_orders()).data
                outcome = await self._reconcile(rest, ticket, snapshot, final)
            except FlexconnError as exc:
                outcome = OrderOutcomeUnknown(
                    f"{ticket.action.value} outcome unknown: looking it up failed: {exc}"
                )
            if self._core.resolve(ticket, outcome):
                self._settle([ticket])

    async def _reconcile(
        self,
        rest: OrderLookup,
        ticket: Ticket,
        snapshot: Sequence[RestOpenOrder],
        final: bool,
    ) -> Outcome:
        request = ticket.request
        market = ticket.market_code
        if isinstance(request, CancelOrder):
            records: Sequence[OrderRecord] = ()
            if not any(o.order_id == request.order_id for o in snapshot):
                reply = await rest.orders(market_code=market, order_id=request.order_id)
                records = reply.data
            return cancel_outcome(ticket, open_orders=snapshot, records=records, final=final)
        if isinstance(request, ModifyOrder):
            found: list[OrderRecord] = []
            if not any(o.order_id == request.order_id for o in snapshot):
                found = list(
                    (await rest.orders(market_code=market, order_id=request.order_id)).data
                )
                cids = {r.client_order_id for r in found if r.client_order_id is not None}
                for cid in cids:
                    found += (await rest.orders(market_code=market, client_order_id=cid)).data
            return modify_outcome(ticket, open_orders=snapshot, records=found, final=final)
        since = ticket.sent_ms - self.config.lookup_margin_ms
        ack = place_outcome(ticket, open_orders=snapshot)
        if ack is None:
            history = await rest.orders(
                market_code=market, client_order_id=ticket.client_order_id, start_time=since
            )
            ack = place_outcome(ticket, records=history.data)
        if ack is None:
            trades = await rest.trades(market, start_time=since)
            ack = place_outcome(ticket, trades=trades.data)
        if ack is not None:
            return ack
        if final:
            return OrderNotApplied(
                f"the connection dropped before the reply, and the exchange has no order with "
                f"clientOrderId {ticket.client_order_id}: it was not placed",
                sent=True,
            )
        return OrderOutcomeUnknown(
            f"no reply within {self.config.reply_timeout:g} s and no trace of clientOrderId "
            f"{ticket.client_order_id} yet"
        )

    def _give_up(self, tickets: Sequence[Ticket], reason: str) -> None:
        settled = [
            t
            for t in tickets
            if self._core.resolve(t, OrderOutcomeUnknown(f"{t.action.value}: {reason}"))
        ]
        self._settle(settled)

    def _settle(self, tickets: Iterable[Ticket]) -> None:
        for ticket in tickets:
            outcome = ticket.outcome
            if isinstance(outcome, ModifyAck) and outcome.source is not AckSource.REPLY:
                if outcome.replaced_by is not None:
                    self.orders.record_successor(outcome.order_id, outcome.replaced_by)
                else:
                    successor = self.orders.successor(outcome.order_id)
                    if successor != outcome.order_id:
                        ticket.outcome = attrs.evolve(outcome, replaced_by=successor)
            event = self._done.pop(ticket.seq, None)
            if event is not None:
                event.set()
