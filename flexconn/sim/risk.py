"""Margin and risk of the simulated accounts: reservations, affordability, exposure, liquidation.

The rules (the engine's design note tells how orders use them): spot BUY orders reserve
``price * quantity * (1 + max(maker_fee, taker_fee))`` of the counter currency, SELL orders the
base quantity; derivative orders reserve ``initial_margin * price * quantity`` of the margin
currency on either side. A spot order is refused (710006) unless the available balance covers its
reservation; a derivative order (710005) unless ``total - reserved + unrealized P&L - initial
margin of open positions`` does, and (710004) if the account's net position plus its open orders
on that side could exceed the market's ``position_limit``. A position is due for liquidation when
its account's equity in the margin currency falls to the position's maintenance margin (half the
initial margin) at the mark price.

Everything here reads the engine's state and changes none of it; marks come from the engine's
``mark`` callable, and arithmetic runs under whatever decimal context the engine set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Final

from flexconn.sim.accounts import AccountInfo, AccountState
from flexconn.sim.markets import MarketSpec
from flexconn.sim.orders import EngineReject, LiveOrder

__all__ = ["Risk"]

_ZERO: Final = Decimal(0)


def _fmt(amount: Decimal) -> str:
    """A plain rendering for messages: no exponent, no trailing zeros."""
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class Risk:
    """The margin rules over a set of markets.

    Args:
        markets: the markets by code.
        mark: the mark price of a market, by code.
        reserve_rate: what a spot BUY reserves per unit of value (``1 + `` the higher fee).
    """

    def __init__(
        self,
        markets: Mapping[str, MarketSpec],
        mark: Callable[[str], Decimal],
        reserve_rate: Decimal,
    ) -> None:
        self._markets = markets
        self._mark = mark
        self._reserve_rate = reserve_rate

    def reservation(self, spec: MarketSpec, is_buy: bool, ticks: int) -> tuple[str, Decimal]:
        """The instrument an order reserves and how much per lot at ``ticks``."""
        unit_value = ticks * spec.tick_size * spec.qty_increment
        if spec.is_derivative:
            return spec.margin_currency, unit_value * spec.initial_margin
        if is_buy:
            return spec.counter, unit_value * self._reserve_rate
        return spec.base, spec.qty_increment

    def check_affordable(
        self,
        account: AccountState,
        spec: MarketSpec,
        is_buy: bool,
        lots: int,
        amount: Decimal,
        replacing: LiveOrder | None,
    ) -> None:
        """Refuse an order whose reservation ``amount`` the account cannot carry; an order
        being ``replacing``-ed by a modify counts as already released.

        Raises:
            EngineReject: ``710006`` spot balance, ``710004`` position limit, ``710005`` margin.
        """
        if spec.is_derivative:
            instrument = spec.margin_currency
        else:
            instrument = spec.counter if is_buy else spec.base
        freed = _ZERO
        if replacing is not None and replacing.reserve_instrument == instrument:
            freed = replacing.reserved
        if not spec.is_derivative:
            balance = account.available(instrument) + freed
            if balance < amount:
                raise EngineReject(
                    "710006",
                    f"FAILED balance check as balance ({_fmt(balance)}) < value ({_fmt(amount)})",
                )
            return
        if spec.position_limit is not None:
            open_lots = account.open_lots.get((spec.market_code, is_buy), 0)
            if replacing is not None and replacing.is_buy == is_buy:
                open_lots -= replacing.remaining_lots
            state = account.positions.get(spec.market_code)
            held = 0 if state is None else state.lots
            worst = held + open_lots + lots if is_buy else held - open_lots - lots
            position = abs(worst) * spec.qty_increment
            if position > spec.position_limit:
                raise EngineReject(
                    "710004",
                    f"FAILED net position check as position ({_fmt(position)}) > threshold "
                    f"({_fmt(spec.position_limit)})",
                )
        unrealized, position_margin = self.exposure(account, instrument)
        collateral = account.available(instrument) + freed + unrealized - position_margin
        if collateral < amount:
            raise EngineReject(
                "710005",
                f"FAILED margin check as collateral ({_fmt(collateral)}) < var ({_fmt(amount)})",
            )

    def exposure(self, account: AccountState, margin_currency: str) -> tuple[Decimal, Decimal]:
        """Unrealized P&L and initial margin of the account's positions margined in
        ``margin_currency``."""
        unrealized = _ZERO
        margin = _ZERO
        for code, state in account.positions.items():
            if not state.lots:
                continue
            spec = self._markets[code]
            if spec.margin_currency != margin_currency:
                continue
            mark = self._mark(code)
            unrealized += state.unrealized(spec, mark)
            margin += abs(state.lots) * spec.qty_increment * mark * spec.initial_margin
        return unrealized, margin

    def equity(self, account: AccountState, margin_currency: str) -> Decimal:
        """The account's balance in ``margin_currency`` plus the unrealized P&L of every
        position margined in it."""
        unrealized, _ = self.exposure(account, margin_currency)
        return account.totals.get(margin_currency, _ZERO) + unrealized

    def liquidatable(self, accounts: Mapping[str, AccountState]) -> list[tuple[str, str]]:
        """Every ``(account, market)`` whose position has reached its liquidation price, sorted
        by account, then market."""
        due: list[tuple[str, str]] = []
        for account_id in sorted(accounts):
            account = accounts[account_id]
            equity: dict[str, Decimal] = {}
            for code in sorted(account.positions):
                state = account.positions[code]
                if not state.lots:
                    continue
                spec = self._markets[code]
                currency = spec.margin_currency
                if currency not in equity:
                    equity[currency] = self.equity(account, currency)
                size = abs(state.lots) * spec.qty_increment
                maintenance = size * self._mark(code) * spec.initial_margin / 2
                if equity[currency] <= maintenance:
                    due.append((account_id, code))
        return due

    def account_info(self, account: AccountState, margin_currency: str, now: int) -> AccountInfo:
        """Account-level margin figures (see :class:`AccountInfo`)."""
        total = _ZERO
        for instrument, amount in account.totals.items():
            if instrument == margin_currency:
                total += amount
            else:
                code = f"{instrument}-{margin_currency}"
                spot = self._markets.get(code)
                if spot is not None and not spot.is_derivative:
                    total += amount * self._mark(code)
        unrealized, position_margin = self.exposure(account, margin_currency)
        order_margin = sum(
            (
                o.reserved
                for o in account.orders.values()
                if o.spec.is_derivative and o.reserve_instrument == margin_currency
            ),
            _ZERO,
        )
        collateral = total + unrealized
        margin = position_margin + order_margin
        return AccountInfo(
            account_id=account.account_id,
            margin_currency=margin_currency,
            total_balance=total,
            collateral_balance=collateral,
            available_balance=account.available(margin_currency) + unrealized - position_margin,
            portfolio_var_margin=margin,
            risk_ratio=(collateral / margin).quantize(Decimal("0.0001")) if margin else None,
            timestamp=now,
        )
