"""The outbox's sans-IO core: packing, pacing decisions, correlation, evidence and the
reconciliation rules, driven with explicit times and replies decoded from real frames."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import orjson
import pytest

from flexconn._outbox_core import Batch, ClosedOrder, OutboxCore
from flexconn._outbox_types import (
    AckSource,
    CancelAck,
    ModifyAck,
    OutboxConfig,
    PlaceAck,
    Ticket,
    TicketState,
)
from flexconn._reconcile import KeepLooking, cancel_outcome, modify_outcome, place_outcome
from flexconn.errors import (
    InvalidOrderError,
    OrderAlreadyClosed,
    OrderNotApplied,
    OrderNotFoundError,
    OrderOutcomeUnknown,
    PriceBoundError,
    RateLimitError,
    ValidationError,
)
from flexconn.models.enums import MatchType, OrderStatus, OrderType, Side, TimeInForce
from flexconn.models.notices import OrderFailureNotice, OrderUpdate
from flexconn.models.orders import (
    CancelOrder,
    CancelOrderRequest,
    CancelOrdersRequest,
    LimitOrder,
    MarketOrder,
    ModifyOrder,
    PlaceOrderRequest,
    PlaceOrdersRequest,
    StopLimitOrder,
)
from flexconn.models.replies import OrderAction, OrderReply
from flexconn.models.rest import AccountTrade, OpenOrder, OrderRecord, OrderRecordStatus
from flexconn.protocol import MAX_MESSAGE_LENGTH, decode, encode, message_length

D = Decimal
MARKET = "BTC-USD-SWAP-LIN"
PLACE, CANCEL, MODIFY = OrderAction.PLACE, OrderAction.CANCEL, OrderAction.MODIFY
#: The wall clock (epoch ms) commands are written at; notices come a second later.
WALL = 1_594_943_490_000


def limit(i: int = 0, **kwargs: Any) -> LimitOrder:
    return LimitOrder(MARKET, Side.BUY, D("0.001"), D(30000 + i), **kwargs)


def core(**config: Any) -> OutboxCore:
    return OutboxCore(OutboxConfig(**config), first_client_order_id=100)


def batch(c: OutboxCore, now: float = 0.0, tag: int = 1, tokens: float | None = None) -> Batch:
    out = c.next_batch(now, tag=tag, wall_ms=WALL, order_tokens=tokens)
    assert out is not None
    return out


def stamped(order: Any) -> Any:
    """The order as the outbox writes it: with its timestamp and the default recvWindow."""
    return attrs.evolve(order, timestamp=WALL, recv_window=3000)


def same_json(text: str, other: str) -> bool:
    return bool(orjson.loads(text) == orjson.loads(other))


def items(b: Batch) -> list[dict[str, Any]]:
    command = orjson.loads(b.text)
    return list(command["dataArray"]) if "dataArray" in command else [command["data"]]


def reply(
    b: Batch,
    index: int,
    *,
    ok: bool = True,
    code: str | None = None,
    order_id: int | None = None,
    tag: bool = True,
    event: str | None = None,
    data: dict[str, Any] | None = None,
) -> OrderReply:
    """The exchange's reply to order ``index`` of ``b``, decoded from its JSON frame."""
    body = dict(items(b)[index]) if data is None else data
    echo = {k: v if isinstance(v, str) else str(v) for k, v in body.items()}
    if ok and b.action is PLACE:
        echo["orderId"] = str(order_id if order_id is not None else 7000 + index)
    frame: dict[str, Any] = {
        "event": event or b.action.value,
        "submitted": ok,
        "timestamp": "1592491945248",
        "data": echo,
    }
    if tag:
        frame["tag"] = b.tag
    if not ok:
        frame["code"] = code
        frame["message"] = f"refused with {code}"
    message = decode(orjson.dumps(frame))
    assert isinstance(message, OrderReply)
    return message


def notice(**entry: Any) -> OrderUpdate:
    base = {
        "notice": "OrderOpened",
        "accountId": "1001",
        "marketCode": MARKET,
        "side": "BUY",
        "orderType": "LIMIT",
        "quantity": "0.001",
        "price": "30000",
        "timeInForce": "GTC",
        "status": "OPEN",
        "timestamp": "1594943491077",
        "isTriggered": "False",
    }
    base.update({k: str(v) for k, v in entry.items()})
    message = decode(orjson.dumps({"table": "order", "data": [base]}))
    assert isinstance(message, OrderUpdate)
    return message


def settle_reply(c: OutboxCore, r: OrderReply, now: float = 0.0) -> Ticket | None:
    consumed, woken = c.on_reply(r, now)
    assert consumed and len(woken) <= 1
    return woken[0] if woken else None


def failure(event: str, order_id: int, **data: Any) -> OrderFailureNotice:
    """The CANCEL/AMEND failure notice (code 100004) for ``order_id``."""
    status = f"REJECT_{'CANCEL' if event == 'CANCEL' else 'AMEND'}_ORDER_ID_NOT_FOUND"
    message = decode(
        orjson.dumps(
            {
                "event": event,
                "submitted": False,
                "code": "100004",
                "message": f"Order request was rejected : {status}",
                "timestamp": "1594943491100",
                "data": {"orderId": order_id, "marketCode": MARKET, "status": status, **data},
            }
        )
    )
    assert isinstance(message, OrderFailureNotice)
    return message


# -- packing -------------------------------------------------------------------------------------


def test_a_lone_request_is_one_single_command_exactly_as_encode_writes_it() -> None:
    c = core()
    (ticket,) = c.submit_many(PLACE, [limit()])
    b = batch(c, tag=9)
    assert b.tickets == (ticket,)
    request = ticket.request
    assert isinstance(request, LimitOrder) and request.client_order_id == 100
    assert same_json(b.text, encode(PlaceOrderRequest(order=stamped(request), tag=9)))
    assert b.text.startswith(encode(PlaceOrderRequest(order=request, tag=9))[:-2])
    assert b.text.endswith(f',"timestamp":{WALL},"recvWindow":3000}}}}')
    assert (ticket.stamp_ms, ticket.window_ms) == (WALL, 3000)
    assert ticket.state is TicketState.SENT and ticket.tag == "9" and ticket.attempts == 1
    assert c.next_batch(0.0, tag=10, wall_ms=0) is None


def test_concurrent_requests_leave_in_batches_of_twenty_exactly_as_encode_writes_them() -> None:
    c = core()
    tickets = c.submit_many(PLACE, [limit(i) for i in range(45)])
    sizes = []
    for tag in (1, 2, 3):
        b = batch(c, tag=tag)
        sizes.append(len(b.tickets))
        orders = [t.request for t in b.tickets]
        assert all(isinstance(o, LimitOrder | MarketOrder | StopLimitOrder) for o in orders)
        expected = PlaceOrdersRequest(orders=[stamped(o) for o in orders], tag=tag)
        assert same_json(b.text, encode(expected))
        assert message_length(b.text) <= sum(t.size for t in b.tickets) + len(b.tickets) + 50
    assert sizes == [20, 20, 5]
    assert [t.seq for t in tickets] == sorted(t.seq for t in tickets)
    assert all(t.state is TicketState.SENT for t in tickets)


def test_batches_split_at_the_message_length_limit() -> None:
    c = core()
    zeros = "0" * 120
    long_orders = [
        LimitOrder(MARKET, Side.BUY, D("0.001" + zeros), D(f"{30000 + i}.{zeros}"))
        for i in range(20)
    ]
    c.submit_many(PLACE, long_orders)
    batches: list[Batch] = []
    while c.queued:
        batches.append(batch(c, tag=len(batches) + 1))
    assert sum(len(b.tickets) for b in batches) == 20
    assert 1 < len(batches[0].tickets) < 20
    for b in batches:
        assert message_length(b.text) <= MAX_MESSAGE_LENGTH
    # one more order would not have fitted
    first, second = batches[:2]
    assert message_length(first.text) + second.tickets[0].size + 1 > MAX_MESSAGE_LENGTH


def test_a_smaller_configured_length_limit_splits_earlier_and_rejects_a_too_long_order() -> None:
    c = core(max_message_length=400)
    c.submit_many(PLACE, [limit(i) for i in range(10)])
    sizes = []
    while c.queued:
        b = batch(c)
        assert message_length(b.text) <= 400
        sizes.append(len(b.tickets))
    assert sum(sizes) == 10 and max(sizes) < 10
    with pytest.raises(ValidationError, match="exceed 400 bytes"):
        c.submit(PLACE, LimitOrder("X" * 400, Side.BUY, D(1), D(1)))


def test_configured_batch_size_one_sends_one_command_per_order() -> None:
    c = core(max_batch_size=1)
    c.submit_many(PLACE, [limit(i) for i in range(3)])
    assert [len(batch(c).tickets) for _ in range(3)] == [1, 1, 1]


def test_order_tokens_cap_place_and_modify_but_not_cancel() -> None:
    c = core()
    c.submit_many(PLACE, [limit(i) for i in range(10)])
    assert len(batch(c, tokens=3.9).tickets) == 3
    assert c.next_batch(0.0, tag=2, wall_ms=0, order_tokens=0.5) is None
    assert c.needs_order_tokens()
    c.submit(CANCEL, CancelOrder(MARKET, 55))
    assert not c.needs_order_tokens()
    b = batch(c, tokens=0.5)
    assert b.action is CANCEL and b.counted_orders == 0


def test_the_kind_whose_oldest_request_is_oldest_goes_first() -> None:
    c = core()
    c.submit(CANCEL, CancelOrder(MARKET, 1))
    c.submit(PLACE, limit())
    c.submit(MODIFY, ModifyOrder(MARKET, 2, price=D(31000)))
    c.submit(CANCEL, CancelOrder(MARKET, 3))
    kinds = []
    while c.queued:
        b = batch(c)
        kinds.append((b.action, len(b.tickets)))
    assert kinds == [(CANCEL, 2), (PLACE, 1), (MODIFY, 1)]
    assert b.text.startswith('{"op":"modifyorder",')


def test_cancel_batches_encode_like_the_encoder() -> None:
    c = core()
    c.submit_many(CANCEL, [CancelOrder(MARKET, i) for i in (11, 12)])
    b = batch(c, tag=4)
    assert b.text == encode(
        CancelOrdersRequest(orders=[CancelOrder(MARKET, 11), CancelOrder(MARKET, 12)], tag=4)
    )
    c.submit(CANCEL, CancelOrder(MARKET, 13))
    assert batch(c, tag=5).text == encode(CancelOrderRequest(order=CancelOrder(MARKET, 13), tag=5))


# -- client order ids and validation ---------------------------------------------------------------


def test_client_order_ids_are_assigned_unique_and_caller_ids_may_not_repeat() -> None:
    c = core()
    given = c.submit(PLACE, limit(client_order_id=101))
    auto = c.submit_many(PLACE, [limit(1), limit(2)])
    ids = [t.client_order_id for t in (given, *auto)]
    assert ids == [101, 100, 102]  # the generator skips the id the caller took
    with pytest.raises(ValidationError) as info:
        c.submit(PLACE, limit(client_order_id=101))
    assert info.value.field == "[0].clientOrderId"
    with pytest.raises(ValidationError, match="already used"):
        c.submit_many(PLACE, [limit(client_order_id=555), limit(client_order_id=555)])
    with pytest.raises(ValidationError) as bad:
        c.submit_many(PLACE, [limit(5), LimitOrder(MARKET, Side.BUY, D(0), D(1))])
    assert bad.value.field == "data.quantity"
    assert c.queued == 3  # a refused group queues nothing
    assert c.submit(PLACE, limit(client_order_id=555)).client_order_id == 555


def test_an_id_the_outbox_assigned_earlier_may_not_be_given_later() -> None:
    c = core()
    auto = c.submit(PLACE, limit())
    assert auto.client_order_id == 100
    with pytest.raises(ValidationError, match="100 was already used"):
        c.submit(PLACE, limit(client_order_id=100))
    assert c.submit(PLACE, limit(client_order_id=99)).client_order_id == 99


def test_a_wrong_kind_of_request_is_refused() -> None:
    with pytest.raises(ValidationError, match="cannot carry"):
        core().submit(CANCEL, limit())


# -- correlation ---------------------------------------------------------------------------------


def test_replies_out_of_order_reach_the_right_callers() -> None:
    c = core()
    tickets = c.submit_many(PLACE, [limit(i) for i in range(5)])
    b = batch(c)
    for index in (3, 0, 4, 1, 2):
        resolved = settle_reply(c, reply(b, index, order_id=900 + index))
        assert resolved is tickets[index]
        outcome = resolved.outcome
        assert isinstance(outcome, PlaceAck)
        assert outcome.order_id == 900 + index and outcome.source is AckSource.REPLY
        assert outcome.order == tickets[index].request
    assert all(t.state is TicketState.DONE for t in tickets)


def test_replies_interleaved_across_batches_and_kinds_and_without_tags() -> None:
    c = core()
    places = c.submit_many(PLACE, [limit(i) for i in range(3)])
    first = batch(c, tag=1)
    more = c.submit_many(PLACE, [limit(10 + i) for i in range(2)])
    second = batch(c, tag=2)
    cancels = c.submit_many(CANCEL, [CancelOrder(MARKET, 501), CancelOrder(MARKET, 502)])
    third = batch(c, tag=3)
    script = [
        (reply(second, 1, tag=False), more[1]),
        (reply(third, 1), None),  # accepted: the order channel will confirm it
        (reply(first, 2, ok=False, code="710003", tag=False), places[2]),
        (reply(first, 0), places[0]),
        (reply(third, 0, ok=False, code="100005", tag=False), cancels[0]),
        (reply(second, 0), more[0]),
        (reply(first, 1), places[1]),
    ]
    for message, expected in script:
        assert settle_reply(c, message) is expected
    assert isinstance(places[2].outcome, PriceBoundError)
    assert places[2].outcome.code == "710003"
    assert isinstance(cancels[0].outcome, OrderNotFoundError)
    assert cancels[1].state is TicketState.ACCEPTED
    c.on_order_message(notice(orderId=502, status="CANCELED_BY_USER", notice="OrderClosed"))
    assert isinstance(cancels[1].outcome, CancelAck)


def test_a_failure_reply_without_tag_or_client_order_id_matches_by_its_echoed_fields() -> None:
    c = core()
    tickets = c.submit_many(PLACE, [limit(1), limit(2), limit(3)])
    b = batch(c)
    echo = {k: v for k, v in items(b)[1].items() if k != "clientOrderId"}
    resolved = settle_reply(c, reply(b, 1, ok=False, code="20006", tag=False, data=echo))
    assert resolved is tickets[1]
    assert isinstance(resolved.outcome, InvalidOrderError)


def test_a_failed_modify_echoed_as_placeorder_resolves_the_modify() -> None:
    c = core()
    place = c.submit(PLACE, limit())
    placed = batch(c, tag=1)
    modify = c.submit(MODIFY, ModifyOrder(MARKET, 777, price=D(30500)))
    modified = batch(c, tag=2)
    data = {"orderID": 777, "price": "30500", "marketCode": MARKET}
    slip = reply(modified, 0, ok=False, code="100005", event="placeorder", data=data)
    assert slip.action is MODIFY
    assert settle_reply(c, slip) is modify
    assert isinstance(modify.outcome, OrderNotFoundError)
    assert settle_reply(c, reply(placed, 0)) is place


def test_replies_the_outbox_did_not_cause_are_left_for_others_and_late_ones_swallowed() -> None:
    c = core()
    c.submit(PLACE, limit())
    b = batch(c, tag=1)
    foreign = reply(b, 0)
    foreign_tagged = decode(
        orjson.dumps({"event": "placeorder", "submitted": True, "tag": "zzz", "data": {}})
    )
    assert isinstance(foreign_tagged, OrderReply)
    assert c.on_reply(foreign_tagged, 0.0) == (False, [])
    assert settle_reply(c, foreign) is not None
    # the same reply again (a duplicate, or late after a lookup settled it) is swallowed
    assert c.on_reply(foreign, 0.0) == (True, [])


def test_a_stale_untagged_reply_after_a_drop_matches_nothing() -> None:
    c = core()
    (ticket,) = c.submit_many(PLACE, [limit()])
    b = batch(c)
    assert c.connection_lost(0.0) == []
    assert c.on_reply(reply(b, 0, tag=False), 0.0) == (False, [])
    assert ticket.state is TicketState.UNKNOWN and c.unknown() == [ticket]


# -- rate limiting -------------------------------------------------------------------------------


def test_20007_requeues_the_refused_orders_at_the_front_and_backs_off() -> None:
    c = core(rate_limit_backoff=0.5, max_rate_limit_backoff=2.0)
    tickets = c.submit_many(PLACE, [limit(i) for i in range(4)])
    b = batch(c, now=10.0, tag=1)
    later = c.submit(PLACE, limit(9))
    assert settle_reply(c, reply(b, 0), now=10.0) is tickets[0]
    for index in (2, 1):
        assert settle_reply(c, reply(b, index, ok=False, code="20007"), now=10.1) is None
    assert c.hold_until == pytest.approx(10.6)  # one episode, one backoff
    assert c.next_batch(10.5, tag=2, wall_ms=0) is None
    assert settle_reply(c, reply(b, 3), now=10.2) is tickets[3]  # success resets the backoff
    retry = batch(c, now=10.6, tag=3)
    assert [t.seq for t in retry.tickets] == [tickets[1].seq, tickets[2].seq, later.seq]
    assert (
        tickets[1].attempts == 2 and tickets[1].client_order_id == items(retry)[0]["clientOrderId"]
    )
    for index in range(3):
        settle_reply(c, reply(retry, index, ok=False, code="20007"), now=11.0)
    assert c.hold_until == pytest.approx(11.5)  # the backoff was reset by the success


def test_backoff_doubles_per_episode_up_to_its_cap_and_retries_are_bounded() -> None:
    c = core(rate_limit_backoff=0.5, max_rate_limit_backoff=1.5, max_rate_limit_retries=4)
    (ticket,) = c.submit_many(PLACE, [limit()])
    now = 0.0
    holds = []
    for attempt in range(5):
        b = batch(c, now=now, tag=attempt + 1)
        settle_reply(c, reply(b, 0, ok=False, code="20007"), now=now)
        holds.append(round(c.hold_until - now, 3))
        now = c.hold_until
    assert holds == [0.5, 1.0, 1.5, 1.5, 0.0]  # the fifth refusal is final: no new hold
    assert ticket.state is TicketState.DONE
    assert isinstance(ticket.outcome, RateLimitError) and ticket.outcome.code == "20007"
    assert ticket.attempts == 5


# -- deadlines, drops, evidence ------------------------------------------------------------------


def test_an_overdue_reply_makes_the_outcome_unknown_and_a_late_reply_still_settles_it() -> None:
    c = core(reply_timeout=2.0)
    first = c.submit(PLACE, limit(1))
    b1 = batch(c, now=0.0, tag=1)
    second = c.submit(PLACE, limit(2))
    batch(c, now=1.0, tag=2)
    assert c.next_deadline() == 2.0
    assert c.expire(1.9) == ([], [])
    resolved, lookup = c.expire(2.0)
    assert (resolved, lookup) == ([], [first])
    assert first.state is TicketState.UNKNOWN and second.state is TicketState.SENT
    assert c.next_deadline() == 3.0
    assert settle_reply(c, reply(b1, 0)) is first
    assert isinstance(first.outcome, PlaceAck) and c.unknown() == []
    assert c.resolve(first, OrderOutcomeUnknown("too late")) is False


def test_order_channel_evidence_settles_requests_whose_reply_was_lost() -> None:
    c = core()
    place = c.submit(PLACE, limit())
    batch(c, tag=1)
    cancel = c.submit(CANCEL, CancelOrder(MARKET, 41))
    batch(c, tag=2)
    amend = c.submit(MODIFY, ModifyOrder(MARKET, 42, price=D(30100)))
    batch(c, tag=3)
    late_modify = c.submit(MODIFY, ModifyOrder(MARKET, 43, quantity=D("0.0005")))
    batch(c, tag=4)
    blind = c.submit(PLACE, limit(5))
    batch(c, tag=5)
    assert c.on_order_message(notice(orderId=8001, clientOrderId=place.client_order_id)) == []
    c.on_order_message(notice(orderId=41, status="CANCELED_BY_USER", notice="OrderClosed"))
    c.on_order_message(
        notice(orderId=42, clientOrderId=9, status="CANCELED_BY_AMEND", notice="OrderClosed")
    )
    c.on_order_message(notice(orderId=4200, clientOrderId=9, price="30100"))
    c.on_order_message(failure("AMEND", 43, quantity=0.0005))
    resolved = c.connection_lost(0.0)
    assert resolved == [place, cancel, amend, late_modify]
    assert isinstance(place.outcome, PlaceAck) and place.outcome.order_id == 8001
    assert place.outcome.source is AckSource.ORDER_CHANNEL
    assert isinstance(cancel.outcome, CancelAck) and cancel.outcome.confirmed
    assert isinstance(amend.outcome, ModifyAck) and amend.outcome.replaced_by == 4200
    assert isinstance(late_modify.outcome, OrderAlreadyClosed)
    assert late_modify.outcome.order_id == 43 and late_modify.outcome.code == "100004"
    assert c.unknown() == [blind]
    # evidence arriving later (a fill on the new socket) settles an UNKNOWN ticket at once
    fill = notice(
        notice="OrderMatched",
        orderId=8002,
        clientOrderId=blind.client_order_id,
        status="FILLED",
        matchId=1,
        matchPrice="30005",
        matchQuantity="0.001",
        orderMatchType="TAKER",
        remainQuantity="0",
        fees="0.01",
        feeInstrumentId="USD",
    )
    assert c.on_order_message(fill) == [blind]
    assert isinstance(blind.outcome, PlaceAck) and blind.outcome.order_id == 8002


def test_a_cancel_reply_is_only_acceptance_the_order_channel_decides() -> None:
    c = core()
    first, second = c.submit_many(CANCEL, [CancelOrder(MARKET, 61), CancelOrder(MARKET, 61)])
    b = batch(c)
    assert settle_reply(c, reply(b, 0)) is None and first.state is TicketState.ACCEPTED
    assert settle_reply(c, reply(b, 1)) is None and second.state is TicketState.ACCEPTED
    closed = notice(orderId=61, status="CANCELED_BY_USER", notice="OrderClosed", clientOrderId=3)
    assert c.on_order_message(closed) == [first]  # the oldest cancel closed it
    assert isinstance(first.outcome, CancelAck) and first.outcome.confirmed
    assert first.outcome.reply is not None and first.outcome.client_order_id == 3
    assert c.on_order_message(failure("CANCEL", 61)) == [second]
    assert isinstance(second.outcome, OrderAlreadyClosed)
    assert second.outcome.close_reason is OrderStatus.CANCELED_BY_USER


def test_a_cancel_of_a_filled_order_learns_the_close_reason() -> None:
    c = core()
    fill = notice(
        notice="OrderMatched",
        orderId=71,
        status="FILLED",
        matchId=1,
        matchPrice="30000",
        matchQuantity="0.001",
        orderMatchType="MAKER",
        remainQuantity="0",
        fees="0.01",
        feeInstrumentId="USD",
    )
    cancel = c.submit(CANCEL, CancelOrder(MARKET, 71))
    b = batch(c)
    assert c.on_order_message(fill) == []  # a fill does not answer the cancel
    assert settle_reply(c, reply(b, 0)) is None
    assert c.on_order_message(failure("CANCEL", 71)) == [cancel]
    assert isinstance(cancel.outcome, OrderAlreadyClosed)
    assert cancel.outcome.close_reason is OrderStatus.FILLED
    assert isinstance(cancel.outcome, OrderNotFoundError)


def test_notices_before_the_reply_wait_for_it_and_a_refusal_hands_them_on() -> None:
    c = core()
    first, second = c.submit_many(
        MODIFY,
        [
            ModifyOrder(MARKET, 80, quantity=D("0.0005")),
            ModifyOrder(MARKET, 80, quantity=D("0.0004")),
        ],
    )
    b = batch(c)
    modified = notice(notice="OrderModified", orderId=80, quantity="0.0005")
    assert c.on_order_message(modified) == []  # fits both; lent to the oldest, pending its reply
    assert first.evidence is not None and second.evidence is None
    # The first was refused after all: the notice was the second's.
    assert settle_reply(c, reply(b, 0, ok=False, code="20006")) is first
    assert second.evidence is not None
    assert settle_reply(c, reply(b, 1)) is second
    assert isinstance(second.outcome, ModifyAck) and second.outcome.replaced_by is None
    assert second.outcome.reply is not None


def test_a_modify_storm_settles_each_modify_with_its_own_evidence() -> None:
    c = core()
    prices = [30100, 30200, 30300]
    storm = c.submit_many(MODIFY, [ModifyOrder(MARKET, 90, price=D(p)) for p in prices])
    b = batch(c)
    for i in range(3):
        settle_reply(c, reply(b, i))
    # The exchange applies the first (a replacement), the others find 90 closed.
    c.on_order_message(
        notice(orderId=90, clientOrderId=5, status="CANCELED_BY_AMEND", notice="OrderClosed")
    )
    assert c.on_order_message(notice(orderId=91, clientOrderId=5, price="30100")) == [storm[0]]
    assert c.on_order_message(failure("AMEND", 90, price=30200)) == [storm[1]]
    assert c.on_order_message(failure("AMEND", 90, price=30300)) == [storm[2]]
    assert isinstance(storm[0].outcome, ModifyAck) and storm[0].outcome.replaced_by == 91
    for later in storm[1:]:
        assert isinstance(later.outcome, OrderAlreadyClosed)
        assert later.outcome.close_reason is OrderStatus.CANCELED_BY_AMEND
    # A replacement that fits no request (another's) proves nothing for this one.
    stray = c.submit(MODIFY, ModifyOrder(MARKET, 91, price=D(30500)))
    batch(c, tag=2)
    c.on_order_message(
        notice(orderId=91, clientOrderId=5, status="CANCELED_BY_AMEND", notice="OrderClosed")
    )
    assert c.on_order_message(notice(orderId=92, clientOrderId=5, price="30400")) == []
    assert stray.state is TicketState.SENT and stray.evidence is None


def test_evidence_that_could_belong_to_requests_on_two_sockets_is_unknown() -> None:
    c = core()
    old = c.submit(CANCEL, CancelOrder(MARKET, 95))
    batch(c, tag=1)
    c.connection_lost(0.0)
    new = c.submit(CANCEL, CancelOrder(MARKET, 95))
    batch(c, tag=2)
    closed = notice(orderId=95, status="CANCELED_BY_USER", notice="OrderClosed")
    assert set(c.on_order_message(closed)) == {old, new}
    assert isinstance(old.outcome, OrderOutcomeUnknown)
    assert isinstance(new.outcome, OrderOutcomeUnknown)


def test_a_notice_stamped_before_a_request_was_written_is_not_its_evidence() -> None:
    c = core()
    cancel = c.submit(CANCEL, CancelOrder(MARKET, 96))
    b = batch(c)
    early = notice(
        orderId=96, status="CANCELED_BY_USER", notice="OrderClosed", timestamp=WALL - 5000
    )
    assert c.on_order_message(early) == [] and cancel.evidence is None
    assert c.on_order_message(failure("CANCEL", 96)) == []  # still waiting for the reply
    assert settle_reply(c, reply(b, 0)) is cancel
    assert isinstance(cancel.outcome, OrderAlreadyClosed)
    assert cancel.outcome.close_reason is OrderStatus.CANCELED_BY_USER


def test_confirm_false_answers_at_the_reply_and_keeps_its_evidence() -> None:
    c = core()
    quick = c.submit(CANCEL, CancelOrder(MARKET, 97), confirm=False)
    waiting = c.submit(CANCEL, CancelOrder(MARKET, 97))
    b = batch(c)
    assert settle_reply(c, reply(b, 0)) is quick
    assert isinstance(quick.early, CancelAck) and not quick.early.confirmed
    assert quick.state is TicketState.ACCEPTED  # still the oldest cancel on 97
    settle_reply(c, reply(b, 1))
    c.on_order_message(notice(orderId=97, status="CANCELED_BY_USER", notice="OrderClosed"))
    assert isinstance(quick.outcome, CancelAck) and quick.outcome.confirmed
    assert c.on_order_message(failure("CANCEL", 97)) == [waiting]
    assert isinstance(waiting.outcome, OrderAlreadyClosed)


def test_a_reply_without_order_id_waits_for_the_first_notice() -> None:
    c = core()
    place = c.submit(PLACE, limit())
    b = batch(c)
    echo = {k: v for k, v in items(b)[0].items()}
    old_style = decode(
        orjson.dumps(
            {
                "event": "placeorder",
                "submitted": True,
                "tag": b.tag,
                "data": {k: str(v) for k, v in echo.items()},
            }
        )
    )
    assert isinstance(old_style, OrderReply)
    assert settle_reply(c, old_style) is None and place.state is TicketState.ACCEPTED
    opened = notice(orderId=8100, clientOrderId=place.client_order_id)
    assert c.on_order_message(opened) == [place]
    assert isinstance(place.outcome, PlaceAck) and place.outcome.order_id == 8100
    assert place.outcome.reply is old_style


def test_an_overdue_confirmation_makes_the_request_unknown() -> None:
    c = core(reply_timeout=2.0)
    cancel = c.submit(CANCEL, CancelOrder(MARKET, 98))
    b = batch(c, now=0.0)
    settle_reply(c, reply(b, 0), now=0.5)
    assert c.next_deadline() == 2.0
    assert c.expire(2.0) == ([], [cancel])
    assert cancel.state is TicketState.UNKNOWN and cancel.reply is not None
    closed = notice(orderId=98, status="CANCELED_BY_USER", notice="OrderClosed")
    assert c.on_order_message(closed) == [cancel]
    assert isinstance(cancel.outcome, CancelAck) and cancel.outcome.reply is not None


def test_a_failed_send_makes_its_batch_unknown_not_requeued() -> None:
    c = core()
    tickets = c.submit_many(PLACE, [limit(1), limit(2)])
    b = batch(c)
    assert c.send_failed(b, 0.0) == []
    assert c.unknown() == tickets and c.queued == 0


def test_withdraw_only_takes_back_unsent_requests_and_close_settles_everything() -> None:
    c = core()
    sent = c.submit(PLACE, limit(1))
    batch(c)
    queued = c.submit(PLACE, limit(2))
    other = c.submit(CANCEL, CancelOrder(MARKET, 3))
    assert c.withdraw(sent, "x") is False
    assert c.withdraw(queued, "gave up") is True
    assert isinstance(queued.outcome, OrderNotApplied) and not queued.outcome.sent
    assert str(queued.outcome) == "gave up"
    done = c.close("the connection closed")
    assert done == [other, sent]
    assert isinstance(other.outcome, OrderNotApplied) and not other.outcome.sent
    assert isinstance(sent.outcome, OrderOutcomeUnknown)
    assert c.close("again") == []


# -- reconciliation rules ------------------------------------------------------------------------


def rest_open(order_id: int, *, cid: int | None = None, **kwargs: Any) -> OpenOrder:
    fields: dict[str, Any] = {
        "order_id": order_id,
        "market_code": MARKET,
        "client_order_id": cid,
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "quantity": D("0.002"),
        "remaining_quantity": D("0.002"),
        "price": D(30000),
        "order_created": 1,
        "time_in_force": TimeInForce.GTC,
    }
    fields.update(kwargs)
    return OpenOrder(**fields)


def record(order_id: int, status: OrderRecordStatus, *, cid: int | None = None) -> OrderRecord:
    return OrderRecord(
        status=status,
        order_id=order_id,
        client_order_id=cid,
        market_code=MARKET,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D("0.002"),
    )


def sent_ticket(action: OrderAction, request: Any) -> Ticket:
    c = core()
    ticket = c.submit(action, request)
    batch(c)
    return ticket


def test_place_outcome_finds_the_order_open_in_history_or_in_trades() -> None:
    ticket = sent_ticket(PLACE, limit(client_order_id=77))
    assert place_outcome(ticket) is None
    assert place_outcome(ticket, open_orders=[rest_open(5, cid=78)]) is None
    found = place_outcome(ticket, open_orders=[rest_open(9, cid=77), rest_open(5, cid=77)])
    assert found is not None and found.order_id == 5 and found.source is AckSource.REST
    closed = place_outcome(ticket, records=[record(6, OrderRecordStatus.CLOSED, cid=77)])
    assert closed is not None and closed.order_id == 6
    trade = AccountTrade(
        match_id=1,
        match_timestamp=1,
        market_code=MARKET,
        match_quantity=D("0.001"),
        match_price=D(30000),
        total=D(30),
        order_match_type=MatchType.TAKER,
        fees=D(0),
        order_id=12,
        side=Side.BUY,
        client_order_id=77,
    )
    filled = place_outcome(ticket, trades=[trade])
    assert filled is not None and filled.order_id == 12


def closed_record(
    order_id: int, status: OrderRecordStatus, *, cid: int | None = None, at: int | None = None
) -> OrderRecord:
    return attrs.evolve(record(order_id, status, cid=cid), order_closed_timestamp=at)


@pytest.mark.parametrize("final", [True, False])
def test_cancel_outcome(final: bool) -> None:
    ticket = sent_ticket(CANCEL, CancelOrder(MARKET, 31))
    still_open = cancel_outcome(ticket, open_orders=[rest_open(31)], records=[], final=final)
    # A cancel carries no window: never "not applied" while its order is open.
    assert isinstance(still_open, OrderOutcomeUnknown if final else KeepLooking)
    late = WALL + 500
    closed = cancel_outcome(
        ticket,
        open_orders=[],
        records=[closed_record(31, OrderRecordStatus.CLOSED, cid=4, at=late)],
        final=final,
    )
    assert isinstance(closed, CancelAck) and closed.client_order_id == 4
    assert closed.source is AckSource.REST and closed.confirmed
    filled = cancel_outcome(
        ticket, open_orders=[], records=[record(31, OrderRecordStatus.MATCHED)], final=final
    )
    assert isinstance(filled, OrderAlreadyClosed) and filled.close_reason is OrderStatus.FILLED
    before = cancel_outcome(
        ticket,
        open_orders=[],
        records=[closed_record(31, OrderRecordStatus.CLOSED, at=WALL - 5000)],
        final=final,
        margin_ms=1000,
    )
    assert isinstance(before, OrderAlreadyClosed)
    amended = cancel_outcome(
        ticket,
        open_orders=[],
        records=[
            closed_record(31, OrderRecordStatus.CLOSED, cid=4, at=late),
            record(33, OrderRecordStatus.OPENED, cid=4),
        ],
        final=final,
    )
    assert isinstance(amended, OrderAlreadyClosed)
    assert amended.close_reason is OrderStatus.CANCELED_BY_AMEND
    known = ClosedOrder(status=OrderStatus.CANCELED_BY_USER, timestamp=late, claimed=True)
    twice = cancel_outcome(ticket, open_orders=[], records=[], final=final, known=known)
    assert isinstance(twice, OrderAlreadyClosed)
    assert twice.close_reason is OrderStatus.CANCELED_BY_USER
    shared = cancel_outcome(
        ticket,
        open_orders=[],
        records=[closed_record(31, OrderRecordStatus.CLOSED, at=late)],
        final=final,
        others=True,
    )
    assert isinstance(shared, KeepLooking)
    unknown = cancel_outcome(ticket, open_orders=[], records=[], final=final)
    assert isinstance(unknown, OrderNotApplied if final else KeepLooking)


@pytest.mark.parametrize("provable", [True, False])
def test_modify_outcome(provable: bool) -> None:
    ticket = sent_ticket(MODIFY, ModifyOrder(MARKET, 40, quantity=D("0.001")))
    in_place = rest_open(40, remaining_quantity=D("0.001"), quantity=D("0.001"))
    # Changed to the request after it was written: it was this modify (no other on the order).
    touched = attrs.evolve(in_place, last_modified=WALL + 200)
    done = modify_outcome(ticket, open_orders=[touched], records=[], provable=provable)
    assert isinstance(done, ModifyAck) and done.replaced_by is None
    shared = modify_outcome(
        ticket, open_orders=[touched], records=[], provable=provable, others=True
    )
    assert isinstance(shared, KeepLooking)
    # Already so before it was written: not this modify's doing.
    untouched = attrs.evolve(in_place, last_modified=WALL - 5000)
    stale = modify_outcome(ticket, open_orders=[untouched], records=[], provable=provable)
    assert isinstance(stale, OrderNotApplied if provable else KeepLooking)
    unchanged = modify_outcome(ticket, open_orders=[rest_open(40)], records=[], provable=provable)
    # No trace proves "not applied" only once the window has provably closed.
    assert isinstance(unchanged, OrderNotApplied if provable else KeepLooking)
    less = rest_open(40, remaining_quantity=D("0.0005"))
    filled_since = modify_outcome(ticket, open_orders=[less], records=[], provable=provable)
    assert isinstance(filled_since, OrderOutcomeUnknown if provable else KeepLooking)
    moved = sent_ticket(MODIFY, ModifyOrder(MARKET, 40, price=D(30100)))
    records = [
        attrs.evolve(record(40, OrderRecordStatus.CLOSED, cid=3), price=D(30000)),
        attrs.evolve(record(44, OrderRecordStatus.OPENED, cid=3), price=D(30100)),
        record(39, OrderRecordStatus.CLOSED, cid=3),
    ]
    replaced = modify_outcome(moved, open_orders=[], records=records, provable=provable)
    assert isinstance(replaced, ModifyAck) and replaced.replaced_by == 44
    # Another request on the order could have opened the replacement: no lending.
    shared = modify_outcome(moved, open_orders=[], records=records, provable=provable, others=True)
    assert isinstance(shared, KeepLooking)
    claimed = ClosedOrder(status=OrderStatus.CANCELED_BY_AMEND, timestamp=WALL + 1, claimed=True)
    other = modify_outcome(moved, open_orders=[], records=records, provable=provable, known=claimed)
    assert isinstance(other, KeepLooking)  # replaced by another: this one may have come first
    before = attrs.evolve(claimed, timestamp=WALL - 5000)
    late = modify_outcome(
        moved, open_orders=[], records=records, provable=provable, known=before, margin_ms=1000
    )
    assert isinstance(late, OrderAlreadyClosed)
    # Closed otherwise: a price change would have closed it by amend, so it never applied.
    gone = modify_outcome(moved, open_orders=[], records=records[:1], provable=provable)
    assert isinstance(gone, OrderAlreadyClosed) and gone.close_reason is None
    shrink_closed = modify_outcome(ticket, open_orders=[], records=records[:1], provable=provable)
    assert isinstance(shrink_closed, KeepLooking)  # it may have shrunk the order before
    # Filled for good: whether the modify shrank it first, no later lookup can tell.
    filled = attrs.evolve(
        record(40, OrderRecordStatus.CLOSED, cid=3), status=OrderRecordStatus.MATCHED
    )
    shrink_filled = modify_outcome(ticket, open_orders=[], records=[filled], provable=provable)
    assert isinstance(shrink_filled, OrderOutcomeUnknown)
    nothing = modify_outcome(ticket, open_orders=[], records=[], provable=provable)
    assert isinstance(nothing, OrderNotApplied if provable else KeepLooking)


def test_a_ticket_repr_names_its_number_action_and_stage() -> None:
    # (What an ack carries is checked against the exchange: tests/test_outbox.py.)
    assert repr(sent_ticket(PLACE, limit())).startswith("<Ticket #1 placeorder sent>")


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        OutboxConfig(max_batch_size=21)
    with pytest.raises(ValueError):
        OutboxConfig(orders_per_second=0)
    with pytest.raises(ValueError):
        OutboxConfig(max_message_length=5000)
    assert OutboxConfig(orders_per_second=None).orders_per_second is None
