"""The order outbox's sans-IO core: queueing, batching, reply correlation and reconciliation.

Design note. Every order request becomes a :class:`Ticket` whose life is a small state machine::

    QUEUED --next_batch--> SENT --reply--> DONE
       ^                    |  \\
       |      20007 reply --+   +--deadline / connection lost--> UNKNOWN --evidence / lookup--> DONE
       +--------------------+
    QUEUED --withdraw / close--> DONE (OrderNotApplied, never sent)

* **Batching.** Requests of one kind wait in a FIFO queue. :meth:`OutboxCore.next_batch` takes
  the kind whose oldest request is oldest (a kind that needs per-account order tokens is skipped
  while none are left) and packs up to ``max_batch_size`` of them into one command, as many as fit
  under ``max_message_length`` bytes. One request leaves as a single ``placeorder`` (etc.), more as
  ``placeorders``. Each order is encoded once, when submitted, by :func:`flexconn.protocol.encode`
  (so a bad order fails alone, before anything is sent); a command is those exact fragments in the
  envelope ``encode`` itself writes, so its length is known before it is built.
* **Correlation.** A batch carries a fresh ``tag``; the exchange answers each order separately.
  A reply is matched by its kind (:attr:`OrderReply.action`, which sees through a failed modify
  echoed as ``placeorder``), then by ``clientOrderId`` (place; every order gets a unique one) or
  ``orderId`` (cancel, modify) within the tag's batch, then by the echoed fields. A reply without
  a tag (failure replies may omit it) is matched the same way across every command in flight.
* **Rate limiting.** A ``20007`` reply means the order was refused unprocessed: it goes back to
  the front of its queue (at most ``max_rate_limit_retries`` times) and sending pauses for a
  backoff that doubles per episode and resets on the next accepted order.
* **Unknown outcomes.** A request whose reply does not come within ``reply_timeout``, or that was
  in flight when the connection dropped, is UNKNOWN. Order-channel notices seen while it was in
  flight are *evidence* (an ``OrderOpened`` carrying its client order id proves a placement);
  otherwise the I/O shell looks the order up over REST and decides with the rules of
  :mod:`flexconn._reconcile`. Nothing is ever resent blindly.

The core never awaits and never reads a clock: callers pass ``now`` (trio time) and ``wall_ms``
(epoch milliseconds, for REST time windows).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from typing import Final

import attrs

from flexconn._outbox_types import (
    Ack,
    AckSource,
    CancelAck,
    ModifyAck,
    OrderRequest,
    OutboxConfig,
    OutboxStatistics,
    Outcome,
    PlaceAck,
    Ticket,
    TicketState,
    same,
)
from flexconn.errors import (
    OrderNotApplied,
    OrderOutcomeUnknown,
    RateLimitError,
    ValidationError,
)
from flexconn.models.enums import OrderStatus
from flexconn.models.notices import (
    OrderClosed,
    OrderFailureNotice,
    OrderMatched,
    OrderModified,
    OrderOpened,
    OrderUpdate,
)
from flexconn.models.orders import (
    CancelOrder,
    CancelOrderRequest,
    LimitOrder,
    MarketOrder,
    ModifyOrder,
    ModifyOrderRequest,
    PlaceOrderRequest,
    StopLimitOrder,
)
from flexconn.models.replies import OrderAction, OrderEcho, OrderReply
from flexconn.protocol import MAX_CLIENT_ORDER_ID, encode, message_length

__all__ = ["Batch", "OutboxCore"]

_SPECS: Final = (LimitOrder, MarketOrder, StopLimitOrder)

_RATE_LIMITED: Final = "20007"
_BATCH_OPS: Final = {
    OrderAction.PLACE: "placeorders",
    OrderAction.CANCEL: "cancelorders",
    OrderAction.MODIFY: "modifyorders",
}
#: The kinds the exchange counts against the account's orders-per-second limit.
_COUNTED: Final = frozenset({OrderAction.PLACE, OrderAction.MODIFY})
_RETIRED_TAGS_KEPT: Final = 4096
#: How many caller-given client order ids the uniqueness check remembers.
_GIVEN_KEPT: Final = 100_000


@attrs.frozen(kw_only=True)
class Batch:
    """One command to send: its text and the tickets it carries."""

    action: OrderAction
    tickets: tuple[Ticket, ...]
    tag: str
    text: str

    @property
    def counted_orders(self) -> int:
        """Orders this command charges to the account's orders-per-second limit."""
        return len(self.tickets) if self.action in _COUNTED else 0


def _single_prefix(action: OrderAction) -> str:
    return '{"op":"' + action.value + '","data":'


def _envelope_length(action: OrderAction, count: int, tag: str) -> int:
    """Bytes of a command's envelope around its orders (commas between orders included)."""
    if count == 1:
        return len('{"op":"",' + '"tag":,"data":}') + len(action.value) + len(tag)
    op = _BATCH_OPS[action]
    return len('{"op":"","tag":,"dataArray":[]}') + len(op) + len(tag) + count - 1


def _command_text(action: OrderAction, tag: str, fragments: Sequence[str]) -> str:
    if len(fragments) == 1:
        return '{"op":"' + action.value + '","tag":' + tag + ',"data":' + fragments[0] + "}"
    op = _BATCH_OPS[action]
    return '{"op":"' + op + '","tag":' + tag + ',"dataArray":[' + ",".join(fragments) + "]}"


def _single_request(
    action: OrderAction, request: OrderRequest
) -> PlaceOrderRequest | CancelOrderRequest | ModifyOrderRequest:
    if action is OrderAction.PLACE and isinstance(
        request, LimitOrder | MarketOrder | StopLimitOrder
    ):
        return PlaceOrderRequest(order=request)
    if action is OrderAction.CANCEL and isinstance(request, CancelOrder):
        return CancelOrderRequest(order=request)
    if action is OrderAction.MODIFY and isinstance(request, ModifyOrder):
        return ModifyOrderRequest(order=request)
    raise ValidationError("data", f"{action.value} cannot carry {type(request).__name__}")


def _consistent(ticket: Ticket, data: OrderEcho | None) -> bool:
    """Whether a reply's echoed fields could belong to ``ticket`` (absent fields match)."""
    if data is None:
        return True
    request = ticket.request
    if not same(data.market_code, request.market_code):
        return False
    if isinstance(request, CancelOrder):
        return same(data.order_id, request.order_id)
    if isinstance(request, ModifyOrder):
        return (
            same(data.order_id, request.order_id)
            and same(data.side, request.side)
            and same(data.price, request.price)
            and same(data.quantity, request.quantity)
        )
    price = request.price if isinstance(request, LimitOrder) else None
    return (
        same(data.client_order_id, request.client_order_id)
        and same(data.side, request.side)
        and same(data.quantity, request.quantity)
        and same(data.price, price)
    )


class OutboxCore:
    """The outbox's state and rules, without I/O (see the module notes).

    Args:
        config: batching, pacing and retry settings.
        first_client_order_id: where auto-assigned client order ids start; seeding it from the
            wall clock keeps ids unique across program runs.
    """

    def __init__(self, config: OutboxConfig, *, first_client_order_id: int = 1) -> None:
        self.config = config
        self._seq = itertools.count(1)
        # Auto-assigned ids are the range [_first_cid, _next_cid), minus those callers took;
        # the ids callers gave are remembered (the most recent _GIVEN_KEPT of them).
        self._first_cid = self._next_cid = max(
            1, min(first_client_order_id, MAX_CLIENT_ORDER_ID // 2)
        )
        self._given: set[int] = set()
        self._given_order: deque[int] = deque()
        self._queues: dict[OrderAction, deque[Ticket]] = {action: deque() for action in OrderAction}
        self._by_tag: dict[str, list[Ticket]] = {}
        self._by_cid: dict[int, Ticket] = {}
        self._by_oid: dict[tuple[OrderAction, int], list[Ticket]] = {}
        self._sent: deque[Ticket] = deque()
        self._unknown: dict[int, Ticket] = {}
        self._retired_tags: OrderedDict[str, None] = OrderedDict()
        self._backoff = config.rate_limit_backoff
        #: No command may leave before this trio time (a ``20007`` backoff).
        self.hold_until = float("-inf")
        #: The session (socket) commands are sent on now; replies only come from it.
        self.session = 0
        self._commands_sent = 0
        self._orders_sent = 0
        self._rate_limited = 0
        self._reconciled = 0

    def statistics(self) -> OutboxStatistics:
        in_flight = len({t.seq for t in self._sent if t.state is TicketState.SENT})
        return OutboxStatistics(
            queued=self.queued,
            in_flight=in_flight,
            unknown=len(self._unknown),
            commands_sent=self._commands_sent,
            orders_sent=self._orders_sent,
            rate_limited=self._rate_limited,
            reconciled=self._reconciled,
        )

    # -- submitting ----------------------------------------------------------------------------

    def submit(self, action: OrderAction, request: OrderRequest) -> Ticket:
        """Validate, encode and queue one request.

        A place order without ``client_order_id`` gets a fresh one; a caller-given one must not
        have been used before on this outbox (checked against every id assigned here and the
        last 100,000 callers gave).

        Raises:
            ValidationError: the order breaks a documented rule, is too long even alone, or
                reuses a client order id (nothing is queued).
        """
        return self.submit_many(action, [request])[0]

    def submit_many(self, action: OrderAction, requests: Iterable[OrderRequest]) -> list[Ticket]:
        """Validate every request first, then queue them all (or none) in order."""
        prepared: list[tuple[OrderRequest, str]] = []
        fresh: set[int] = set()
        given: list[int] = []
        for index, request in enumerate(requests):
            if action is OrderAction.PLACE and isinstance(request, _SPECS):
                cid = request.client_order_id
                if cid is not None and (self._used(cid) or cid in fresh):
                    raise ValidationError(
                        f"[{index}].clientOrderId", f"{cid} was already used on this connection"
                    )
                if cid is None:
                    cid = self._fresh_cid(fresh)
                    request = attrs.evolve(request, client_order_id=cid)
                else:
                    given.append(cid)
                fresh.add(cid)
            text = encode(_single_request(action, request))
            prefix = _single_prefix(action)
            if not (text.startswith(prefix) and text.endswith("}")):
                raise AssertionError(f"unexpected single-command layout: {text[:40]!r}")
            fragment = text[len(prefix) : -1]
            prepared.append((request, fragment))
        tickets: list[Ticket] = []
        for request, fragment in prepared:
            size = len(fragment) if fragment.isascii() else message_length(fragment)
            if _envelope_length(action, 1, "0" * 20) + size > self.config.max_message_length:
                raise ValidationError(
                    "data",
                    f"the order alone is {size} bytes: a command holding it would exceed "
                    f"{self.config.max_message_length} bytes",
                )
            tickets.append(
                Ticket(
                    seq=next(self._seq),
                    action=action,
                    request=request,
                    fragment=fragment,
                    size=size,
                )
            )
        for cid in given:
            self._given.add(cid)
            self._given_order.append(cid)
            if len(self._given_order) > _GIVEN_KEPT:
                self._given.discard(self._given_order.popleft())
        self._queues[action].extend(tickets)
        return tickets

    def _used(self, cid: int) -> bool:
        return cid in self._given or self._first_cid <= cid < self._next_cid

    def _fresh_cid(self, taken: set[int]) -> int:
        cid = self._next_cid
        while cid in self._given or cid in taken:
            cid += 1
        if cid > MAX_CLIENT_ORDER_ID:
            raise ValidationError("clientOrderId", "client order ids are exhausted")
        self._next_cid = cid + 1
        return cid

    def withdraw(self, ticket: Ticket, reason: str) -> bool:
        """Take back a request that was never sent; ``False`` if it has already left."""
        if ticket.state is not TicketState.QUEUED:
            return False
        try:
            self._queues[ticket.action].remove(ticket)
        except ValueError:
            return False
        self._finish(ticket, OrderNotApplied(reason, sent=False))
        return True

    # -- sending -------------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def needs_order_tokens(self) -> bool:
        """Whether everything queued counts against the per-account order limit."""
        return not self._queues[OrderAction.CANCEL] and self.queued > 0

    def next_batch(
        self, now: float, *, tag: int | str, wall_ms: int, order_tokens: float | None = None
    ) -> Batch | None:
        """Pack the next command and mark its tickets SENT (before the send: the reply may
        arrive before the send call returns).

        Args:
            now: trio time.
            tag: a tag not used by any other command of this connection.
            wall_ms: epoch milliseconds, remembered for REST lookups.
            order_tokens: per-account order tokens available (``None``: no such limit).

        Returns:
            ``None`` while a backoff holds or nothing can be sent.
        """
        if now < self.hold_until:
            return None
        action = self._pick(order_tokens)
        if action is None:
            return None
        queue = self._queues[action]
        limit = self.config.max_batch_size
        if action in _COUNTED and order_tokens is not None:
            limit = min(limit, int(order_tokens))
        tag_text = str(tag)
        picked: list[Ticket] = []
        total = 0
        while queue and len(picked) < limit:
            ticket = queue[0]
            count = len(picked) + 1
            length = _envelope_length(action, count, tag_text) + total + ticket.size
            if picked and length > self.config.max_message_length:
                break
            picked.append(queue.popleft())
            total += ticket.size
        text = _command_text(action, tag_text, [t.fragment for t in picked])
        for ticket in picked:
            ticket.state = TicketState.SENT
            ticket.tag = tag_text
            ticket.session = self.session
            ticket.sent_at = now
            ticket.sent_ms = wall_ms
            ticket.attempts += 1
            ticket.evidence = None
            self._index(ticket)
            self._sent.append(ticket)
        self._by_tag[tag_text] = list(picked)
        self._commands_sent += 1
        self._orders_sent += len(picked)
        return Batch(action=action, tickets=tuple(picked), tag=tag_text, text=text)

    def _pick(self, order_tokens: float | None) -> OrderAction | None:
        best: OrderAction | None = None
        best_seq = 0
        for action, queue in self._queues.items():
            if not queue:
                continue
            if action in _COUNTED and order_tokens is not None and order_tokens < 1:
                continue
            if best is None or queue[0].seq < best_seq:
                best, best_seq = action, queue[0].seq
        return best

    def _index(self, ticket: Ticket) -> None:
        cid = ticket.client_order_id
        if ticket.action is OrderAction.PLACE and cid is not None:
            self._by_cid[cid] = ticket
        order_id = ticket.order_id
        if order_id is not None:
            self._by_oid.setdefault((ticket.action, order_id), []).append(ticket)

    def _unindex(self, ticket: Ticket) -> None:
        cid = ticket.client_order_id
        if (
            ticket.action is OrderAction.PLACE
            and cid is not None
            and self._by_cid.get(cid) is ticket
        ):
            del self._by_cid[cid]
        order_id = ticket.order_id
        if order_id is not None:
            key = (ticket.action, order_id)
            group = self._by_oid.get(key)
            if group is not None and ticket in group:
                group.remove(ticket)
                if not group:
                    del self._by_oid[key]
        self._drop_from_tag(ticket)

    def _drop_from_tag(self, ticket: Ticket) -> None:
        tag = ticket.tag
        if tag is None:
            return
        pool = self._by_tag.get(tag)
        if pool is None or ticket not in pool:
            return
        pool.remove(ticket)
        if not pool:
            del self._by_tag[tag]
            self._retired_tags[tag] = None
            if len(self._retired_tags) > _RETIRED_TAGS_KEPT:
                self._retired_tags.popitem(last=False)

    def send_failed(self, batch: Batch) -> list[Ticket]:
        """The send raised: the frame may or may not have reached the exchange, so its tickets
        are UNKNOWN (resolved by evidence when possible). Returns the tickets resolved."""
        resolved: list[Ticket] = []
        for ticket in batch.tickets:
            if ticket.state is TicketState.SENT:
                self._drop_from_tag(ticket)
                if self._to_unknown(ticket):
                    resolved.append(ticket)
        return resolved

    # -- replies -------------------------------------------------------------------------------

    def on_reply(self, reply: OrderReply, now: float) -> tuple[bool, Ticket | None]:
        """Match one order reply to its request.

        Returns:
            ``(consumed, resolved)``: whether the reply belonged to the outbox (``False``: some
            other sender's command) and the ticket it resolved, if any (``None`` when the order
            went back to the queue after ``20007``, or the reply came after the outcome was
            settled otherwise).
        """
        ticket = self._match(reply)
        if ticket is None:
            # A reply to one of our commands whose request is settled already (a late reply
            # after a lookup, a duplicate) is still ours; anything else is someone else's.
            tag = reply.tag
            return (tag is not None and (tag in self._by_tag or tag in self._retired_tags), None)
        if reply.submitted:
            self._backoff = self.config.rate_limit_backoff
            return True, (ticket if self._finish(ticket, self._ack(ticket, reply)) else None)
        error = reply.error()
        assert error is not None
        if isinstance(error, RateLimitError):
            self._rate_limited += 1
        if (
            isinstance(error, RateLimitError)
            and error.code == _RATE_LIMITED
            and ticket.attempts <= self.config.max_rate_limit_retries
        ):
            self._requeue(ticket, now)
            return True, None
        return True, (ticket if self._finish(ticket, error) else None)

    def _match(self, reply: OrderReply) -> Ticket | None:
        action = reply.action
        ticket = self._match_action(reply, action)
        if ticket is None and action is OrderAction.MODIFY and reply.event == OrderAction.PLACE:
            # A reply read as a modify (an order id, no order type) may still be a placement.
            ticket = self._match_action(reply, OrderAction.PLACE)
        return ticket

    def _match_action(self, reply: OrderReply, action: OrderAction) -> Ticket | None:
        tag = reply.tag
        data = reply.data
        pool: Sequence[Ticket] | None = None
        if tag is not None:
            pool = self._by_tag.get(tag)
            if pool is None:
                return None
        if data is not None:
            if action is OrderAction.PLACE and data.client_order_id is not None:
                found = self._by_cid.get(data.client_order_id)
                if found is not None and self._replyable(found) and (tag in (None, found.tag)):
                    return found
            elif action is not OrderAction.PLACE and data.order_id is not None:
                # Several requests may target one order: prefer one the echo fits.
                group = [
                    found
                    for found in self._by_oid.get((action, data.order_id), ())
                    if self._replyable(found) and tag in (None, found.tag)
                ]
                fitting = [found for found in group if _consistent(found, data)]
                if fitting or group:
                    return (fitting or group)[0]
        candidates: Iterable[Ticket] = (
            pool if pool is not None else (t for group in self._by_tag.values() for t in group)
        )
        for found in candidates:
            if found.action is action and self._replyable(found) and _consistent(found, data):
                return found
        return None

    def _replyable(self, ticket: Ticket) -> bool:
        # Only the current socket answers; UNKNOWN tickets of it (a late reply) still count.
        return (
            ticket.state in (TicketState.SENT, TicketState.UNKNOWN)
            and ticket.session == self.session
        )

    def _ack(self, ticket: Ticket, reply: OrderReply) -> Ack:
        request = ticket.request
        data = reply.data
        if isinstance(request, CancelOrder):
            return CancelAck(
                order=request,
                client_order_id=data.client_order_id if data is not None else None,
                reply=reply,
            )
        if isinstance(request, ModifyOrder):
            return ModifyAck(order=request, reply=reply)
        return PlaceAck(
            order=request, order_id=data.order_id if data is not None else None, reply=reply
        )

    def _requeue(self, ticket: Ticket, now: float) -> None:
        self._unindex(ticket)
        self._unknown.pop(ticket.seq, None)
        ticket.state = TicketState.QUEUED
        ticket.tag = None
        queue = self._queues[ticket.action]
        position = next((i for i, t in enumerate(queue) if t.seq > ticket.seq), len(queue))
        queue.insert(position, ticket)
        if now >= self.hold_until:
            self.hold_until = now + self._backoff
            self._backoff = min(self._backoff * 2, self.config.max_rate_limit_backoff)

    # -- evidence from the order channel -------------------------------------------------------

    def on_order_message(self, message: object) -> list[Ticket]:
        """Learn from an order-channel message; returns UNKNOWN tickets it resolved."""
        resolved: list[Ticket] = []
        if isinstance(message, OrderUpdate):
            for event in message.data:
                if isinstance(event, OrderOpened | OrderModified | OrderMatched | OrderClosed):
                    self._learn(event, resolved)
        elif isinstance(message, OrderFailureNotice) and message.data.order_id is not None:
            action = message.action
            for ticket in list(self._by_oid.get((action, message.data.order_id), ())):
                if action is OrderAction.CANCEL:
                    outcome: Outcome = CancelAck(
                        order=self._cancel_of(ticket), source=AckSource.ORDER_CHANNEL
                    )
                else:
                    outcome = OrderNotApplied(
                        f"order {message.data.order_id} was no longer open for the modify",
                        sent=True,
                    )
                self._evidence(ticket, outcome, resolved)
        return resolved

    def _learn(
        self,
        event: OrderOpened | OrderModified | OrderMatched | OrderClosed,
        resolved: list[Ticket],
    ) -> None:
        cid = event.client_order_id
        if cid is not None:
            ticket = self._by_cid.get(cid)
            if (
                ticket is not None
                and ticket.state in (TicketState.SENT, TicketState.UNKNOWN)
                and event.market_code == ticket.market_code
            ):
                request = ticket.request
                assert isinstance(request, LimitOrder | MarketOrder | StopLimitOrder)
                known = ticket.evidence
                order_id = event.order_id
                if isinstance(known, PlaceAck) and known.order_id is not None:
                    order_id = min(order_id, known.order_id)
                ack = PlaceAck(order=request, order_id=order_id, source=AckSource.ORDER_CHANNEL)
                self._evidence(ticket, ack, resolved)
        gone = isinstance(event, OrderClosed) or (
            isinstance(event, OrderMatched) and event.status is OrderStatus.FILLED
        )
        amended = isinstance(event, OrderClosed) and event.status is OrderStatus.CANCELED_BY_AMEND
        for ticket in list(self._by_oid.get((OrderAction.CANCEL, event.order_id), ())):
            if amended:
                # A modify replaced the order first, so the cancel found no such order.
                self._evidence(
                    ticket,
                    OrderNotApplied(
                        f"order {event.order_id} was replaced by a modify before the cancel",
                        sent=True,
                    ),
                    resolved,
                )
            elif gone:
                self._evidence(
                    ticket,
                    CancelAck(order=self._cancel_of(ticket), source=AckSource.ORDER_CHANNEL),
                    resolved,
                )
        for ticket in list(self._by_oid.get((OrderAction.MODIFY, event.order_id), ())):
            request = ticket.request
            assert isinstance(request, ModifyOrder)
            outcome: Outcome | None = None
            if isinstance(event, OrderModified) or (
                isinstance(event, OrderClosed) and event.status is OrderStatus.CANCELED_BY_AMEND
            ):
                outcome = ModifyAck(order=request, source=AckSource.ORDER_CHANNEL)
            elif gone:
                outcome = OrderNotApplied(
                    f"order {event.order_id} closed ({event.status}) before the modify",
                    sent=True,
                )
            if outcome is not None:
                self._evidence(ticket, outcome, resolved)

    @staticmethod
    def _cancel_of(ticket: Ticket) -> CancelOrder:
        request = ticket.request
        assert isinstance(request, CancelOrder)
        return request

    def _evidence(self, ticket: Ticket, outcome: Outcome, resolved: list[Ticket]) -> None:
        if ticket.state is TicketState.SENT:
            ticket.evidence = outcome
        elif ticket.state is TicketState.UNKNOWN and self._finish(ticket, outcome):
            resolved.append(ticket)

    # -- deadlines and drops -------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """Trio time at which the oldest outstanding reply is overdue (``None``: none out)."""
        sent = self._sent
        while sent and sent[0].state is not TicketState.SENT:
            sent.popleft()
        return sent[0].sent_at + self.config.reply_timeout if sent else None

    def expire(self, now: float) -> tuple[list[Ticket], list[Ticket]]:
        """Move overdue SENT tickets to UNKNOWN.

        Returns:
            ``(resolved, to_look_up)``: those settled by evidence, and those to look up (a late
            reply still resolves them first).
        """
        resolved: list[Ticket] = []
        lookup: list[Ticket] = []
        sent = self._sent
        timeout = self.config.reply_timeout
        while sent and (sent[0].state is not TicketState.SENT or sent[0].sent_at + timeout <= now):
            ticket = sent.popleft()
            if ticket.state is not TicketState.SENT:
                continue
            (resolved if self._to_unknown(ticket) else lookup).append(ticket)
        return resolved, lookup

    def connection_lost(self) -> list[Ticket]:
        """The current socket is gone: its outstanding tickets can get no reply. Returns those
        settled by evidence; the rest wait in :meth:`unknown` for reconciliation."""
        resolved: list[Ticket] = []
        for ticket in list(self._sent):
            if ticket.state is TicketState.SENT and self._to_unknown(ticket):
                resolved.append(ticket)
        self._sent.clear()
        for pool in list(self._by_tag.values()):
            for ticket in list(pool):
                self._drop_from_tag(ticket)
        self.session += 1
        return resolved

    def _to_unknown(self, ticket: Ticket) -> bool:
        """Mark UNKNOWN; settle at once (returning ``True``) when evidence decides."""
        ticket.state = TicketState.UNKNOWN
        self._unknown[ticket.seq] = ticket
        if ticket.evidence is not None:
            return self._finish(ticket, ticket.evidence)
        return False

    def unknown(self) -> list[Ticket]:
        """Tickets whose outcome awaits a lookup, oldest first."""
        return sorted(self._unknown.values(), key=lambda t: t.seq)

    # -- settling ------------------------------------------------------------------------------

    def resolve(self, ticket: Ticket, outcome: Outcome) -> bool:
        """Settle a ticket (from a lookup); ``False`` if it was settled already."""
        return self._finish(ticket, outcome)

    def _finish(self, ticket: Ticket, outcome: Outcome) -> bool:
        if ticket.state is TicketState.DONE:
            return False
        if ticket.state is TicketState.UNKNOWN:
            self._reconciled += 1
        self._unindex(ticket)
        self._unknown.pop(ticket.seq, None)
        ticket.state = TicketState.DONE
        ticket.outcome = outcome
        return True

    def close(self, reason: str) -> list[Ticket]:
        """The connection has ended: settle every ticket. Returns them."""
        done: list[Ticket] = []
        for queue in self._queues.values():
            while queue:
                ticket = queue.popleft()
                if self._finish(ticket, OrderNotApplied(f"not sent: {reason}", sent=False)):
                    done.append(ticket)
        for ticket in [*self._sent, *self.unknown()]:
            if ticket.state is not TicketState.DONE:
                outcome: Outcome = ticket.evidence or OrderOutcomeUnknown(
                    f"{ticket.action.value} sent, outcome unknown: {reason}"
                )
                if self._finish(ticket, outcome):
                    done.append(ticket)
        self._sent.clear()
        return done
