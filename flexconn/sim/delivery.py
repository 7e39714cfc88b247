"""Physical delivery of the simulated perpetual swaps: requests queued for the next auction.

An account asks to deliver part of its position in a perpetual; the request stays ``PENDING``
until the account cancels it (``CANCELLED``). Settlement at the hourly auction is not simulated.
A long position receives the base coin and pays the counter currency at the mark price of the
request; a short one the other way round. Requests may not add up (with the account's other
pending requests in that market) to more than the position.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Final

import attrs

from flexconn.sim.engine import Engine
from flexconn.sim.funding import HOUR_MS, hour_of
from flexconn.sim.orders import EngineReject

__all__ = ["CANCELLED", "PENDING", "Deliveries", "Delivery", "next_auction"]

PENDING: Final = "PENDING"
CANCELLED: Final = "CANCELLED"
_EXCEEDS: Final = "Invalid request data: qtyDeliver exceeds the deliverable position"


def next_auction(now_ms: int) -> int:
    """The time of the next hourly delivery auction after ``now_ms``."""
    return hour_of(now_ms) + HOUR_MS


@attrs.frozen(kw_only=True)
class Delivery:
    """One delivery request."""

    delivery_id: int
    account_id: str
    market_code: str
    #: the coin a long position receives (the market's base) and the currency it pays (counter)
    base: str
    counter: str
    long: bool
    quantity: Decimal
    price: Decimal
    created: int
    last_updated: int
    status: str = PENDING

    @property
    def receives(self) -> str:
        """The instrument the account receives."""
        return self.base if self.long else self.counter

    @property
    def receive_qty(self) -> Decimal:
        return self.quantity if self.long else self.price * self.quantity

    @property
    def pays(self) -> str:
        """The instrument the account pays."""
        return self.counter if self.long else self.base

    @property
    def pay_qty(self) -> Decimal:
        return self.price * self.quantity if self.long else self.quantity


class Deliveries:
    """Every delivery request made on ``engine``'s perpetuals, by id (oldest first)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._requests: dict[int, Delivery] = {}
        self._next_id = 1

    def __iter__(self) -> Iterator[Delivery]:
        return iter(self._requests.values())

    def _pending(self, market_code: str) -> Iterator[Delivery]:
        return (
            d
            for d in self._requests.values()
            if d.status == PENDING and d.market_code == market_code
        )

    def submit(self, account_id: str, market_code: str, quantity: Decimal, now_ms: int) -> Delivery:
        """Queue a request to deliver ``quantity`` of the account's position in a perpetual.

        Raises:
            EngineReject: ``20006`` the quantity is not a positive multiple of the market's
                quantity increment; ``40032`` it exceeds the position not yet being delivered.
        """
        spec = self._engine.markets[market_code]
        if quantity <= 0 or quantity % spec.qty_increment != 0:
            raise EngineReject("20006")
        position = self._engine.net_position(account_id, market_code)
        pending = sum(
            (d.quantity for d in self._pending(market_code) if d.account_id == account_id),
            Decimal(0),
        )
        if abs(position) < quantity + pending:
            raise EngineReject(
                "40032", "Invalid request data: qtyDeliver exceeds the deliverable position"
            )
        delivery = Delivery(
            delivery_id=self._next_id,
            account_id=account_id,
            market_code=market_code,
            base=spec.base,
            counter=spec.counter,
            long=position > 0,
            quantity=quantity,
            price=self._engine.mark_price(market_code),
            created=now_ms,
            last_updated=now_ms,
        )
        self._next_id += 1
        self._requests[delivery.delivery_id] = delivery
        return delivery

    def cancel(self, account_id: str, delivery_id: int, now_ms: int) -> bool:
        """Cancel the account's pending request; ``False`` when there is no such request."""
        delivery = self._requests.get(delivery_id)
        if delivery is None or delivery.status != PENDING or delivery.account_id != account_id:
            return False
        self._requests[delivery_id] = attrs.evolve(delivery, status=CANCELLED, last_updated=now_ms)
        return True

    def net_pending(self, market_code: str) -> Decimal:
        """Pending quantity to deliver in one perpetual: shorts' minus longs' (negative when the
        longs, who receive the coin, outweigh the shorts)."""
        return sum(
            (-d.quantity if d.long else d.quantity for d in self._pending(market_code)), Decimal(0)
        )
