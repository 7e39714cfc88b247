"""The outbox's value types: its configuration, acknowledgements, statistics and tickets.

Frozen, keyword-only attrs classes (a :class:`Ticket` is the one mutable record: the state of a
request inside :class:`flexconn._outbox_core.OutboxCore`). Nothing here does I/O.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import TypeAlias

import attrs

from flexconn.errors import FlexconnError
from flexconn.models.orders import (
    CancelOrder,
    LimitOrder,
    MarketOrder,
    ModifyOrder,
    OrderSpec,
    StopLimitOrder,
)
from flexconn.models.replies import OrderAction, OrderReply
from flexconn.protocol import MAX_BATCH_SIZE, MAX_MESSAGE_LENGTH
from flexconn.ratelimit import TokenBucket

__all__ = [
    "Ack",
    "AckSource",
    "CancelAck",
    "ModifyAck",
    "OrderRequest",
    "OutboxConfig",
    "OutboxStatistics",
    "Outcome",
    "PlaceAck",
    "Ticket",
    "TicketState",
    "same",
]

#: Any request the outbox sends: an order to place, a cancel or a modify.
OrderRequest: TypeAlias = LimitOrder | MarketOrder | StopLimitOrder | CancelOrder | ModifyOrder


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


@attrs.frozen(kw_only=True)
class OutboxConfig:
    """How the order outbox paces, batches and waits.

    Attributes:
        commands_per_second: commands per second on a logged-in socket (the exchange allows 50);
            every command on the socket counts, so the connection's one bucket uses it.
        orders_per_second: orders (each order of a batch; place and modify only) per second the
            account may send over WebSocket (50 since 2022-01-05); ``None`` turns the limit off.
            The bucket is per connection: several connections on one account share the limit.
        pacing_period: the period of both buckets, a little over a second so that jitter between
            our send and the exchange's receipt never makes us too fast.
        burst_headroom: tokens both buckets hold fewer than the exchange's (which hold a
            second's worth): after a burst the exchange's bucket keeps this reserve, so a few
            commands arriving closer together than they were sent are still within its limit.
        max_batch_size: most orders in one command (the exchange allows 20).
        max_message_length: longest command in UTF-8 bytes.
        reply_timeout: seconds to wait for an order's reply before looking it up.
        send_timeout: default seconds a request may wait unsent (for a reconnection, or behind
            the rate limit) before it is abandoned with ``OrderNotApplied(sent=False)``;
            ``None`` waits as long as the connection lives.
        rate_limit_backoff: first pause after a ``20007`` reply; doubles per episode.
        max_rate_limit_backoff: the longest pause.
        max_rate_limit_retries: how often one order is resent after ``20007`` before the
            :class:`~flexconn.errors.RateLimitError` is its outcome.
        lookup_margin_ms: how far before the send REST lookups reach (clock skew).
        reconcile_timeout: how long a request of unknown outcome (reply or confirmation
            overdue, or its socket lost) is looked up over REST before it ends with
            :class:`~flexconn.errors.OrderOutcomeUnknown`; also the longest the REST seeding of
            the open orders may hold a reconnection back from CONNECTED.
        recv_window_ms: the ``recvWindow`` every place and modify carries (with a
            ``timestamp`` taken when it is written): the exchange refuses it with ``20024``
            once it reaches the engine later than ``timestamp + recvWindow``. An order that sets
            its own ``timestamp``/``recv_window`` keeps them.
        clock_skew_margin_ms: how far the exchange's clock may be behind ours. A request is
            only called not applied (``OrderNotApplied(sent=True)``) by a lookup made once our
            clock minus this margin is past its ``timestamp + recvWindow``.
    """

    commands_per_second: float = attrs.field(default=50.0, validator=_positive)
    orders_per_second: float | None = 50.0
    pacing_period: float = attrs.field(default=1.02, validator=_positive)
    burst_headroom: float = attrs.field(default=5.0, validator=attrs.validators.ge(0))
    max_batch_size: int = attrs.field(
        default=MAX_BATCH_SIZE,
        validator=[attrs.validators.ge(1), attrs.validators.le(MAX_BATCH_SIZE)],
    )
    max_message_length: int = attrs.field(
        default=MAX_MESSAGE_LENGTH, validator=attrs.validators.le(MAX_MESSAGE_LENGTH)
    )
    reply_timeout: float = attrs.field(default=10.0, validator=_positive)
    send_timeout: float | None = 60.0
    rate_limit_backoff: float = attrs.field(default=0.5, validator=_positive)
    max_rate_limit_backoff: float = attrs.field(default=4.0, validator=_positive)
    max_rate_limit_retries: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    lookup_margin_ms: int = attrs.field(default=10_000, validator=attrs.validators.ge(0))
    reconcile_timeout: float = attrs.field(default=30.0, validator=_positive)
    recv_window_ms: int = attrs.field(default=3000, validator=attrs.validators.ge(1))
    clock_skew_margin_ms: int = attrs.field(default=1000, validator=attrs.validators.ge(0))

    def __attrs_post_init__(self) -> None:
        if self.orders_per_second is not None and not self.orders_per_second > 0:
            raise ValueError("orders_per_second must be positive or None")

    def bucket(self, rate: float) -> TokenBucket:
        """A token bucket for ``rate`` per second, paced and with the headroom above."""
        capacity = max(1.0, rate - self.burst_headroom)
        return TokenBucket(rate, per=self.pacing_period, capacity=capacity)


class AckSource(StrEnum):
    """Where an acknowledgement's knowledge comes from."""

    #: The exchange's own reply to the command.
    REPLY = "reply"
    #: Order-channel notices (the reply was lost with the connection).
    ORDER_CHANNEL = "order_channel"
    #: A REST lookup after the reply was lost or late.
    REST = "rest"


@attrs.frozen(kw_only=True)
class PlaceAck:
    """An order the exchange accepted (it may have filled or closed since).

    Attributes:
        order: the order as sent, with its ``client_order_id``.
        order_id: the exchange's order id (from the reply; a 2020-12 reply without one waits
            for the first order-channel notice of the client order id).
        source: how the outbox knows.
        reply: the exchange's reply, when it came.
    """

    order: OrderSpec
    order_id: int
    source: AckSource = AckSource.REPLY
    reply: OrderReply | None = None

    @property
    def client_order_id(self) -> int:
        cid = self.order.client_order_id
        assert cid is not None  # the outbox always assigns one
        return cid

    @property
    def market_code(self) -> str:
        return self.order.market_code


@attrs.frozen(kw_only=True)
class CancelAck:
    """A cancel that closed its order (``confirmed``), or only its acceptance.

    Attributes:
        order: the cancel as sent.
        client_order_id: the order's client order id, when known.
        confirmed: the order channel (or, the reply lost, REST history) showed the order closed
            by the cancel. ``False`` only when the caller asked for the accepted stage
            (``confirm=False``): the exchange took the command, which may still fail (the
            order filled first).
        source: how the outbox knows.
        reply: the exchange's reply, when it came.
    """

    order: CancelOrder
    client_order_id: int | None = None
    confirmed: bool = True
    source: AckSource = AckSource.REPLY
    reply: OrderReply | None = None

    @property
    def order_id(self) -> int:
        return self.order.order_id

    @property
    def market_code(self) -> str:
        return self.order.market_code


@attrs.frozen(kw_only=True)
class ModifyAck:
    """A modify that changed its order (``confirmed``), or only its acceptance.

    Attributes:
        order: the modification as sent.
        replaced_by: the replacement's order id when the modify closed the order and opened a
            new one (a change of price or side, or a larger quantity), learnt from this
            request's own evidence (``OrderClosed CANCELED_BY_AMEND`` and the replacement's
            ``OrderOpened``, or REST history); ``None`` for a modify in place (and for an
            unconfirmed ack).
        confirmed: the order channel (or REST) showed the change. ``False`` only when the
            caller asked for the accepted stage (``confirm=False``).
        source: how the outbox knows.
        reply: the exchange's reply, when it came.
    """

    order: ModifyOrder
    replaced_by: int | None = None
    confirmed: bool = True
    source: AckSource = AckSource.REPLY
    reply: OrderReply | None = None

    @property
    def order_id(self) -> int:
        return self.order.order_id

    @property
    def market_code(self) -> str:
        return self.order.market_code


Ack: TypeAlias = PlaceAck | CancelAck | ModifyAck
#: What one request ends with: an acknowledgement or the error that explains why not.
Outcome: TypeAlias = Ack | FlexconnError


@attrs.frozen(kw_only=True)
class OutboxStatistics:
    """Counters of one outbox since it was created.

    Attributes:
        queued: requests waiting to be sent.
        in_flight: requests sent and waiting for their reply.
        unknown: requests whose reply (or confirmation) was lost or is overdue, waiting for
            reconciliation.
        commands_sent: order commands written (a batch counts once).
        orders_sent: orders those commands carried (resent orders count again).
        rate_limited: orders the exchange refused with ``20007`` (then retried).
        reconciled: requests settled without their reply (order channel or REST).
    """

    queued: int
    in_flight: int
    unknown: int
    commands_sent: int
    orders_sent: int
    rate_limited: int
    reconciled: int


class TicketState(Enum):
    QUEUED = "queued"
    #: Written, no reply yet.
    SENT = "sent"
    #: Replied ``submitted: true``; the order channel's confirmation is awaited (a cancel or
    #: modify, or a placement whose reply named no order id).
    ACCEPTED = "accepted"
    #: Reply or confirmation overdue, or its socket lost: evidence or REST will tell.
    UNKNOWN = "unknown"
    DONE = "done"


@attrs.define(eq=False, kw_only=True)
class Ticket:
    """One caller's order request and where it stands."""

    seq: int
    action: OrderAction
    request: OrderRequest
    #: Bytes of the order's JSON object as it appears in a command.
    fragment: str
    size: int
    state: TicketState = TicketState.QUEUED
    tag: str | None = None
    session: int | None = None
    sent_at: float = 0.0
    sent_ms: int = 0
    attempts: int = 0
    #: Whether the caller waits for the order channel's confirmation (cancel, modify).
    confirm: bool = True
    #: The epoch-ms ``timestamp`` and ``recvWindow`` it was last written with (place, modify).
    stamp_ms: int | None = None
    window_ms: int | None = None
    #: Whether the outbox adds ``timestamp``/``recvWindow`` when writing it.
    add_stamp: bool = False
    add_window: bool = False
    #: Trio time it became UNKNOWN (reconciliation is bounded from there).
    unknown_at: float = 0.0
    #: The ``submitted: true`` reply, once it came.
    reply: OrderReply | None = None
    #: What order-channel notices proved while it was outstanding, and the notice that did.
    evidence: Outcome | None = None
    proof: object = None
    #: Why the last REST lookup could not decide (for the eventual unknown outcome).
    lookup_note: str | None = None
    #: The accepted-stage ack handed to a caller who asked for it (``confirm=False``).
    early: Outcome | None = None
    outcome: Outcome | None = None

    @property
    def market_code(self) -> str:
        return self.request.market_code

    @property
    def client_order_id(self) -> int | None:
        request = self.request
        return None if isinstance(request, CancelOrder | ModifyOrder) else request.client_order_id

    @property
    def order_id(self) -> int | None:
        request = self.request
        return request.order_id if isinstance(request, CancelOrder | ModifyOrder) else None

    @property
    def outstanding(self) -> bool:
        """Written and not settled: it may still produce evidence at the exchange."""
        return self.state in (TicketState.SENT, TicketState.ACCEPTED, TicketState.UNKNOWN)

    def window_closed(self, wall_ms: int, margin_ms: int) -> bool:
        """Whether the exchange's clock is provably past ``timestamp + recvWindow`` (never for a
        cancel, which carries no window)."""
        if self.stamp_ms is None or self.window_ms is None:
            return False
        return wall_ms - margin_ms > self.stamp_ms + self.window_ms

    def __repr__(self) -> str:
        return f"<Ticket #{self.seq} {self.action.value} {self.state.value}>"


def same(echoed: object, sent: object) -> bool:
    """Whether an echoed field agrees with what was sent (a field either side lacks agrees)."""
    return echoed is None or sent is None or echoed == sent
