"""The outcome checker itself: it accepts true outcomes and names every kind of lie.

The chaos scenarios prove something only if :func:`chaos.helpers.check_outcomes` rejects a false
outcome. Here a real engine runs the commands (no network), :class:`ExchangeLedger` records them,
and each case pairs one request with an outcome, true or false, for the checker to judge.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from decimal import Decimal

import attrs
import pytest

from chaos.helpers import ExchangeLedger, OrderRequest, check_outcomes
from flexconn.errors import (
    OrderAlreadyClosed,
    OrderNotApplied,
    OrderOutcomeUnknown,
    PriceBoundError,
)
from flexconn.models.enums import OrderStatus, OrderType, Side, TimeInForce
from flexconn.models.orders import CancelOrder, LimitOrder, ModifyOrder
from flexconn.outbox import CancelAck, ModifyAck, PlaceAck
from flexconn.sim.engine import Engine
from flexconn.sim.exchange import DEFAULT_DEMO_BALANCES
from flexconn.sim.orders import EngineReject

MARKET = "BTC-USD-SWAP-LIN"
ME = "1001"
TAKER = "2002"
LOT = Decimal("0.001")


@attrs.define
class World:
    """An engine with two accounts, recorded for ``ME``."""

    engine: Engine
    ledger: ExchangeLedger

    def place(self, cid: int, price: int = 49_000, lots: int = 4) -> int:
        order = self.engine.place(
            ME,
            market_code=MARKET,
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=LOT * lots,
            price=Decimal(price),
            client_order_id=cid,
        )
        return order.order_id

    def fill(self, price: int = 49_000, lots: int = 4) -> None:
        self.engine.place(
            TAKER,
            market_code=MARKET,
            side=Side.SELL,
            order_type=OrderType.LIMIT,
            quantity=LOT * lots,
            price=Decimal(price),
            time_in_force=TimeInForce.IOC,
        )

    def cancel(self, order_id: int) -> None:
        with suppress(EngineReject):
            self.engine.cancel(ME, MARKET, order_id)

    def modify(
        self, order_id: int, *, price: Decimal | None = None, quantity: Decimal | None = None
    ) -> int | None:
        try:
            return self.engine.modify(ME, MARKET, order_id, price=price, quantity=quantity).order_id
        except EngineReject:
            return None


def world() -> World:
    engine = Engine()
    engine.open_account(ME, DEFAULT_DEMO_BALANCES)
    engine.open_account(TAKER, DEFAULT_DEMO_BALANCES)
    return World(engine, ExchangeLedger.watch(engine, ME, clock=lambda: 0.0))


def place_request(cid: int, outcome: object, origin: str | None = None) -> OrderRequest:
    request = OrderRequest(
        kind="place", label=f"place {cid}", market_code=MARKET, client_order_id=cid, origin=origin
    )
    request.outcomes.append(outcome)
    return request


def cancel_request(order_id: int, outcome: object) -> OrderRequest:
    request = OrderRequest(kind="cancel", label="cancel", market_code=MARKET, order_id=order_id)
    request.outcomes.append(outcome)
    return request


def modify_request(
    order_id: int,
    outcome: object,
    *,
    price: Decimal | None = None,
    quantity: Decimal | None = None,
) -> OrderRequest:
    request = OrderRequest(
        kind="modify",
        label="modify",
        market_code=MARKET,
        order_id=order_id,
        price=price,
        quantity=quantity,
    )
    request.outcomes.append(outcome)
    return request


def place_ack(cid: int, order_id: int) -> PlaceAck:
    order = LimitOrder(MARKET, Side.BUY, LOT, Decimal(1), client_order_id=cid)
    return PlaceAck(order=order, order_id=order_id)


def cancel_ack(order_id: int, *, confirmed: bool = True) -> CancelAck:
    return CancelAck(order=CancelOrder(MARKET, order_id), confirmed=confirmed)


def modify_ack(
    order_id: int,
    replaced_by: int | None,
    *,
    price: Decimal | None = None,
    quantity: Decimal | None = None,
) -> ModifyAck:
    order = ModifyOrder(MARKET, order_id, price=price, quantity=quantity)
    return ModifyAck(order=order, replaced_by=replaced_by)


def placed(w: World) -> list[OrderRequest]:
    return [place_request(1, place_ack(1, w.place(1)))]


def not_applied_but_placed(w: World) -> list[OrderRequest]:
    w.place(1)
    return [place_request(1, OrderNotApplied("no trace", sent=True))]


def refused_but_placed(w: World) -> list[OrderRequest]:
    w.place(1)
    return [place_request(1, PriceBoundError("710002", "out of bounds"))]


def acked_with_another_order_id(w: World) -> list[OrderRequest]:
    other = w.place(2)
    w.place(1)
    return [place_request(1, place_ack(1, other))]


def resent_after_a_false_not_applied(w: World) -> list[OrderRequest]:
    first, again = w.place(1), w.place(2)
    del first
    return [
        place_request(1, OrderNotApplied("no trace", sent=True)),
        place_request(2, place_ack(2, again), origin="place 1"),
    ]


def resent_after_a_true_not_applied(w: World) -> list[OrderRequest]:
    again = w.place(2)
    return [
        place_request(1, OrderNotApplied("window closed, no trace", sent=True)),
        place_request(2, place_ack(2, again), origin="place 1"),
    ]


def cancelled(w: World) -> list[OrderRequest]:
    order_id = w.place(1)
    w.cancel(order_id)
    return [cancel_request(order_id, cancel_ack(order_id))]


def cancel_acked_for_a_filled_order(w: World) -> list[OrderRequest]:
    order_id = w.place(1)
    w.fill()
    w.cancel(order_id)
    return [cancel_request(order_id, cancel_ack(order_id))]


def cancel_accepted_only_for_a_filled_order(w: World) -> list[OrderRequest]:
    order_id = w.place(1)
    w.fill()
    w.cancel(order_id)
    return [cancel_request(order_id, cancel_ack(order_id, confirmed=False))]


def already_closed_filled(w: World) -> list[OrderRequest]:
    order_id = w.place(1)
    w.fill()
    w.cancel(order_id)
    return [cancel_request(order_id, OrderAlreadyClosed(order_id, OrderStatus.FILLED))]


def already_closed_with_the_wrong_reason(w: World) -> list[OrderRequest]:
    order_id = w.place(1)
    w.fill()
    return [cancel_request(order_id, OrderAlreadyClosed(order_id, OrderStatus.CANCELED_BY_USER))]


def already_closed_but_open(w: World) -> list[OrderRequest]:
    order_id = w.place(1)
    return [cancel_request(order_id, OrderAlreadyClosed(order_id, None))]


def already_closed_by_this_very_cancel(w: World) -> list[OrderRequest]:
    order_id = w.place(1)
    w.cancel(order_id)
    return [cancel_request(order_id, OrderAlreadyClosed(order_id, OrderStatus.CANCELED_BY_USER))]


def cancelled_twice(w: World) -> list[OrderRequest]:
    order_id = w.place(1)
    w.cancel(order_id)
    w.cancel(order_id)
    return [
        cancel_request(order_id, cancel_ack(order_id)),
        cancel_request(order_id, OrderAlreadyClosed(order_id, OrderStatus.CANCELED_BY_USER)),
    ]


def both_cancels_acked(w: World) -> list[OrderRequest]:
    order_id = w.place(1)
    w.cancel(order_id)
    w.cancel(order_id)
    return [cancel_request(order_id, cancel_ack(order_id)) for _ in range(2)]


def cancel_not_applied_after_sending(w: World) -> list[OrderRequest]:
    order_id = w.place(1)
    return [cancel_request(order_id, OrderNotApplied("still open", sent=True))]


def cancel_unknown_then_applied(w: World) -> list[OrderRequest]:
    order_id = w.place(1)
    w.cancel(order_id)
    return [cancel_request(order_id, OrderOutcomeUnknown("socket died"))]


def replaced(w: World) -> list[OrderRequest]:
    order_id = w.place(1)
    price = Decimal(49_010)
    new = w.modify(order_id, price=price)
    return [modify_request(order_id, modify_ack(order_id, new, price=price), price=price)]


def replaced_but_acked_in_place(w: World) -> list[OrderRequest]:
    order_id = w.place(1)
    price = Decimal(49_010)
    w.modify(order_id, price=price)
    return [modify_request(order_id, modify_ack(order_id, None, price=price), price=price)]


def replaced_by_another_modify_s_replacement(w: World) -> list[OrderRequest]:
    order_id = w.place(1)
    first, second = Decimal(49_010), Decimal(49_020)
    new = w.modify(order_id, price=first)
    w.modify(order_id, price=second)  # the order is gone: refused
    return [
        modify_request(order_id, modify_ack(order_id, new, price=first), price=first),
        modify_request(order_id, modify_ack(order_id, new, price=second), price=second),
    ]


def modify_storm_told_truly(w: World) -> list[OrderRequest]:
    order_id = w.place(1, lots=6)
    lower, price = LOT * 3, Decimal(49_020)
    w.modify(order_id, quantity=lower)
    new = w.modify(order_id, price=price)
    w.modify(order_id, quantity=LOT * 2)
    return [
        modify_request(order_id, modify_ack(order_id, None, quantity=lower), quantity=lower),
        modify_request(order_id, modify_ack(order_id, new, price=price), price=price),
        modify_request(
            order_id,
            OrderAlreadyClosed(order_id, OrderStatus.CANCELED_BY_AMEND),
            quantity=LOT * 2,
        ),
    ]


def modify_not_applied_but_applied(w: World) -> list[OrderRequest]:
    order_id = w.place(1, lots=6)
    lower = LOT * 3
    w.modify(order_id, quantity=lower)
    return [modify_request(order_id, OrderNotApplied("unchanged", sent=True), quantity=lower)]


def no_outcome(w: World) -> list[OrderRequest]:
    w.place(1)
    return [OrderRequest(kind="place", label="lost", market_code=MARKET, client_order_id=1)]


def two_outcomes(w: World) -> list[OrderRequest]:
    request = place_request(1, place_ack(1, w.place(1)))
    request.outcomes.append(OrderOutcomeUnknown("again"))
    return [request]


def outside_the_model(w: World) -> list[OrderRequest]:
    w.place(1)
    return [place_request(1, TimeoutError("reply timeout"))]


TRUE: list[Callable[[World], list[OrderRequest]]] = [
    placed,
    resent_after_a_true_not_applied,
    cancelled,
    cancel_accepted_only_for_a_filled_order,
    already_closed_filled,
    cancelled_twice,
    cancel_unknown_then_applied,
    replaced,
    modify_storm_told_truly,
]

FALSE: list[tuple[Callable[[World], list[OrderRequest]], str]] = [
    (not_applied_but_placed, "say theirs did nothing"),
    (refused_but_placed, "say theirs did nothing"),
    (acked_with_another_order_id, "the engine opened"),
    (resent_after_a_false_not_applied, "duplicate orders"),
    (cancel_acked_for_a_filled_order, "no cancel of it was applied"),
    (already_closed_with_the_wrong_reason, "close_reason"),
    (already_closed_but_open, "shows it open"),
    (already_closed_by_this_very_cancel, "say theirs did nothing"),
    (both_cancels_acked, "2 requests were confirmed by 1"),
    (cancel_not_applied_after_sending, "never 'not applied'"),
    (replaced_but_acked_in_place, "replaced_by=None"),
    (replaced_by_another_modify_s_replacement, "the engine applied no such modify"),
    (modify_not_applied_but_applied, "say theirs did nothing"),
    (no_outcome, "0 outcomes"),
    (two_outcomes, "2 outcomes"),
    (outside_the_model, "not an outcome of the model"),
]


@pytest.mark.parametrize("case", TRUE, ids=lambda case: case.__name__)
def test_true_outcomes_pass(case: Callable[[World], list[OrderRequest]]) -> None:
    w = world()
    check_outcomes(case(w), w.ledger)


@pytest.mark.parametrize(("case", "complaint"), FALSE, ids=[case.__name__ for case, _ in FALSE])
def test_each_lie_is_named(case: Callable[[World], list[OrderRequest]], complaint: str) -> None:
    w = world()
    with pytest.raises(AssertionError, match="contradict the exchange") as caught:
        check_outcomes(case(w), w.ledger)
    assert complaint in str(caught.value)
