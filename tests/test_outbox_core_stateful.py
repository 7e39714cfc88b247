"""A stateful property test of the outbox core's outcome rules against a model exchange.

Hypothesis interleaves submissions, sends (under random order-token budgets), the exchange
processing commands (one order's requests in the order one socket wrote them, different orders
in any order), replies (with or without tags, without an order id as in 2020-12, refused, rate
limited, 20024 past the window; one socket's replies arrive in order, lost only with it, before
or after its notices), order-channel notices (confirmations, replacement pairs, CANCEL/AMEND
failure notices), reply deadlines, dropped connections whose buffered frames
the exchange may still read later (a half-open stall), withdrawn requests and REST lookups
decided by the rules of :mod:`flexconn._reconcile`.

The model exchange records what each request actually did. The invariants: no order is ever
placed twice, no command breaks the size limits, a request is settled once and never changes its
outcome, and every settled outcome is that request's own truth: a confirmed cancel closed its
order itself, ``OrderAlreadyClosed`` found it closed, a modify's ``replaced_by`` is the
replacement it opened itself, and "not applied" requests had no effect and never will.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
import orjson
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from flexconn._outbox_core import OutboxCore
from flexconn._outbox_types import (
    CancelAck,
    ModifyAck,
    OutboxConfig,
    Outcome,
    PlaceAck,
    Ticket,
    TicketState,
)
from flexconn._reconcile import (
    KeepLooking,
    cancel_outcome,
    modify_outcome,
    place_outcome,
    place_verdict,
)
from flexconn.errors import (
    ExchangeError,
    OrderAlreadyClosed,
    OrderNotApplied,
    OrderOutcomeUnknown,
    RateLimitError,
)
from flexconn.models.enums import OrderType, Side, TimeInForce
from flexconn.models.orders import CancelOrder, LimitOrder, ModifyOrder
from flexconn.models.replies import OrderAction, OrderReply
from flexconn.models.rest import OpenOrder, OrderRecord, OrderRecordStatus
from flexconn.protocol import decode, message_length

D = Decimal
MARKET = "ETH-USD-SWAP-LIN"
LIMIT = 800
PLACE, CANCEL, MODIFY = OrderAction.PLACE, OrderAction.CANCEL, OrderAction.MODIFY
EPOCH = 1_600_000_000_000
#: What the exchange did with a request that had no effect.
NO_EFFECT = (None, "withdrawn", "refused", "late", "rate_limited", "already_closed")
CONFIG = OutboxConfig(
    max_message_length=LIMIT,
    reply_timeout=5.0,
    max_rate_limit_retries=2,
    recv_window_ms=3000,
    clock_skew_margin_ms=1000,
)


class Entry:
    """One order of a command the model exchange received and has not processed yet."""

    def __init__(self, ticket: Ticket, item: dict[str, Any], tag: str, session: int) -> None:
        self.ticket = ticket
        self.item = item
        self.tag = tag
        self.session = session

    def order_key(self) -> int | None:
        return None if self.ticket.action is PLACE else int(self.item["orderId"])


class Order:
    def __init__(self, order_id: int, cid: int | None, quantity: Decimal, price: Decimal) -> None:
        self.order_id = order_id
        self.cid = cid
        self.quantity = quantity
        self.price = price
        self.open = True
        self.status = "OPEN"
        self.closed_at: int | None = None
        self.modified_at = 0
        self.created_at = 0


def _order_notice(order: Order, kind: str, status: str, stamp: int) -> object:
    entry = {
        "notice": kind,
        "accountId": "1001",
        "orderId": str(order.order_id),
        "marketCode": MARKET,
        "side": "SELL",
        "orderType": "LIMIT",
        "quantity": str(order.quantity),
        "price": str(order.price),
        "timeInForce": "GTC",
        "status": status,
        "timestamp": str(stamp),
    }
    if order.cid is not None:
        entry["clientOrderId"] = str(order.cid)
    return decode(orjson.dumps({"table": "order", "data": [entry]}))


def _failure_notice(event: str, order: Order, item: dict[str, Any], stamp: int) -> object:
    status = f"REJECT_{event}_ORDER_ID_NOT_FOUND"
    data: dict[str, Any] = {
        "orderId": order.order_id,
        "marketCode": MARKET,
        "side": "SELL",
        "status": status,
        "price": float(item.get("price", order.price)),
        "quantity": float(item.get("quantity", order.quantity)),
    }
    if order.cid is not None:
        data["clientOrderId"] = order.cid
    frame = {
        "event": event,
        "submitted": False,
        "code": "100004",
        "message": f"Order request was rejected : {status}",
        "timestamp": str(stamp),
        "data": data,
    }
    return decode(orjson.dumps(frame))


class OutboxMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.core = OutboxCore(CONFIG, first_client_order_id=10)
        self.now = 0.0
        self.tag = 0
        self.tickets: list[Ticket] = []
        self.settled: dict[int, Outcome] = {}
        self.pending: list[Entry] = []  # the current socket's, unprocessed
        self.stalled: list[Entry] = []  # older sockets' frames the exchange may still read
        self.notices: list[object] = []  # to be pushed on the current socket, in order
        # replies to be sent on the current socket, in the order the exchange processed them
        self.replies: list[tuple[Entry, dict[str, Any], bool]] = []
        self.orders: dict[int, Order] = {}
        self.placed: dict[int, int] = {}  # client order id -> first order id
        self.processed_cids: list[int] = []
        self.next_id = 5000
        # ticket seq -> what the exchange did with its (last) attempt
        self.truth: dict[int, str] = {}
        # requests settled as having had no effect: if read late they must still have none
        self.never_again: set[int] = set()

    @property
    def wall(self) -> int:
        return EPOCH + int(self.now * 1000)

    # -- the client side -----------------------------------------------------------------------

    @rule(count=st.integers(1, 6), prices=st.integers(0, 10**4))
    def submit_places(self, count: int, prices: int) -> None:
        orders = [
            LimitOrder(MARKET, Side.SELL, D("0.02"), D(3000) + D(prices + i) / 100)
            for i in range(count)
        ]
        self.tickets += self.core.submit_many(PLACE, orders)

    @rule(data=st.data())
    def submit_cancels_or_modifies(self, data: st.DataObject) -> None:
        # Orders the client knows of (its own acknowledgements), and one the exchange does not.
        known: set[int] = set()
        for ticket in self.tickets:
            outcome = ticket.outcome
            if isinstance(outcome, PlaceAck):
                known.add(outcome.order_id)
            elif isinstance(outcome, ModifyAck) and outcome.replaced_by is not None:
                known.add(outcome.replaced_by)
        order_id = data.draw(st.sampled_from([*sorted(known), 1]))
        kind = data.draw(st.sampled_from(["cancel", "shrink", "reprice"]))
        count = data.draw(st.integers(1, 3))  # several requests on one order at once
        confirm = data.draw(st.booleans()) or kind != "cancel"
        if kind == "cancel":
            requests: list[Any] = [CancelOrder(MARKET, order_id) for _ in range(count)]
            self.tickets += self.core.submit_many(CANCEL, requests, confirm=confirm)
            return
        requests = [
            ModifyOrder(MARKET, order_id, quantity=D("0.01") * data.draw(st.integers(1, 3)))
            if kind == "shrink"
            else ModifyOrder(MARKET, order_id, price=D(2900) + data.draw(st.integers(0, 50)))
            for _ in range(count)
        ]
        self.tickets += self.core.submit_many(MODIFY, requests, confirm=confirm)

    @rule(tokens=st.one_of(st.none(), st.floats(0, 30)))
    def send(self, tokens: float | None) -> None:
        self.tag += 1
        batch = self.core.next_batch(self.now, tag=self.tag, wall_ms=self.wall, order_tokens=tokens)
        if batch is None:
            return
        assert message_length(batch.text) <= LIMIT
        assert 1 <= len(batch.tickets) <= 20
        if tokens is not None and batch.action is not CANCEL:
            assert len(batch.tickets) <= int(tokens)
        command = json.loads(batch.text, parse_float=Decimal)
        items = command.get("dataArray") or [command["data"]]
        assert command["tag"] == self.tag and len(items) == len(batch.tickets)
        for ticket, item in zip(batch.tickets, items, strict=True):
            assert ticket.state is TicketState.SENT and ticket.tag == str(self.tag)
            if ticket.action is not CANCEL:
                assert item["timestamp"] == self.wall and item["recvWindow"] == 3000
            else:
                assert "timestamp" not in item and "recvWindow" not in item
            self.pending.append(Entry(ticket, item, str(self.tag), self.core.session))

    # -- the exchange --------------------------------------------------------------------------

    @staticmethod
    def _eligible(entries: list[Entry]) -> list[int]:
        """Indexes the exchange may process next: one order's requests in the order written."""
        seen: set[int] = set()
        eligible = []
        for index, entry in enumerate(entries):
            key = entry.order_key()
            if key is None:
                eligible.append(index)
            elif key not in seen:
                seen.add(key)
                eligible.append(index)
        return eligible

    def _process(
        self, entry: Entry, fate: str, data: st.DataObject | None
    ) -> dict[str, Any] | None:
        """Process one order as the exchange would; returns the reply frame (``None``: none)."""
        ticket = entry.ticket
        item = entry.item
        echo: dict[str, Any] = {k: str(v) for k, v in item.items()}
        frame: dict[str, Any] = {"event": ticket.action.value, "timestamp": str(self.wall)}
        if fate == "rate_limited":
            self.truth[ticket.seq] = "rate_limited"
            return {**frame, "submitted": False, "code": "20007", "message": "no", "data": echo}
        stamp = item.get("timestamp")
        if stamp is not None and self.wall > stamp + item["recvWindow"]:
            self.truth[ticket.seq] = "late"
            return {**frame, "submitted": False, "code": "20024", "message": "late", "data": echo}
        if ticket.action is PLACE:
            cid = int(item["clientOrderId"])
            self.processed_cids.append(cid)
            order = Order(self.next_id, cid, D(item["quantity"]), D(item["price"]))
            order.modified_at = order.created_at = self.wall
            self.next_id += 1
            self.orders[order.order_id] = order
            self.placed[cid] = order.order_id
            self.truth[ticket.seq] = "placed"
            self.notices.append(_order_notice(order, "OrderOpened", "OPEN", self.wall))
            if data is None or data.draw(st.booleans()):  # 2020-12 replies name no order id
                echo["orderId"] = str(order.order_id)
            return {**frame, "submitted": True, "data": echo}
        target = self.orders.get(int(item["orderId"]))
        if target is None:
            self.truth[ticket.seq] = "refused"
            return {**frame, "submitted": False, "code": "100005", "message": "no", "data": echo}
        event = "CANCEL" if ticket.action is CANCEL else "AMEND"
        if not target.open:
            self.truth[ticket.seq] = "already_closed"
            self.notices.append(_failure_notice(event, target, item, self.wall))
            return {**frame, "submitted": True, "data": echo}
        if ticket.action is CANCEL:
            self._close(target, "CANCELED_BY_USER")
            self.truth[ticket.seq] = "cancelled"
            return {**frame, "submitted": True, "data": echo}
        quantity = D(item["quantity"]) if "quantity" in item else target.quantity
        price = D(item["price"]) if "price" in item else target.price
        if price == target.price and quantity <= target.quantity:
            target.quantity = quantity
            target.modified_at = self.wall
            self.truth[ticket.seq] = "modified"
            self.notices.append(_order_notice(target, "OrderModified", "OPEN", self.wall))
        else:
            self._close(target, "CANCELED_BY_AMEND")
            replacement = Order(self.next_id, target.cid, quantity, price)
            replacement.modified_at = replacement.created_at = self.wall
            self.next_id += 1
            self.orders[replacement.order_id] = replacement
            self.notices.append(_order_notice(replacement, "OrderOpened", "OPEN", self.wall))
            self.truth[ticket.seq] = f"replaced:{replacement.order_id}"
        return {**frame, "submitted": True, "data": echo}

    def _close(self, order: Order, status: str) -> None:
        order.open = False
        order.status = status
        order.closed_at = self.wall
        self.notices.append(_order_notice(order, "OrderClosed", status, self.wall))

    def _deliver_reply(self, entry: Entry, frame: dict[str, Any], tagged: bool) -> None:
        if tagged:
            frame["tag"] = entry.tag
        message = decode(orjson.dumps(frame))
        assert isinstance(message, OrderReply)
        consumed, woken = self.core.on_reply(message, self.now)
        assert consumed or not tagged
        for ticket in woken:
            assert ticket.state is TicketState.DONE or ticket.early is not None
            if message.submitted and ticket.action is not PLACE:
                assert ticket.action is entry.ticket.action

    @rule(data=st.data())
    def exchange_processes_one(self, data: st.DataObject) -> None:
        if not self.pending:
            return
        index = data.draw(st.sampled_from(self._eligible(self.pending)))
        entry = self.pending.pop(index)
        fate = data.draw(st.sampled_from(["ok", "ok", "ok", "rate_limited"]))
        frame = self._process(entry, fate, data)
        if frame is not None:
            self.replies.append((entry, frame, data.draw(st.booleans())))

    @rule(count=st.integers(1, 6))
    def replies_arrive(self, count: int) -> None:
        # One socket's replies arrive in order; whether before or after its notices varies.
        for entry, frame, tagged in self.replies[:count]:
            self._deliver_reply(entry, frame, tagged)
        del self.replies[:count]

    @rule(count=st.integers(1, 6))
    def notices_arrive(self, count: int) -> None:
        for message in self.notices[:count]:
            woken = self.core.on_order_message(message)
            assert all(t.state is TicketState.DONE for t in woken)
        del self.notices[:count]

    @rule(data=st.data())
    def a_stalled_frame_is_read_late(self, data: st.DataObject) -> None:
        if not self.stalled:
            return
        index = data.draw(st.sampled_from(self._eligible(self.stalled)))
        self._process(self.stalled.pop(index), "lost", data)  # its socket is gone: no reply

    @rule()
    def the_stalled_socket_closes_for_good(self) -> None:
        self.stalled.clear()

    @rule(seconds=st.floats(0, 8))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        self.core.expire(self.now)

    @rule()
    def connection_drops(self) -> None:
        self.stalled += self.pending  # unread frames may still be read (half-open)
        self.pending = []
        self.notices.clear()  # what was pushed to the dead socket is lost
        self.replies.clear()
        self.core.connection_lost(self.now)
        self.now = max(self.now, self.core.hold_until)

    @rule(data=st.data())
    def caller_gives_up(self, data: st.DataObject) -> None:
        queued = [t for t in self.tickets if t.state is TicketState.QUEUED]
        if queued:
            ticket = data.draw(st.sampled_from(queued))
            assert self.core.withdraw(ticket, "gave up")
            self.truth[ticket.seq] = "withdrawn"

    # -- REST lookups --------------------------------------------------------------------------

    def _open_orders(self) -> list[OpenOrder]:
        return [
            OpenOrder(
                order_id=o.order_id,
                market_code=MARKET,
                client_order_id=o.cid,
                side=Side.SELL,
                order_type=OrderType.LIMIT,
                quantity=o.quantity,
                remaining_quantity=o.quantity,
                price=o.price,
                order_created=o.created_at,
                last_modified=o.modified_at,
                time_in_force=TimeInForce.GTC,
            )
            for o in sorted(self.orders.values(), key=lambda o: o.order_id)
            if o.open
        ]

    def _records(self, orders: list[Order]) -> list[OrderRecord]:
        return [
            OrderRecord(
                status=OrderRecordStatus.OPENED if o.open else OrderRecordStatus.CLOSED,
                order_id=o.order_id,
                client_order_id=o.cid,
                market_code=MARKET,
                side=Side.SELL,
                order_type=OrderType.LIMIT,
                price=o.price,
                quantity=o.quantity,
                order_closed_timestamp=o.closed_at,
            )
            for o in orders
        ]

    def _look_up(self, ticket: Ticket, *, give_up: bool) -> None:
        core = self.core
        provable = ticket.window_closed(self.wall, CONFIG.clock_skew_margin_ms)
        snapshot = self._open_orders()
        request = ticket.request
        verdict: Outcome | KeepLooking
        if isinstance(request, CancelOrder | ModifyOrder):
            target = self.orders.get(request.order_id)
            related = [target] if target is not None else []
            if target is not None and target.cid is not None:
                related += [o for o in self.orders.values() if o.cid == target.cid]
            records = self._records(related)
            others = core.others_on(ticket)
            known = core.closed(request.order_id)
            if isinstance(request, CancelOrder):
                verdict = cancel_outcome(
                    ticket,
                    open_orders=snapshot,
                    records=records,
                    final=ticket.session != core.session,
                    others=others,
                    known=known,
                    margin_ms=CONFIG.clock_skew_margin_ms,
                )
            else:
                verdict = modify_outcome(
                    ticket,
                    open_orders=snapshot,
                    records=records,
                    provable=provable,
                    others=others,
                    known=known,
                    margin_ms=CONFIG.clock_skew_margin_ms,
                )
        else:
            mine = [o for o in self.orders.values() if o.cid == ticket.client_order_id]
            found = place_outcome(ticket, open_orders=snapshot, records=self._records(mine))
            verdict = place_verdict(ticket, found, provable=provable)
        if isinstance(verdict, KeepLooking):
            if give_up:
                core.resolve(ticket, OrderOutcomeUnknown(verdict.reason))
            return
        assert core.resolve(ticket, verdict)

    @precondition(lambda self: bool(self.core.unknown()))
    @rule()
    def reconcile(self) -> None:
        for ticket in self.core.unknown():
            if ticket.state is TicketState.UNKNOWN:
                self._look_up(ticket, give_up=False)

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def no_order_is_ever_placed_twice(self) -> None:
        assert len(self.processed_cids) == len(set(self.processed_cids))

    @invariant()
    def outcomes_are_settled_once_and_never_change(self) -> None:
        for ticket in self.tickets:
            if ticket.state is TicketState.DONE:
                assert ticket.outcome is not None
                first = self.settled.setdefault(ticket.seq, ticket.outcome)
                assert first is ticket.outcome
            else:
                assert ticket.seq not in self.settled

    @invariant()
    def settled_outcomes_are_each_requests_own_truth(self) -> None:
        for ticket in self.tickets:
            outcome = ticket.outcome
            if outcome is None:
                continue
            if ticket.early is not None:
                assert isinstance(ticket.early, CancelAck | ModifyAck)
                assert not ticket.early.confirmed and ticket.seq in self.truth
            self._check(ticket, outcome, self.truth.get(ticket.seq))

    def _check(self, ticket: Ticket, outcome: Outcome, fate: str | None) -> None:
        cid = ticket.client_order_id
        if isinstance(outcome, PlaceAck):
            assert cid in self.placed and outcome.order_id == self.placed[cid], outcome
        elif isinstance(outcome, CancelAck):
            if outcome.confirmed:
                assert fate == "cancelled", (fate, outcome)
        elif isinstance(outcome, ModifyAck):
            if not outcome.confirmed:
                return
            if outcome.replaced_by is not None:
                assert fate == f"replaced:{outcome.replaced_by}", (fate, outcome)
            else:
                assert fate == "modified", (fate, outcome)
        elif isinstance(outcome, OrderAlreadyClosed):
            order = self.orders.get(outcome.order_id)
            assert order is not None and not order.open
            assert fate in NO_EFFECT, (fate, outcome)
            self.never_again.add(ticket.seq)
        elif isinstance(outcome, RateLimitError):
            assert fate == "rate_limited"
        elif isinstance(outcome, ExchangeError):
            assert fate in ("refused", "late"), (fate, outcome)
        elif isinstance(outcome, OrderNotApplied):
            assert fate in NO_EFFECT and fate != "already_closed", (fate, outcome)
            if outcome.sent:
                assert cid not in self.placed
                self.never_again.add(ticket.seq)
            else:
                assert not any(e.ticket is ticket for e in [*self.pending, *self.stalled])
        else:
            assert isinstance(outcome, OrderOutcomeUnknown), outcome

    @invariant()
    def what_was_not_applied_never_takes_effect(self) -> None:
        # A request called not applied (or found its order closed unprocessed) may still be
        # read late from a stalled socket: it must then have no effect.
        for seq in self.never_again:
            assert self.truth.get(seq) in NO_EFFECT

    def teardown(self) -> None:
        # The dust settles: the socket drops, the windows close, the exchange reads whatever
        # it still will, every notice arrives, every request is looked up.
        self.connection_drops()
        self.now += 10
        while self.stalled:
            self._process(self.stalled.pop(self._eligible(self.stalled)[0]), "lost", None)
        self.notices_arrive(10**6)
        for ticket in self.core.unknown():
            if ticket.state is TicketState.UNKNOWN:
                self._look_up(ticket, give_up=True)
        self.core.close("done")
        for ticket in self.tickets:
            assert ticket.state is TicketState.DONE
        self.outcomes_are_settled_once_and_never_change()
        self.settled_outcomes_are_each_requests_own_truth()
        self.what_was_not_applied_never_takes_effect()


OutboxMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
TestOutboxCore = OutboxMachine.TestCase
