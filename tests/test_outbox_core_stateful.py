"""A stateful property test of the outbox core against a model exchange.

Hypothesis interleaves submissions, sends (under random order-token budgets), replies in any
order (with or without tags, refused, rate limited), order-channel notices, reply deadlines,
dropped connections and withdrawn requests. The model exchange knows the truth of every order it
processed; the invariants: no order is ever processed twice, every reply reaches the request it
answers, no command breaks the size limits, a request is settled once and never changes its
outcome, and once the dust settles every request has exactly one outcome matching the truth.
"""

from __future__ import annotations

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
from flexconn._reconcile import cancel_outcome, modify_outcome, place_outcome
from flexconn.errors import ExchangeError, OrderNotApplied, RateLimitError
from flexconn.models.enums import OrderType, Side, TimeInForce
from flexconn.models.orders import CancelOrder, LimitOrder, ModifyOrder
from flexconn.models.replies import OrderAction, OrderReply
from flexconn.models.rest import OpenOrder, OrderRecord, OrderRecordStatus
from flexconn.protocol import decode, message_length

D = Decimal
MARKET = "ETH-USD-SWAP-LIN"
LIMIT = 700
PLACE, CANCEL, MODIFY = OrderAction.PLACE, OrderAction.CANCEL, OrderAction.MODIFY


class Pending:
    """One order of a command the model exchange received and has not answered yet."""

    def __init__(self, ticket: Ticket, item: dict[str, Any], tag: str, reply: dict[str, Any]):
        self.ticket = ticket
        self.item = item
        self.tag = tag
        self.reply = reply


class OutboxMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.core = OutboxCore(
            OutboxConfig(max_message_length=LIMIT, reply_timeout=5.0, max_rate_limit_retries=2),
            first_client_order_id=10,
        )
        self.now = 0.0
        self.tag = 0
        self.tickets: list[Ticket] = []
        self.settled: dict[int, Outcome] = {}
        self.pending: list[Pending] = []
        # truth: client order id -> order id of every order the exchange placed
        self.placed: dict[int, int] = {}
        self.processed_cids: list[int] = []
        self.open: dict[int, Decimal] = {}  # order id -> remaining quantity
        self.closed: set[int] = set()
        self.next_id = 5000
        # ticket seq -> what the exchange did with it (an Outcome-like marker)
        self.truth: dict[int, str | None] = {}

    # -- the client side -----------------------------------------------------------------------

    @rule(count=st.integers(1, 25), prices=st.integers(0, 10**6))
    def submit_places(self, count: int, prices: int) -> None:
        orders = [
            LimitOrder(MARKET, Side.SELL, D("0.01"), D(3000) + D(prices + i) / 100)
            for i in range(count)
        ]
        self.tickets += self.core.submit_many(PLACE, orders)

    @rule(data=st.data())
    def submit_cancel_or_modify(self, data: st.DataObject) -> None:
        known = sorted(self.open) or [1]
        order_id = data.draw(st.sampled_from(known))
        if data.draw(st.booleans()):
            self.tickets.append(self.core.submit(CANCEL, CancelOrder(MARKET, order_id)))
        else:
            modify = ModifyOrder(
                MARKET, order_id, quantity=D("0.01") * data.draw(st.integers(1, 3))
            )
            self.tickets.append(self.core.submit(MODIFY, modify))

    @rule(tokens=st.one_of(st.none(), st.floats(0, 30)), processed=st.booleans())
    def send(self, tokens: float | None, processed: bool) -> None:
        self.tag += 1
        batch = self.core.next_batch(self.now, tag=self.tag, wall_ms=1, order_tokens=tokens)
        if batch is None:
            return
        assert message_length(batch.text) <= LIMIT
        assert 1 <= len(batch.tickets) <= 20
        if tokens is not None and batch.action is not CANCEL:
            assert len(batch.tickets) <= int(tokens)
        command = orjson.loads(batch.text)
        items = command.get("dataArray") or [command["data"]]
        assert command["tag"] == self.tag and len(items) == len(batch.tickets)
        for ticket, item in zip(batch.tickets, items, strict=True):
            assert ticket.state is TicketState.SENT and ticket.tag == str(self.tag)
            self.pending.append(Pending(ticket, item, str(self.tag), {}))

    @rule(data=st.data())
    def exchange_answers_one(self, data: st.DataObject) -> None:
        if not self.pending:
            return
        entry = self.pending.pop(data.draw(st.integers(0, len(self.pending) - 1)))
        fate = data.draw(st.sampled_from(["ok", "ok", "ok", "refused", "rate_limited"]))
        ticket = entry.ticket
        item = entry.item
        echo = {k: str(v) for k, v in item.items()}
        if ticket.action is not PLACE and int(item["orderId"]) not in self.open:
            fate = "refused"
        truth = self._apply(ticket, item, echo) if fate == "ok" else fate
        frame: dict[str, Any] = {
            "event": ticket.action.value,
            "submitted": fate == "ok",
            "timestamp": "1",
            "data": echo,
        }
        if fate != "ok":
            frame["code"] = "20007" if fate == "rate_limited" else "20006"
            frame["message"] = "no"
        if data.draw(st.booleans()):
            frame["tag"] = entry.tag
        message = decode(orjson.dumps(frame))
        assert isinstance(message, OrderReply)
        before = ticket.state
        consumed, resolved = self.core.on_reply(message, self.now)
        if resolved is None:
            # back in the queue after 20007, or a late reply to a request settled meanwhile
            assert fate == "rate_limited" or before is TicketState.DONE
            assert consumed or "tag" not in frame
            self.truth[ticket.seq] = truth
            return
        assert consumed
        # The reply reached the request it answers. Places are told apart by client order id;
        # several cancels or modifies of one order in flight together can only be told apart by
        # their echoed fields, which the exchange may not echo as sent: one of them gets it.
        if ticket.action is PLACE:
            assert resolved is ticket
        else:
            assert resolved.action is ticket.action and resolved.order_id == ticket.order_id
        self.truth[resolved.seq] = truth

    def _apply(self, ticket: Ticket, item: dict[str, Any], echo: dict[str, str]) -> str:
        """Process one order as the exchange would; returns what happened."""
        if ticket.action is PLACE:
            cid = int(item["clientOrderId"])
            self.processed_cids.append(cid)
            self.placed[cid] = self.next_id
            self.open[self.next_id] = D(item["quantity"])
            echo["orderId"] = str(self.next_id)
            self.next_id += 1
            return "placed"
        order_id = int(item["orderId"])
        if order_id not in self.open:
            return "refused"
        if ticket.action is CANCEL:
            del self.open[order_id]
            self.closed.add(order_id)
            return "cancelled"
        self.open[order_id] = D(item["quantity"])
        return "modified"

    @rule(data=st.data())
    def exchange_processes_but_the_reply_is_lost(self, data: st.DataObject) -> None:
        if not self.pending:
            return
        entry = self.pending.pop(data.draw(st.integers(0, len(self.pending) - 1)))
        self.truth[entry.ticket.seq] = self._apply(entry.ticket, entry.item, {})

    @rule()
    def notice_for_a_placed_order_in_flight(self) -> None:
        for ticket in self.tickets:
            cid = ticket.client_order_id
            if ticket.state is not TicketState.DONE and cid in self.placed:
                frame = {
                    "table": "order",
                    "data": [
                        {
                            "notice": "OrderOpened",
                            "orderId": str(self.placed[cid]),
                            "clientOrderId": str(cid),
                            "marketCode": MARKET,
                            "side": "SELL",
                            "orderType": "LIMIT",
                            "quantity": "0.01",
                            "price": "3000",
                            "status": "OPEN",
                            "timestamp": "1",
                        }
                    ],
                }
                self.core.on_order_message(decode(orjson.dumps(frame)))
                return

    @rule(seconds=st.floats(0, 8))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        self.core.expire(self.now)

    @rule()
    def connection_drops(self) -> None:
        self.pending.clear()  # unanswered commands die with the socket
        self.core.connection_lost()
        self.now = max(self.now, self.core.hold_until)

    @rule(data=st.data())
    def caller_gives_up(self, data: st.DataObject) -> None:
        queued = [t for t in self.tickets if t.state is TicketState.QUEUED]
        if queued:
            ticket = data.draw(st.sampled_from(queued))
            assert self.core.withdraw(ticket, "gave up")
            self.truth[ticket.seq] = "withdrawn"

    @precondition(lambda self: bool(self.core.unknown()))
    @rule()
    def reconcile_after_reconnect(self) -> None:
        snapshot = [
            OpenOrder(
                order_id=order_id,
                market_code=MARKET,
                client_order_id=next((c for c, o in self.placed.items() if o == order_id), None),
                side=Side.SELL,
                order_type=OrderType.LIMIT,
                quantity=remaining,
                remaining_quantity=remaining,
                price=D(3000),
                order_created=1,
                time_in_force=TimeInForce.GTC,
            )
            for order_id, remaining in sorted(self.open.items())
        ]
        for ticket in self.core.unknown():
            if ticket.state is not TicketState.UNKNOWN or ticket.session == self.core.session:
                continue  # only the dropped sockets' requests are reconciled here
            outcome: Outcome
            if ticket.action is PLACE:
                history = [
                    self._record(order_id, cid)
                    for cid, order_id in self.placed.items()
                    if order_id in self.closed
                ]
                found = place_outcome(ticket, open_orders=snapshot, records=history)
                outcome = found or OrderNotApplied("not placed", sent=True)
            elif ticket.action is CANCEL:
                records = [self._record(ticket.order_id)] if ticket.order_id in self.closed else []
                outcome = cancel_outcome(ticket, open_orders=snapshot, records=records, final=True)
            else:
                outcome = modify_outcome(ticket, open_orders=snapshot, records=[], final=True)
            self.core.resolve(ticket, outcome)

    @staticmethod
    def _record(order_id: int | None, cid: int | None = None) -> OrderRecord:
        assert order_id is not None
        return OrderRecord(
            status=OrderRecordStatus.CLOSED,
            order_id=order_id,
            client_order_id=cid,
            market_code=MARKET,
            side=Side.SELL,
            order_type=OrderType.LIMIT,
            quantity=D("0.01"),
        )

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
    def settled_outcomes_match_the_truth(self) -> None:
        for ticket in self.tickets:
            outcome = ticket.outcome
            if outcome is None:
                continue
            fate = self.truth.get(ticket.seq)
            cid = ticket.client_order_id
            if isinstance(outcome, PlaceAck):
                assert cid in self.placed and outcome.order_id == self.placed[cid]
            elif isinstance(outcome, CancelAck):
                assert fate == "cancelled" or ticket.order_id in self.closed
            elif isinstance(outcome, ModifyAck):
                assert fate == "modified" or (fate is None and ticket.order_id in self.open)
            elif isinstance(outcome, RateLimitError):
                assert fate == "rate_limited"
            elif isinstance(outcome, ExchangeError):
                assert fate == "refused"
            elif isinstance(outcome, OrderNotApplied):
                assert cid not in self.placed
                if fate == "modified":
                    # applied, then overtaken: the order closed or was modified again since
                    request = ticket.request
                    assert isinstance(request, ModifyOrder)
                    assert self.open.get(request.order_id) != request.quantity
                else:
                    assert fate in (None, "withdrawn", "refused", "rate_limited")

    def teardown(self) -> None:
        # The dust settles: the socket drops, the exchange is asked, every request has an end.
        self.connection_drops()
        self.reconcile_after_reconnect()
        self.core.close("done")
        for ticket in self.tickets:
            assert ticket.state is TicketState.DONE
        self.outcomes_are_settled_once_and_never_change()
        self.settled_outcomes_match_the_truth()


OutboxMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50, deadline=None)
TestOutboxCore = OutboxMachine.TestCase
