"""The order outbox's sans-IO core: queueing, batching, reply correlation and attribution.

Design note. Every order request becomes a :class:`Ticket` whose life is a small state machine::

    QUEUED --next_batch--> SENT --reply submitted:false--> DONE (refused)
       ^                    |  \\
       |      20007 reply --+   +--reply submitted:true--> ACCEPTED --confirmation--> DONE
       +--------------------+                                  |
                SENT / ACCEPTED --deadline, connection lost--> UNKNOWN --evidence, REST--> DONE
    QUEUED --withdraw / close--> DONE (OrderNotApplied(sent=False), never written)

* **Batching.** Requests of one kind wait in a FIFO queue. :meth:`OutboxCore.next_batch` takes
  the kind whose oldest request is oldest (a kind that needs per-account order tokens is skipped
  while none are left) and packs up to ``max_batch_size`` of them into one command, as many as fit
  under ``max_message_length`` bytes. One request leaves as a single ``placeorder`` (etc.), more as
  ``placeorders``. Each order is encoded once, when submitted, by :func:`flexconn.protocol.encode`
  (so a bad order fails alone, before anything is sent); a command is those exact fragments in the
  envelope ``encode`` itself writes, so its length is known before it is built. Places and
  modifies get ``"timestamp"`` (epoch ms at the moment the command is packed, fresh for every
  retry) and ``"recvWindow"`` appended inside their object; their bytes are reserved at submit.
* **Correlation.** A batch carries a fresh ``tag``; the exchange answers each order separately.
  A reply is matched by its kind (:attr:`OrderReply.action`, which sees through a failed modify
  echoed as ``placeorder``), then by ``clientOrderId`` (place; every order gets a unique one) or
  ``orderId`` (cancel, modify; the oldest unanswered request on the order the echo fits: one
  socket answers in the order it was written) within the tag's batch, then by the echoed fields.
  A reply without a tag (failure replies may omit it) is matched the same way across every command
  in flight.
* **Two stages.** ``submitted: true`` only says the exchange took a cancel or modify: it is
  ACCEPTED until the order channel confirms it (``OrderClosed CANCELED_BY_USER``;
  ``OrderModified``, or ``OrderClosed CANCELED_BY_AMEND`` and the replacement's ``OrderOpened``)
  or refutes it (the ``CANCEL``/``AMEND`` failure notice: ``OrderAlreadyClosed``). A placement
  whose reply names no order id (2020-12) waits the same way for the first notice of its client
  order id. A caller who asked for the accepted stage (``confirm=False``) is answered at the
  reply; its ticket still waits, so that its evidence is never lent to another request.
* **Attribution.** A notice about order ``X`` settles the oldest outstanding request on ``X`` of
  the kind that can produce it whose fields it fits (requests on one order are served in the order
  one socket wrote them), never a request written after the exchange stamped the notice, nor a
  place/modify whose window had closed by then. When the possible producers span several sockets
  (whose relative order the exchange does not reveal), they end ``OrderOutcomeUnknown``. Close
  statuses are remembered (bounded) so a cancel of a closed order learns why it was closed.
* **Rate limiting.** A ``20007`` reply means the order was refused unprocessed: it goes back to
  the front of its queue (at most ``max_rate_limit_retries`` times) and sending pauses for a
  backoff that doubles per episode and resets on the next accepted order.
* **Unknown outcomes.** A request whose reply or confirmation does not come within
  ``reply_timeout``, or that was outstanding when the connection dropped, is UNKNOWN. Evidence
  still settles it; otherwise the I/O shell looks it up over REST with the rules of
  :mod:`flexconn._reconcile`. Nothing is ever resent blindly.

The core never awaits and never reads a clock: callers pass ``now`` (trio time) and ``wall_ms``
(epoch milliseconds).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Final

import attrs

from flexconn._outbox_types import (
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
    ExchangeError,
    OrderAlreadyClosed,
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

__all__ = ["Batch", "ClosedOrder", "OutboxCore"]

_SPECS: Final = (LimitOrder, MarketOrder, StopLimitOrder)

_RATE_LIMITED: Final = "20007"
_ALREADY_CLOSED: Final = "100004"
_BATCH_OPS: Final = {
    OrderAction.PLACE: "placeorders",
    OrderAction.CANCEL: "cancelorders",
    OrderAction.MODIFY: "modifyorders",
}
#: The kinds the exchange counts against the account's orders-per-second limit; they are also
#: the kinds that carry ``timestamp`` and ``recvWindow``.
_COUNTED: Final = frozenset({OrderAction.PLACE, OrderAction.MODIFY})
_RETIRED_TAGS_KEPT: Final = 4096
#: How many caller-given client order ids the uniqueness check remembers.
_GIVEN_KEPT: Final = 100_000
#: How many closed orders' close statuses are remembered.
_CLOSED_KEPT: Final = 10_000
#: Amend closes waiting for their replacement's OrderOpened.
_AMENDING_KEPT: Final = 1_000
#: Orders whose written-but-unexplained requests are remembered, and how many per order.
_ZOMBIE_ORDERS_KEPT: Final = 1_000
_ZOMBIES_PER_ORDER: Final = 256
#: Unanswered requests per order on one socket that replies are matched against, in order.
_AWAITING_PER_ORDER: Final = 4096
#: Bytes reserved for an epoch-millisecond timestamp (13 digits until the year 2286).
_STAMP_DIGITS: Final = 13
_STAMP_FIELD: Final = ',"timestamp":'
_WINDOW_FIELD: Final = ',"recvWindow":'
_ZERO: Final = Decimal(0)


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


@attrs.frozen(kw_only=True)
class ClosedOrder:
    """What the order channel said about an order that closed.

    Attributes:
        status: the close status (``FILLED`` for a full fill).
        timestamp: the exchange's epoch ms of the close notice.
        claimed: a request of ours was proved to be what closed it (a cancel or a modify).
    """

    status: OrderStatus
    timestamp: int
    claimed: bool = False


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


def _loosely(echoed: Decimal | None, sent: Decimal | None) -> bool:
    """Like :func:`same`, with a zero echo read as absent (failure notices zero what they lack)."""
    return echoed is None or sent is None or echoed in (_ZERO, sent)


def fits_in_place(request: ModifyOrder, event: OrderModified) -> bool:
    """Whether an ``OrderModified`` could be this modify's (it keeps side and price; its
    ``quantity`` is the order's size: fills plus the requested open quantity)."""
    return (
        same(request.side, event.side)
        and same(request.price, event.price)
        and (request.quantity is None or event.quantity >= request.quantity)
    )


def fits_replacement(request: ModifyOrder, event: OrderOpened) -> bool:
    """Whether an amend's replacement could be this modify's (a maker-only-reprice order may
    be repriced, so its price is not compared)."""
    repriced = event.time_in_force is not None and event.time_in_force.value == (
        "MAKER_ONLY_REPRICE"
    )
    return (
        same(request.side, event.side)
        and (repriced or same(request.price, event.price))
        and same(request.quantity, event.quantity)
    )


@attrs.frozen
class _Replacement:
    """A modify's replacing evidence: the amend close and the replacement's ``OrderOpened``."""

    closed: OrderClosed
    opened: OrderOpened

    @property
    def timestamp(self) -> int:
        return self.opened.timestamp


def _fits(ticket: Ticket, notice: object) -> bool:
    """Whether a notice's fields could be the effect of ``ticket`` (the kind is matched
    before: cancels for cancel notices, modifies for modify notices)."""
    request = ticket.request
    if not isinstance(request, ModifyOrder):
        return True
    if isinstance(notice, OrderModified):
        return fits_in_place(request, notice)
    if isinstance(notice, _Replacement):
        return fits_replacement(request, notice.opened)
    if isinstance(notice, OrderFailureNotice):
        data = notice.data
        return _loosely(data.price, request.price) and _loosely(data.quantity, request.quantity)
    return True


def _stamp_of(notice: object) -> int | None:
    stamp = getattr(notice, "timestamp", None)
    return stamp if isinstance(stamp, int) else None


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
        self._closed: OrderedDict[int, ClosedOrder] = OrderedDict()
        self._amending: OrderedDict[tuple[str, int | None], OrderClosed] = OrderedDict()
        # Orders a modify opened (they carry their original's client order id, so their
        # notices prove nothing about the placement's order id).
        self._replacements: OrderedDict[int, None] = OrderedDict()
        # Cancels and modifies that were written but settled without knowing their effect
        # (unknown, or answered at acceptance): the exchange may still act on them, so their
        # orders' notices could be theirs.
        self._zombies: OrderedDict[int, list[Ticket]] = OrderedDict()
        # Cancels and modifies written on the current socket and not answered yet, settled or
        # not, per order in the order written: the socket answers them in that order, so a late
        # reply to a settled one is never taken for another's.
        self._awaiting: dict[tuple[OrderAction, int], list[Ticket]] = {}
        # Every cancel and modify written per order (bounded), for the lookups' rival check.
        self._history: OrderedDict[int, list[Ticket]] = OrderedDict()
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
        in_flight = len(
            {t.seq for t in self._sent if t.state in (TicketState.SENT, TicketState.ACCEPTED)}
        )
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

    def submit(self, action: OrderAction, request: OrderRequest, *, confirm: bool = True) -> Ticket:
        """Validate, encode and queue one request.

        A place order without ``client_order_id`` gets a fresh one; a caller-given one must not
        have been used before on this outbox (checked against every id assigned here and the
        last 100,000 callers gave). ``confirm=False`` answers a cancel or modify at its reply.

        Raises:
            ValidationError: the order breaks a documented rule, is too long even alone, or
                reuses a client order id (nothing is queued).
        """
        return self.submit_many(action, [request], confirm=confirm)[0]

    def submit_many(
        self, action: OrderAction, requests: Iterable[OrderRequest], *, confirm: bool = True
    ) -> list[Ticket]:
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
        window_bytes = len(_WINDOW_FIELD) + len(str(self.config.recv_window_ms))
        for request, fragment in prepared:
            size = len(fragment) if fragment.isascii() else message_length(fragment)
            add_stamp = add_window = False
            if action in _COUNTED and not isinstance(request, CancelOrder):
                add_stamp = request.timestamp is None
                add_window = request.recv_window is None
                size += (len(_STAMP_FIELD) + _STAMP_DIGITS) * add_stamp + window_bytes * add_window
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
                    confirm=confirm,
                    add_stamp=add_stamp,
                    add_window=add_window,
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
            wall_ms: epoch milliseconds: the ``timestamp`` places and modifies are written with.
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
        text = _command_text(action, tag_text, [self._written(t, wall_ms) for t in picked])
        for ticket in picked:
            ticket.state = TicketState.SENT
            ticket.tag = tag_text
            ticket.session = self.session
            ticket.sent_at = now
            ticket.sent_ms = wall_ms
            ticket.attempts += 1
            ticket.evidence = None
            ticket.proof = None
            ticket.reply = None
            self._index(ticket)
            self._sent.append(ticket)
            order_id = ticket.order_id
            if order_id is not None:
                waiting = self._awaiting.setdefault((action, order_id), [])
                waiting.append(ticket)
                del waiting[:-_AWAITING_PER_ORDER]
                self._remember_request(order_id, ticket)
        self._by_tag[tag_text] = list(picked)
        self._commands_sent += 1
        self._orders_sent += len(picked)
        return Batch(action=action, tickets=tuple(picked), tag=tag_text, text=text)

    def _written(self, ticket: Ticket, wall_ms: int) -> str:
        """The ticket's fragment as written now, with its ``timestamp`` and ``recvWindow``."""
        request = ticket.request
        if isinstance(request, CancelOrder):
            return ticket.fragment
        extra = ""
        if ticket.add_stamp:
            extra += _STAMP_FIELD + str(wall_ms)
        if ticket.add_window:
            extra += _WINDOW_FIELD + str(self.config.recv_window_ms)
        ticket.stamp_ms = wall_ms if ticket.add_stamp else request.timestamp
        ticket.window_ms = self.config.recv_window_ms if ticket.add_window else request.recv_window
        return ticket.fragment[:-1] + extra + "}" if extra else ticket.fragment

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

    def send_failed(self, batch: Batch, now: float) -> list[Ticket]:
        """The send raised: the frame may or may not have reached the exchange, so its tickets
        are UNKNOWN (resolved by evidence when possible). Returns the tickets resolved."""
        resolved: list[Ticket] = []
        for ticket in batch.tickets:
            if ticket.state is TicketState.SENT:
                self._drop_from_tag(ticket)
                if self._to_unknown(ticket, now):
                    resolved.append(ticket)
        return resolved

    # -- replies -------------------------------------------------------------------------------

    def on_reply(self, reply: OrderReply, now: float) -> tuple[bool, list[Ticket]]:
        """Match one order reply to its request.

        Returns:
            ``(consumed, woken)``: whether the reply belonged to the outbox (``False``: some
            other sender's command) and the tickets whose callers it answers (settled, or
            accepted when the caller asked for that stage). Empty when the order went back to
            the queue after ``20007``, awaits its confirmation, or was settled before.
        """
        ticket = self._match(reply)
        if ticket is None:
            # A reply to one of our commands whose request is settled already (a late reply
            # after a lookup, a duplicate) is still ours; anything else is someone else's.
            tag = reply.tag
            return (tag is not None and (tag in self._by_tag or tag in self._retired_tags), [])
        self._answered(ticket)
        if ticket.state is TicketState.DONE:
            return True, []  # a late reply to a request settled meanwhile
        if reply.submitted:
            self._backoff = self.config.rate_limit_backoff
            return True, self._accepted(ticket, reply)
        error = reply.error()
        assert error is not None
        if isinstance(error, RateLimitError):
            self._rate_limited += 1
        woken: list[Ticket] = []
        proof = ticket.proof
        if (
            isinstance(error, RateLimitError)
            and error.code == _RATE_LIMITED
            and ticket.attempts <= self.config.max_rate_limit_retries
        ):
            self._requeue(ticket, now)
        elif self._finish(ticket, error):
            woken.append(ticket)
        if proof is not None and ticket.action is not OrderAction.PLACE:
            # The notice was lent to a request the exchange refused: it is another's.
            self._reattribute(proof, woken)
        return True, woken

    def _accepted(self, ticket: Ticket, reply: OrderReply) -> list[Ticket]:
        ticket.reply = reply
        self._drop_from_tag(ticket)
        request = ticket.request
        evidence = ticket.evidence
        if isinstance(request, CancelOrder | ModifyOrder):
            if evidence is not None:
                return self._finish_woken(ticket, _with_reply(evidence, reply))
            if ticket.state is TicketState.SENT:
                ticket.state = TicketState.ACCEPTED
            if not ticket.confirm and ticket.early is None:
                early: Outcome = (
                    CancelAck(order=request, client_order_id=_echoed_cid(reply), confirmed=False)
                    if isinstance(request, CancelOrder)
                    else ModifyAck(order=request, confirmed=False)
                )
                ticket.early = _with_reply(early, reply)
                return [ticket]
            return []
        data = reply.data
        order_id = data.order_id if data is not None else None
        if order_id is None and isinstance(evidence, PlaceAck):
            order_id = evidence.order_id
        if order_id is None:
            # A 2020-12 reply: the order id comes with the first notice of the client order id.
            if ticket.state is TicketState.SENT:
                ticket.state = TicketState.ACCEPTED
            return []
        return self._finish_woken(ticket, PlaceAck(order=request, order_id=order_id, reply=reply))

    def _finish_woken(self, ticket: Ticket, outcome: Outcome) -> list[Ticket]:
        return [ticket] if self._finish(ticket, outcome) else []

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
                # Several requests may target one order: the oldest unanswered one the echo fits
                # (one socket answers in the order it was written), settled or not.
                group = [
                    found
                    for found in self._awaiting.get((action, data.order_id), ())
                    if found.session == self.session and tag in (None, found.tag)
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

    def _answered(self, ticket: Ticket) -> None:
        order_id = ticket.order_id
        if order_id is None:
            return
        key = (ticket.action, order_id)
        waiting = self._awaiting.get(key)
        if waiting is not None and ticket in waiting:
            waiting.remove(ticket)
            if not waiting:
                del self._awaiting[key]

    def _remember_request(self, order_id: int, ticket: Ticket) -> None:
        group = [
            other
            for other in self._history.pop(order_id, [])
            if not isinstance(other.outcome, ExchangeError | OrderNotApplied)  # did nothing
        ]
        if ticket not in group:
            group.append(ticket)
        self._history[order_id] = group[-_ZOMBIES_PER_ORDER:]
        if len(self._history) > _ZOMBIE_ORDERS_KEPT:
            self._history.popitem(last=False)

    def _replyable(self, ticket: Ticket) -> bool:
        # Only the current socket answers, once; UNKNOWN tickets of it (a late reply) still count.
        return (
            ticket.state in (TicketState.SENT, TicketState.UNKNOWN)
            and ticket.reply is None
            and ticket.session == self.session
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
        """Learn from an order-channel message; returns the tickets it settled."""
        woken: list[Ticket] = []
        if isinstance(message, OrderUpdate):
            for event in message.data:
                if isinstance(event, OrderOpened | OrderModified | OrderMatched | OrderClosed):
                    self._notice(event, woken)
        elif isinstance(message, OrderFailureNotice) and message.data.order_id is not None:
            self._notice(message, woken)
        return woken

    def _notice(self, notice: object, woken: list[Ticket]) -> None:
        """Learn from one notice (an order event or a failure notice)."""
        if isinstance(notice, OrderFailureNotice):
            self._failure(notice, woken)
            return
        if not isinstance(notice, OrderOpened | OrderModified | OrderMatched | OrderClosed):
            return
        amended = None
        if isinstance(notice, OrderOpened):
            amended = self._amending.pop((notice.market_code, notice.client_order_id), None)
            if amended is not None and amended.order_id != notice.order_id:
                self._replacements[notice.order_id] = None
                if len(self._replacements) > _CLOSED_KEPT:
                    self._replacements.popitem(last=False)
        if notice.order_id not in self._replacements:
            self._placement(notice, woken)
        if isinstance(notice, OrderClosed):
            self._remember_close(notice.order_id, notice.status, notice.timestamp)
            if notice.status is OrderStatus.CANCELED_BY_USER:
                self._cancelled(notice, woken)
            elif notice.status is OrderStatus.CANCELED_BY_AMEND:
                self._amending[(notice.market_code, notice.client_order_id)] = notice
                if len(self._amending) > _AMENDING_KEPT:
                    self._amending.popitem(last=False)
        elif isinstance(notice, OrderMatched):
            if notice.status is OrderStatus.FILLED or notice.remain_quantity <= 0:
                self._remember_close(notice.order_id, OrderStatus.FILLED, notice.timestamp)
        elif isinstance(notice, OrderModified):
            self._modified(notice, woken)
        elif amended is not None and amended.order_id != notice.order_id:
            self._replaced(_Replacement(closed=amended, opened=notice), woken)

    def _reattribute(self, proof: object, woken: list[Ticket]) -> None:
        """Hand a request's proof on after the exchange refused that request."""
        if isinstance(proof, OrderFailureNotice):
            self._failure(proof, woken)
        elif isinstance(proof, OrderClosed):
            self._cancelled(proof, woken)
        elif isinstance(proof, OrderModified):
            self._modified(proof, woken)
        elif isinstance(proof, _Replacement):
            self._replaced(proof, woken)

    def _cancelled(self, notice: OrderClosed, woken: list[Ticket]) -> None:
        def confirmed(ticket: Ticket) -> Outcome:
            return CancelAck(
                order=_cancel_of(ticket),
                client_order_id=notice.client_order_id,
                source=AckSource.ORDER_CHANNEL,
            )

        self._attribute(OrderAction.CANCEL, notice.order_id, notice, confirmed, woken)

    def _modified(self, notice: OrderModified, woken: list[Ticket]) -> None:
        def confirmed(ticket: Ticket) -> Outcome:
            return ModifyAck(order=_modify_of(ticket), source=AckSource.ORDER_CHANNEL)

        self._attribute(OrderAction.MODIFY, notice.order_id, notice, confirmed, woken)

    def _replaced(self, replacement: _Replacement, woken: list[Ticket]) -> None:
        def confirmed(ticket: Ticket) -> Outcome:
            return ModifyAck(
                order=_modify_of(ticket),
                replaced_by=replacement.opened.order_id,
                source=AckSource.ORDER_CHANNEL,
            )

        order_id = replacement.closed.order_id
        self._attribute(OrderAction.MODIFY, order_id, replacement, confirmed, woken)

    def _placement(
        self, event: OrderOpened | OrderModified | OrderMatched | OrderClosed, woken: list[Ticket]
    ) -> None:
        """The first notice of a client order id proves its placement (and names its id)."""
        cid = event.client_order_id
        if cid is None:
            return
        ticket = self._by_cid.get(cid)
        if (
            ticket is None
            or not ticket.outstanding
            or ticket.evidence is not None
            or event.market_code != ticket.market_code
        ):
            return
        request = ticket.request
        assert isinstance(request, LimitOrder | MarketOrder | StopLimitOrder)
        # A modify's replacement keeps the client order id; the placement has the lowest id.
        ack = PlaceAck(order=request, order_id=event.order_id, source=AckSource.ORDER_CHANNEL)
        self._prove(ticket, ack, event, woken)

    def _failure(self, notice: OrderFailureNotice, woken: list[Ticket]) -> None:
        data = notice.data
        order_id = data.order_id
        assert order_id is not None
        known = self._closed.get(order_id)
        reason = known.status if known is not None else None

        def refuted(ticket: Ticket) -> Outcome:
            what = "cancel" if notice.action is OrderAction.CANCEL else "modify"
            because = f" ({reason})" if reason is not None else ""
            return OrderAlreadyClosed(
                order_id,
                reason,
                f"order {order_id} was already closed{because}: the {what} did nothing",
                code=notice.code or _ALREADY_CLOSED,
            )

        self._attribute(notice.action, order_id, notice, refuted, woken)

    def _attribute(
        self,
        action: OrderAction,
        order_id: int,
        notice: object,
        make: Callable[[Ticket], Outcome],
        woken: list[Ticket],
    ) -> None:
        """Settle the request ``notice`` proves: the oldest outstanding one of ``action`` on
        ``order_id`` it could be; ambiguous (requests on several sockets, or one settled without
        knowing its effect), each possible producer is unknown."""
        could_be = self._could_be
        candidates = [
            ticket
            for ticket in self._by_oid.get((action, order_id), ())
            if ticket.outstanding and ticket.proof is None and could_be(ticket, notice)
        ]
        rivals = [
            ticket
            for ticket in self._zombies.get(order_id, ())
            if ticket.action is action and could_be(ticket, notice)
        ]
        if not candidates:
            if len(rivals) == 1:
                self._zombies[order_id].remove(rivals[0])  # explained: it did this
            if rivals and isinstance(notice, OrderClosed | _Replacement):
                self._claim(order_id)  # one of ours closed it, so no later request did
            return
        candidates.sort(key=lambda t: t.seq)
        heads: dict[int | None, Ticket] = {}
        for ticket in candidates:
            heads.setdefault(ticket.session, ticket)
        if len(heads) > 1 or rivals:
            for ticket in heads.values():
                unknown = OrderOutcomeUnknown(
                    f"{ticket.action.value} of order {order_id}: the exchange's notice could "
                    f"belong to it or to another request on the order written on another "
                    f"connection or settled without its effect"
                )
                ticket.proof = notice
                if self._finish(ticket, unknown):
                    woken.append(ticket)
            return
        head = candidates[0]
        if head.state is TicketState.UNKNOWN and head.reply is None and len(candidates) > 1:
            # Its reply was lost: it may have been refused, and the notice a later one's.
            unknown = OrderOutcomeUnknown(
                f"{head.action.value} of order {order_id}: its reply was lost, and the order's "
                f"notice could be a later request's"
            )
            head.proof = notice
            if self._finish(head, unknown):
                woken.append(head)
            return
        self._prove(head, make(head), notice, woken)

    def _could_be(self, ticket: Ticket, notice: object) -> bool:
        """Whether ``ticket`` could have produced ``notice``: its fields fit, it was written
        before the exchange stamped the notice, and its window was still open then."""
        if not _fits(ticket, notice):
            return False
        stamp = _stamp_of(notice)
        if stamp is None:
            return True
        if stamp < ticket.sent_ms - self.config.clock_skew_margin_ms:
            return False
        window = ticket.window_ms
        return not (
            ticket.stamp_ms is not None and window is not None and stamp > ticket.stamp_ms + window
        )

    def _contested(self, ticket: Ticket) -> bool:
        """Whether the notice lent to ``ticket`` (whose reply never came: it may have been
        refused) could be another request's."""
        order_id = ticket.order_id
        proof = ticket.proof
        if order_id is None or proof is None:
            return False
        live = any(
            other is not ticket
            and other.outstanding
            and other.proof is None
            and self._could_be(other, proof)
            for other in self._by_oid.get((ticket.action, order_id), ())
        )
        return live or any(
            other is not ticket and other.action is ticket.action and self._could_be(other, proof)
            for other in self._zombies.get(order_id, ())
        )

    def _prove(self, ticket: Ticket, outcome: Outcome, notice: object, woken: list[Ticket]) -> None:
        ticket.evidence = outcome
        ticket.proof = notice
        if ticket.state is TicketState.SENT:
            return  # the reply comes first (a refusal would hand the notice on)
        reply = ticket.reply
        if reply is not None:
            outcome = _with_reply(outcome, reply)
        if self._finish(ticket, outcome):
            woken.append(ticket)

    def _remember_close(self, order_id: int, status: OrderStatus, timestamp: int) -> None:
        previous = self._closed.pop(order_id, None)
        claimed = previous.claimed if previous is not None else False
        self._closed[order_id] = ClosedOrder(status=status, timestamp=timestamp, claimed=claimed)
        if len(self._closed) > _CLOSED_KEPT:
            self._closed.popitem(last=False)

    def _claim(self, order_id: int) -> None:
        known = self._closed.get(order_id)
        if known is not None:
            self._closed[order_id] = attrs.evolve(known, claimed=True)

    def closed(self, order_id: int) -> ClosedOrder | None:
        """What the order channel said about ``order_id``'s close, if it was seen."""
        return self._closed.get(order_id)

    def others_on(self, ticket: Ticket) -> bool:
        """Whether another request of ours on ``ticket``'s order could have changed it since
        ``ticket`` was written: one outstanding, settled without knowing its effect, or settled
        with an effect not proved to predate it (a refused or not-applied one did nothing)."""
        order_id = ticket.order_id
        if order_id is None:
            return False
        since = ticket.sent_ms - self.config.clock_skew_margin_ms
        for other in self._history.get(order_id, ()):
            if other is ticket or other.attempts == 0:
                continue
            outcome = other.outcome
            if other.outstanding or other.state is TicketState.QUEUED:
                return True
            if isinstance(outcome, ExchangeError | OrderNotApplied):
                continue
            if isinstance(outcome, CancelAck | ModifyAck) and outcome.confirmed:
                stamp = _stamp_of(other.proof)
                if stamp is not None and stamp < since:
                    continue
            return True
        return False

    # -- deadlines and drops -------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """Trio time at which the oldest outstanding reply or confirmation is overdue."""
        sent = self._sent
        while sent and sent[0].state not in (TicketState.SENT, TicketState.ACCEPTED):
            sent.popleft()
        return sent[0].sent_at + self.config.reply_timeout if sent else None

    def expire(self, now: float) -> tuple[list[Ticket], list[Ticket]]:
        """Move overdue SENT and ACCEPTED tickets to UNKNOWN.

        Returns:
            ``(resolved, to_look_up)``: those settled by evidence, and those to look up (a late
            reply or notice still resolves them first).
        """
        resolved: list[Ticket] = []
        lookup: list[Ticket] = []
        sent = self._sent
        timeout = self.config.reply_timeout
        live = (TicketState.SENT, TicketState.ACCEPTED)
        while sent and (sent[0].state not in live or sent[0].sent_at + timeout <= now):
            ticket = sent.popleft()
            if ticket.state not in live:
                continue
            if self._to_unknown(ticket, now):
                resolved.append(ticket)
            elif ticket.state is TicketState.UNKNOWN:
                lookup.append(ticket)
        return resolved, lookup

    def connection_lost(self, now: float) -> list[Ticket]:
        """The current socket is gone: its outstanding tickets can get no reply. Returns those
        settled by evidence; the rest wait in :meth:`unknown` for reconciliation."""
        resolved: list[Ticket] = []
        for ticket in list(self._sent):
            if ticket.state in (TicketState.SENT, TicketState.ACCEPTED) and self._to_unknown(
                ticket, now
            ):
                resolved.append(ticket)
        self._sent.clear()
        for pool in list(self._by_tag.values()):
            for ticket in list(pool):
                self._drop_from_tag(ticket)
        self._amending.clear()
        self._awaiting.clear()
        self.session += 1
        return resolved

    def _to_unknown(self, ticket: Ticket, now: float) -> bool:
        """Mark UNKNOWN; settle at once (returning ``True``) when evidence decides. A caller who
        took the accepted stage is gone: its ticket simply ends."""
        if ticket.early is not None:
            return self._finish(ticket, ticket.early)
        ticket.state = TicketState.UNKNOWN
        ticket.unknown_at = now
        self._unknown[ticket.seq] = ticket
        if ticket.evidence is not None:
            reply = ticket.reply
            outcome = ticket.evidence
            if reply is None and ticket.action is not OrderAction.PLACE and self._contested(ticket):
                outcome = OrderOutcomeUnknown(
                    f"{ticket.action.value} of order {ticket.order_id}: its reply was lost, and "
                    f"the order's notice could be another request's"
                )
            return self._finish(ticket, _with_reply(outcome, reply) if reply else outcome)
        return False

    def unknown(self) -> list[Ticket]:
        """Tickets whose outcome awaits a lookup, oldest first."""
        return sorted(self._unknown.values(), key=lambda t: t.seq)

    # -- settling ------------------------------------------------------------------------------

    def resolve(self, ticket: Ticket, outcome: Outcome) -> bool:
        """Settle a ticket (from a lookup); ``False`` if it was settled already.

        A lookup that proved a request closed its order claims that close, so no later request
        on the order can be credited with it.
        """
        return self._finish(ticket, outcome)

    def _finish(self, ticket: Ticket, outcome: Outcome) -> bool:
        if ticket.state is TicketState.DONE:
            return False
        if ticket.state is TicketState.UNKNOWN:
            self._reconciled += 1
        unexplained = isinstance(outcome, OrderOutcomeUnknown) or (
            isinstance(outcome, CancelAck | ModifyAck) and not outcome.confirmed
        )
        if ticket.outstanding and unexplained:
            self._bury(ticket)
        self._claim_close(ticket, outcome)
        self._unindex(ticket)
        self._unknown.pop(ticket.seq, None)
        ticket.state = TicketState.DONE
        ticket.outcome = outcome
        return True

    def _claim_close(self, ticket: Ticket, outcome: Outcome) -> None:
        """A request proved to have closed its order claims that close: no later request on
        the order can be credited with it."""
        order_id = ticket.order_id
        closed: OrderStatus | None = None
        if isinstance(outcome, CancelAck) and outcome.confirmed:
            closed = OrderStatus.CANCELED_BY_USER
        elif isinstance(outcome, ModifyAck) and outcome.replaced_by is not None:
            closed = OrderStatus.CANCELED_BY_AMEND
        if order_id is None or closed is None:
            return
        known = self._closed.get(order_id)
        stamp = _stamp_of(ticket.proof)
        if stamp is None:
            stamp = known.timestamp if known is not None else ticket.sent_ms
        self._remember_close(order_id, closed, stamp)
        self._claim(order_id)

    def _bury(self, ticket: Ticket) -> None:
        order_id = ticket.order_id
        if order_id is None:
            return
        group = self._zombies.pop(order_id, [])
        group.append(ticket)
        self._zombies[order_id] = group[-_ZOMBIES_PER_ORDER:]
        if len(self._zombies) > _ZOMBIE_ORDERS_KEPT:
            self._zombies.popitem(last=False)

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
                outcome: Outcome = (
                    ticket.early
                    or ticket.evidence
                    or OrderOutcomeUnknown(f"{ticket.action.value} sent, outcome unknown: {reason}")
                )
                if self._finish(ticket, outcome):
                    done.append(ticket)
        self._sent.clear()
        return done


def _cancel_of(ticket: Ticket) -> CancelOrder:
    request = ticket.request
    assert isinstance(request, CancelOrder)
    return request


def _modify_of(ticket: Ticket) -> ModifyOrder:
    request = ticket.request
    assert isinstance(request, ModifyOrder)
    return request


def _echoed_cid(reply: OrderReply) -> int | None:
    return reply.data.client_order_id if reply.data is not None else None


def _with_reply(outcome: Outcome, reply: OrderReply) -> Outcome:
    """An acknowledgement with the reply attached (errors are returned as they are)."""
    if isinstance(outcome, CancelAck):
        cid = outcome.client_order_id if outcome.client_order_id is not None else _echoed_cid(reply)
        return attrs.evolve(outcome, reply=reply, client_order_id=cid)
    if isinstance(outcome, ModifyAck | PlaceAck):
        return attrs.evolve(outcome, reply=reply)
    return outcome
