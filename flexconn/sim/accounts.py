"""Accounts of the simulated exchange: balances, reservations, positions and trade history.

Design note: balances are exact ``Decimal`` totals per instrument with a separate reserved
amount (available = total - reserved). Positions are kept in integer lots with an integer cost
(sum of ``price_ticks * lots`` of the open part), so realized P&L is exact: a reducing fill
realizes ``fill value - removed cost``, and the removed cost is rounded to whole units only on
partial closes, the remainder being realized when the position goes flat. Across all accounts
the realized P&L plus each position's ``quantity * mark - cost`` therefore sums to zero, which is
what keeps the simulator's money conserved.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

import attrs

from flexconn.models.enums import MatchType, OrderType, Side
from flexconn.sim.markets import MarketSpec
from flexconn.sim.orders import LiveOrder, Order

__all__ = [
    "AccountInfo",
    "AccountState",
    "AccountTrade",
    "Balance",
    "Position",
    "PositionState",
]

_ZERO = Decimal(0)
_PRICE_QUANTUM = Decimal("1e-8")


@attrs.frozen(kw_only=True)
class Balance:
    """One instrument of an account: ``available`` is ``total - reserved``."""

    instrument: str
    total: Decimal
    reserved: Decimal
    available: Decimal
    updated: int


@attrs.frozen(kw_only=True)
class Position:
    """An account's net position in one derivative market.

    ``position_pnl`` is unrealized P&L against the market's mark price; ``realized_pnl`` the sum
    already credited to the margin-currency balance. A position that went flat stays listed with
    quantity zero.
    """

    market_code: str
    quantity: Decimal
    entry_price: Decimal
    position_pnl: Decimal
    realized_pnl: Decimal
    margin_currency: str
    updated: int
    contract_val_currency: str = ""
    est_liquidation_price: Decimal = _ZERO


@attrs.frozen(kw_only=True)
class AccountTrade:
    """One fill of one of the account's orders (``match_id`` is shared with the other side and
    with the public trade)."""

    match_id: int
    order_id: int
    client_order_id: int | None
    market_code: str
    side: Side
    price: Decimal
    quantity: Decimal
    fees: Decimal
    fee_instrument: str
    match_type: MatchType
    timestamp: int
    order_type: OrderType

    @property
    def trade_id(self) -> int:
        return self.match_id


@attrs.frozen(kw_only=True)
class AccountInfo:
    """Account-level margin figures in the margin currency (``/v2/accountinfo``).

    ``total_balance`` values every balance at its ``<instrument>-<margin currency>`` spot mark (an
    instrument without such a market counts as zero unless it is the margin currency);
    ``collateral_balance`` adds unrealized P&L; ``portfolio_var_margin`` is the initial margin of
    positions plus the margin reserved by open derivative orders; ``risk_ratio`` is
    collateral / margin, ``None`` when no margin is in use.
    """

    account_id: str
    margin_currency: str
    total_balance: Decimal
    collateral_balance: Decimal
    available_balance: Decimal
    portfolio_var_margin: Decimal
    risk_ratio: Decimal | None
    timestamp: int


class PositionState:
    """Net position of one account in one market, in lots and ``tick * lot`` cost units."""

    __slots__ = ("cost", "lots", "realized", "updated")

    def __init__(self) -> None:
        self.lots = 0
        self.cost = 0
        self.realized = 0
        self.updated = 0

    def fill(self, lots: int, price: int) -> int:
        """Apply a fill of ``lots`` (positive buys, negative sells) at ``price`` ticks and return
        the realized P&L in cost units."""
        held = self.lots
        if held == 0 or (held > 0) == (lots > 0):
            self.lots = held + lots
            self.cost += price * lots
            return 0
        closing = -held if abs(lots) >= abs(held) else lots
        removed = self.cost * abs(closing) // abs(held)
        realized = -(price * closing) - removed
        self.cost -= removed
        self.lots = held + closing
        self.realized += realized
        rest = lots - closing
        if rest:
            self.lots = rest
            self.cost = price * rest
        return realized

    def unrealized(self, spec: MarketSpec, mark: Decimal) -> Decimal:
        """``quantity * mark - cost`` in the margin currency."""
        if not self.lots:
            return _ZERO
        lot = spec.qty_increment
        return self.lots * lot * mark - self.cost * spec.tick_size * lot

    def record(self, spec: MarketSpec, mark: Decimal, equity: Decimal) -> Position:
        """The public view, with a liquidation estimate from the account's ``equity`` (margin
        balance plus all unrealized P&L) and a maintenance margin of half the initial margin."""
        lot = spec.qty_increment
        unit = spec.tick_size * lot
        entry = _ZERO
        liquidation = _ZERO
        if self.lots:
            whole, rest = divmod(self.cost, self.lots)
            if rest:
                entry = (self.cost * spec.tick_size / self.lots).quantize(_PRICE_QUANTUM)
            else:
                entry = whole * spec.tick_size
            qty = self.lots * lot
            maintenance = spec.initial_margin / 2
            if qty > 0:
                price = (qty * mark - equity) / (qty * (1 - maintenance))
            else:
                price = (equity - qty * mark) / (-qty * (1 + maintenance))
            liquidation = max(_ZERO, price.quantize(spec.tick_size))
        return Position(
            market_code=spec.market_code,
            quantity=self.lots * lot,
            entry_price=entry,
            position_pnl=self.unrealized(spec, mark),
            realized_pnl=self.realized * unit,
            margin_currency=spec.margin_currency,
            updated=self.updated,
            contract_val_currency=spec.contract_val_currency,
            est_liquidation_price=liquidation,
        )


class AccountState:
    """Everything the engine holds for one account."""

    __slots__ = (
        "account_id",
        "history",
        "open_lots",
        "orders",
        "positions",
        "reserved",
        "totals",
        "trades",
        "updated",
    )

    def __init__(
        self, account_id: str, balances: dict[str, Decimal], now: int, history: int
    ) -> None:
        self.account_id = account_id
        self.totals = dict(balances)
        self.reserved = dict.fromkeys(balances, _ZERO)
        self.updated = dict.fromkeys(balances, now)
        self.positions: dict[str, PositionState] = {}
        #: open orders (untriggered stops included) by order id
        self.orders: dict[int, LiveOrder] = {}
        #: open lots per (market, is_buy), for the net position check
        self.open_lots: dict[tuple[str, bool], int] = {}
        self.trades: deque[AccountTrade] = deque(maxlen=history)
        #: final snapshots of orders that closed or filled, oldest first
        self.history: deque[Order] = deque(maxlen=history)

    def available(self, instrument: str) -> Decimal:
        return self.totals.get(instrument, _ZERO) - self.reserved.get(instrument, _ZERO)

    def adjust(self, instrument: str, delta: Decimal, now: int) -> None:
        """Change the total of ``instrument`` by ``delta``."""
        totals = self.totals
        if instrument in totals:
            totals[instrument] += delta
        else:
            totals[instrument] = delta
            self.reserved[instrument] = _ZERO
        self.updated[instrument] = now

    def reserve(self, instrument: str, amount: Decimal, now: int) -> None:
        if instrument not in self.totals:
            self.totals[instrument] = _ZERO
            self.reserved[instrument] = _ZERO
        self.reserved[instrument] += amount
        self.updated[instrument] = now

    def balance(self, instrument: str) -> Balance:
        total = self.totals[instrument]
        reserved = self.reserved[instrument]
        return Balance(
            instrument=instrument,
            total=total,
            reserved=reserved,
            available=total - reserved,
            updated=self.updated[instrument],
        )

    def position(self, market_code: str) -> PositionState:
        state = self.positions.get(market_code)
        if state is None:
            state = self.positions[market_code] = PositionState()
        return state
