"""The simulator's matching engine: pure, synchronous and deterministic.

The engine validates, matches and settles orders in every configured market, and records what
happened as events that the servers drain after each call. It never awaits, never reads the wall
clock except through the ``clock`` it is given, and given the same calls returns the same results.

Order lifecycle (the notices the order channel carries):

* Every accepted order emits ``OrderOpened`` first (takers too), then one ``OrderMatched`` per
  fill. A fully filled order ends there (status FILLED); an order that stops short emits
  ``OrderClosed`` with the reason: IOC (and MARKET) orders CANCELED_ALL_BY_IOC or
  CANCELED_PARTIAL_BY_IOC, FOK orders CANCELED_BY_FOK (they fill fully or not at all),
  MAKER_ONLY orders that would take CANCELED_BY_MAKER_ONLY. MAKER_ONLY_REPRICE orders that would
  take are re-priced one tick behind the opposite best and rest.
* MARKET orders behave as IOC (FOK if asked): with no liquidity they close at once with
  CANCELED_ALL_BY_IOC.
* STOP orders (stop-limit) wait outside the book; a BUY stop triggers when the best ask is at or
  above its stop price, a SELL stop when the best bid is at or below it (checked after every
  command, cascading). On triggering it emits a second ``OrderOpened`` with ``triggered`` true and
  then trades as a limit order at its limit price under its time in force.
* Each match emits the taker's ``OrderMatched``, the maker's ``OrderMatched``, then a
  ``PublicTrade``; all three share the match id.
* ``modify`` that only lowers the quantity keeps the order id and queue position
  (``OrderModified``); changing price or side, or raising the quantity, closes the order with
  CANCELED_BY_AMEND and opens a replacement LIMIT order with a new id, which may trade at once.

Self-trades are allowed: an account's order may match its own resting order; both sides are
settled and charged fees like any other match.

Money: see :mod:`flexconn.sim.accounts`. Fees are ``rate * price * quantity`` rounded down to
1e-8, charged in the market's fee instrument (counter currency for spot, margin currency for
derivatives) and added to :meth:`Engine.fees_collected`. Spot BUY orders reserve
``price * quantity * (1 + max(maker_fee, taker_fee))`` of the counter currency; SELL orders
reserve the base quantity. Derivative orders reserve ``initial_margin * price * quantity`` of
the margin currency on either side; MARKET orders reserve for the part the book can fill, valued
at the worst price the sweep reaches; STOP orders at their limit price. A reservation shrinks by
its per-lot amount on every fill and is released in full when the order closes. A derivative
order is refused (710005) unless ``total - reserved + unrealized P&L - initial margin of open
positions`` covers its reservation, and (710004) if the account's net position plus its open
orders on that side could exceed the market's ``position_limit``. These margin rules live in
:mod:`flexconn.sim.risk`.

Liquidation: :meth:`Engine.liquidatable` names the positions whose account equity has fallen to
their maintenance margin (half the initial margin) at the mark price, and
:meth:`Engine.liquidate` closes one (its orders in that market cancelled, then a MARKET IOC sweep
exempt from margin checks). The engine only provides the two steps; the exchange
(:mod:`flexconn.sim.liquidation`) decides when, announcing each on ``liquidationRFQ`` first.
There is no funding, delivery or auto-borrow.
"""

from __future__ import annotations

import functools
import heapq
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import (
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from types import MappingProxyType
from typing import Final, ParamSpec, TypeVar

import attrs

from flexconn.models.enums import MatchType, OrderStatus, OrderType, Side, TimeInForce
from flexconn.sim.accounts import (
    AccountInfo,
    AccountState,
    AccountTrade,
    Balance,
    Position,
    PositionState,
)
from flexconn.sim.book import BookSide
from flexconn.sim.marketdata import GRANULARITIES, Candle, Tape, Ticker, newest_within
from flexconn.sim.markets import DEFAULT_MARKETS, MarketSpec
from flexconn.sim.orders import (
    EngineEvent,
    EngineReject,
    LiveOrder,
    Order,
    OrderClosed,
    OrderMatched,
    OrderModified,
    OrderOpened,
    PublicTrade,
)
from flexconn.sim.risk import Risk

__all__ = [
    "GRANULARITIES",
    "AccountInfo",
    "AccountTrade",
    "Balance",
    "BookLevels",
    "Candle",
    "Engine",
    "EngineEvent",
    "EngineReject",
    "Order",
    "OrderClosed",
    "OrderMatched",
    "OrderModified",
    "OrderOpened",
    "Position",
    "PublicTrade",
    "Ticker",
]

_ZERO: Final = Decimal(0)
_FEE_QUANTUM: Final = Decimal("1e-8")
_MAX_CLIENT_ORDER_ID: Final = 9_223_372_036_854_775_807
# Sweep limits that let a MARKET order cross any price.
_MARKET_BUY_LIMIT: Final = sys.maxsize
_MARKET_SELL_LIMIT: Final = 0
_FIRST_ORDER_ID: Final = 1_000_000_000_001
_FIRST_MATCH_ID: Final = 2_000_000_000_001
# Quantities above this many lots are refused outright (20006).
_MAX_LOTS: Final = 10**18
# The engine's own arithmetic: wide enough that every sum and product of money it forms is
# exact, whatever decimal context the caller runs under.
_ARITHMETIC: Final = Context(
    prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _exact(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``method`` under the engine's decimal context."""

    @functools.wraps(method)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with localcontext(_ARITHMETIC):
            return method(*args, **kwargs)

    return run


def _wall_clock() -> int:
    return time.time_ns() // 1_000_000


@attrs.frozen(kw_only=True)
class BookLevels:
    """A book snapshot: ``(price, quantity)`` per level, best first; ``version`` increases on
    every change to the book (a new resting order, a fill, a cancel or an in-place modify)."""

    market_code: str
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    version: int


class _Market:
    """Engine state of one market."""

    __slots__ = (
        "asks",
        "bids",
        "buy_stops",
        "open_interest",
        "sell_stops",
        "spec",
        "tape",
        "unit",
        "version",
    )

    def __init__(self, spec: MarketSpec, max_trades: int) -> None:
        self.spec = spec
        self.unit = spec.tick_size * spec.qty_increment
        self.bids: BookSide[LiveOrder] = BookSide(is_bid=True)
        self.asks: BookSide[LiveOrder] = BookSide(is_bid=False)
        # Waiting stops as heaps of (trigger key, order id, order): BUY stops by stop price
        # ascending, SELL stops by stop price descending. Cancelled entries are skipped lazily.
        self.buy_stops: list[tuple[int, int, LiveOrder]] = []
        self.sell_stops: list[tuple[int, int, LiveOrder]] = []
        self.version = 0
        self.open_interest = 0
        self.tape = Tape(spec, max_trades=max_trades)

    def side(self, is_buy: bool) -> BookSide[LiveOrder]:
        return self.bids if is_buy else self.asks

    def opposite(self, is_buy: bool) -> BookSide[LiveOrder]:
        return self.asks if is_buy else self.bids


class Engine:
    """Matching engine, accounts and market data for a set of markets.

    Args:
        markets: the markets to trade.
        maker_fee: fee rate charged to the resting side of a match (negative is a rebate).
        taker_fee: fee rate charged to the aggressing side.
        clock: returns the current time in epoch milliseconds.
        max_public_trades: how many recent trades each market keeps for ``public_trades``.
        max_account_history: how many trades and finished orders each account keeps.

    Commands raise :class:`EngineReject` for anything the exchange would refuse; queries and
    commands raise ``KeyError`` for an account that was never opened (a server bug, not a
    client error), and queries raise ``KeyError`` for an unknown market.
    """

    def __init__(
        self,
        markets: Iterable[MarketSpec] = DEFAULT_MARKETS,
        *,
        maker_fee: Decimal = Decimal("0.0002"),
        taker_fee: Decimal = Decimal("0.0005"),
        clock: Callable[[], int] = _wall_clock,
        max_public_trades: int = 10_000,
        max_account_history: int = 10_000,
    ) -> None:
        specs = {spec.market_code: spec for spec in markets}
        self.markets: Mapping[str, MarketSpec] = MappingProxyType(specs)
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self._clock = clock
        self._history = max_account_history
        self._markets = {code: _Market(spec, max_public_trades) for code, spec in specs.items()}
        self._risk = Risk(
            self.markets,
            lambda code: self._mark(self._markets[code]),
            reserve_rate=1 + max(maker_fee, taker_fee, _ZERO),
        )
        self._accounts: dict[str, AccountState] = {}
        self._orders: dict[int, LiveOrder] = {}
        self._events: list[EngineEvent] = []
        self._fees: dict[str, Decimal] = {}
        self._next_order_id = _FIRST_ORDER_ID
        self._next_match_id = _FIRST_MATCH_ID
        self._now = 0

    # ----------------------------------------------------------------------------- accounts

    def open_account(self, account_id: str, balances: Mapping[str, Decimal]) -> None:
        """Create an account holding ``balances`` (instrument -> amount).

        Raises:
            ValueError: the account already exists.
        """
        if account_id in self._accounts:
            raise ValueError(f"account {account_id!r} already exists")
        amounts = {instrument: Decimal(amount) for instrument, amount in balances.items()}
        self._accounts[account_id] = AccountState(account_id, amounts, self._clock(), self._history)

    def has_account(self, account_id: str) -> bool:
        return account_id in self._accounts

    # ----------------------------------------------------------------------------- commands

    @_exact
    def place(
        self,
        account_id: str,
        *,
        market_code: str,
        side: Side,
        order_type: OrderType,
        quantity: Decimal,
        price: Decimal | None = None,
        stop_price: Decimal | None = None,
        limit_price: Decimal | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        client_order_id: int | None = None,
    ) -> Order:
        """Accept, match and settle a new order; returns its state once the command is done.

        Raises:
            EngineReject: ``20015`` unknown market, ``200050`` expired market, ``20006`` bad
                quantity, ``20008``/``20014`` bad clientOrderId, ``20022`` LIMIT without price,
                ``20028`` non-positive price, ``20021`` price off the tick, ``20020`` missing or
                off-tick stop/limit price, ``20029``/``20030`` stop and limit the wrong way
                round, ``20018`` MARKET with a maker-only time in force, ``710002``/``710003``
                price outside the bounds, ``710004``/``710005``/``710006`` not affordable.
        """
        account = self._accounts[account_id]
        self._now = now = self._clock()
        market = self._tradable(market_code)
        spec = market.spec
        lots = self._lots(spec, quantity)
        if client_order_id is not None:
            if client_order_id <= 0:
                raise EngineReject("20008")
            if client_order_id > _MAX_CLIENT_ORDER_ID:
                raise EngineReject("20014")
        is_buy = side is Side.BUY
        stop_ticks: int | None = None
        limit_ticks: int | None = None
        if order_type is OrderType.LIMIT:
            if price is None:
                raise EngineReject("20022")
            ticks = self._ticks(spec, price, "20021")
        elif order_type is OrderType.MARKET:
            if time_in_force in (TimeInForce.MAKER_ONLY, TimeInForce.MAKER_ONLY_REPRICE):
                raise EngineReject("20018", f"timeInForce {time_in_force} is invalid for MARKET")
            if time_in_force is not TimeInForce.FOK:
                time_in_force = TimeInForce.IOC
            ticks = _MARKET_BUY_LIMIT if is_buy else _MARKET_SELL_LIMIT
        else:
            if stop_price is None or limit_price is None:
                raise EngineReject("20020")
            stop_ticks = self._ticks(spec, stop_price, "20020")
            limit_ticks = ticks = self._ticks(spec, limit_price, "20020")
            if is_buy and stop_ticks > limit_ticks:
                raise EngineReject("20029")
            if not is_buy and limit_ticks > stop_ticks:
                raise EngineReject("20030")
        if order_type is OrderType.LIMIT and time_in_force is TimeInForce.MAKER_ONLY_REPRICE:
            ticks = self._reprice(market, is_buy, ticks)
        reserve_lots = lots
        reserve_ticks = ticks
        if order_type is OrderType.MARKET:
            reserve_lots, worst = market.opposite(is_buy).available(ticks, lots)
            reserve_ticks = worst or 0
        instrument, per_lot = self._risk.reservation(spec, is_buy, reserve_ticks)
        self._risk.check_affordable(account, spec, is_buy, lots, per_lot * reserve_lots, None)

        order = LiveOrder(
            order_id=self._next_order_id,
            client_order_id=client_order_id,
            account_id=account_id,
            spec=spec,
            side=side,
            order_type=order_type,
            tif=time_in_force,
            lots=lots,
            price_ticks=ticks,
            stop_ticks=stop_ticks,
            limit_ticks=limit_ticks,
            now=now,
        )
        self._next_order_id += 1
        self._admit(account, order, instrument, per_lot, reserve_lots)
        if stop_ticks is not None:
            stops = market.buy_stops if is_buy else market.sell_stops
            heapq.heappush(stops, (stop_ticks if is_buy else -stop_ticks, order.order_id, order))
        else:
            self._execute(market, order)
        self._run_stops(market)
        return order.snapshot()

    @_exact
    def cancel(self, account_id: str, market_code: str, order_id: int) -> Order:
        """Cancel one open order (a waiting STOP included); returns its closed state.

        Raises:
            EngineReject: ``20015`` unknown market, ``100005`` no such open order in that
                market, ``100006`` the order belongs to another account.
        """
        if account_id not in self._accounts:
            raise KeyError(account_id)
        market = self._market(market_code)
        self._now = self._clock()
        order = self._owned(account_id, market_code, order_id)
        snapshot = self._close(market, order, OrderStatus.CANCELED_BY_USER)
        self._run_stops(market)
        return snapshot

    @_exact
    def cancel_all(self, account_id: str, market_code: str | None = None) -> list[Order]:
        """Cancel every open order of the account, or only those in ``market_code``; returns
        their closed states in order-id order.

        Raises:
            EngineReject: ``20015`` unknown market.
        """
        account = self._accounts[account_id]
        if market_code is not None:
            self._market(market_code)
        self._now = self._clock()
        closed: list[Order] = []
        touched: dict[str, _Market] = {}
        for order_id in sorted(account.orders):
            order = account.orders[order_id]
            code = order.spec.market_code
            if market_code is None or code == market_code:
                market = self._markets[code]
                touched[code] = market
                closed.append(self._close(market, order, OrderStatus.CANCELED_BY_USER))
        for market in touched.values():
            self._run_stops(market)
        return closed

    @_exact
    def modify(
        self,
        account_id: str,
        market_code: str,
        order_id: int,
        *,
        side: Side | None = None,
        price: Decimal | None = None,
        quantity: Decimal | None = None,
    ) -> Order:
        """Change an open LIMIT order's side, price or open quantity.

        ``quantity`` is the new open quantity. Lowering only the quantity keeps the order id
        and queue position; any other change closes the order (CANCELED_BY_AMEND) and opens a
        replacement LIMIT order with a new id, same client order id and time in force, which
        may trade at once. Returns the state of the (possibly new) order after the command.

        Raises:
            EngineReject: ``20015``, ``200050``, ``100005``, ``100006`` as for cancel;
                ``20017`` the order is a STOP order that has not triggered; ``20006``,
                ``20021``, ``20028``, ``710002``, ``710003`` for a bad new quantity or price;
                ``710004``/``710005``/``710006`` if the replacement is not affordable (the
                original order is then left untouched).
        """
        account = self._accounts[account_id]
        self._now = now = self._clock()
        market = self._tradable(market_code)
        spec = market.spec
        order = self._owned(account_id, market_code, order_id)
        if order.order_type is OrderType.STOP and not order.triggered:
            raise EngineReject("20017", "only LIMIT orders can be modified")
        new_side = order.side if side is None else side
        ticks = order.price_ticks if price is None else self._ticks(spec, price, "20021")
        lots = order.remaining_lots if quantity is None else self._lots(spec, quantity)

        if new_side is order.side and ticks == order.price_ticks and lots <= order.remaining_lots:
            cut = order.remaining_lots - lots
            if cut:
                market.side(order.is_buy).reduce(order, cut)
                market.version += 1
                order.qty_lots -= cut
                self._release(account, order, cut)
                account.open_lots[(market_code, order.is_buy)] -= cut
            order.changed(now)
            snapshot = order.snapshot()
            self._events.append(OrderModified(order=snapshot))
            return snapshot

        is_buy = new_side is Side.BUY
        if order.tif is TimeInForce.MAKER_ONLY_REPRICE:
            ticks = self._reprice(market, is_buy, ticks, ignore=order)
        instrument, per_lot = self._risk.reservation(spec, is_buy, ticks)
        self._risk.check_affordable(account, spec, is_buy, lots, per_lot * lots, order)
        self._close(market, order, OrderStatus.CANCELED_BY_AMEND)
        replacement = LiveOrder(
            order_id=self._next_order_id,
            client_order_id=order.client_order_id,
            account_id=account_id,
            spec=spec,
            side=new_side,
            order_type=OrderType.LIMIT,
            tif=order.tif,
            lots=lots,
            price_ticks=ticks,
            stop_ticks=None,
            limit_ticks=None,
            now=now,
        )
        self._next_order_id += 1
        self._admit(account, replacement, instrument, per_lot, lots)
        self._execute(market, replacement)
        self._run_stops(market)
        return replacement.snapshot()

    @_exact
    def liquidatable(self) -> list[tuple[str, str]]:
        """Every ``(account, market)`` whose position has reached its liquidation price.

        A position is due when the account's equity in its margin currency (balance plus the
        unrealized P&L of every position margined in it) no longer exceeds the position's
        maintenance margin (half the initial margin) at the mark price: exactly when the mark
        has reached the ``est_liquidation_price`` the position channel reports. Sorted by
        account, then market.
        """
        return self._risk.liquidatable(self._accounts)

    @_exact
    def liquidate(self, account_id: str, market_code: str) -> Order | None:
        """Close the account's position in ``market_code`` as the liquidation engine does.

        The account's open orders in that market are cancelled first (``CANCELED_BY_USER``: the
        documents give the liquidation engine's cancels that status), then a MARKET order for
        the whole position sweeps the book under IOC. The order only reduces the position, so no
        margin or position-limit check applies and nothing is reserved; what the book cannot
        fill stays open as a position. Returns the liquidation order's final state, ``None``
        when the account holds no position there.
        """
        account = self._accounts[account_id]
        market = self._market(market_code)
        spec = market.spec
        self._now = now = self._clock()
        for order_id in sorted(account.orders):
            order = account.orders[order_id]
            if order.spec.market_code == market_code:
                self._close(market, order, OrderStatus.CANCELED_BY_USER)
        state = account.positions.get(market_code)
        if state is None or not state.lots:
            self._run_stops(market)
            return None
        is_buy = state.lots < 0
        liquidation = LiveOrder(
            order_id=self._next_order_id,
            client_order_id=None,
            account_id=account_id,
            spec=spec,
            side=Side.BUY if is_buy else Side.SELL,
            order_type=OrderType.MARKET,
            tif=TimeInForce.IOC,
            lots=abs(state.lots),
            price_ticks=_MARKET_BUY_LIMIT if is_buy else _MARKET_SELL_LIMIT,
            stop_ticks=None,
            limit_ticks=None,
            now=now,
        )
        self._next_order_id += 1
        instrument, _ = self._risk.reservation(spec, is_buy, 0)
        self._admit(account, liquidation, instrument, _ZERO, 0)
        self._execute(market, liquidation)
        self._run_stops(market)
        return liquidation.snapshot()

    def drain_events(self) -> list[EngineEvent]:
        """Everything that happened since the last drain, in order (events accumulate until
        drained, so whoever drives the engine drains after every call)."""
        events = self._events
        self._events = []
        return events

    # ------------------------------------------------------------------------------ queries

    @_exact
    def book(self, market_code: str, depth: int | None = None) -> BookLevels:
        """The book's levels, best first, at most ``depth`` per side."""
        market = self._markets[market_code]
        tick = market.spec.tick_size
        lot = market.spec.qty_increment
        return BookLevels(
            market_code=market_code,
            bids=tuple((p * tick, n * lot) for p, n in market.bids.depth(depth)),
            asks=tuple((p * tick, n * lot) for p, n in market.asks.depth(depth)),
            version=market.version,
        )

    def book_version(self, market_code: str) -> int:
        """The book's change counter, without building a snapshot."""
        return self._markets[market_code].version

    @_exact
    def best_bid_ask(self, market_code: str) -> tuple[Decimal | None, Decimal | None]:
        market = self._markets[market_code]
        tick = market.spec.tick_size
        bid = market.bids.best()
        ask = market.asks.best()
        return (None if bid is None else bid * tick, None if ask is None else ask * tick)

    @_exact
    def mark_price(self, market_code: str) -> Decimal:
        """The book's mid when both sides exist, else the last trade, else the reference."""
        return self._mark(self._markets[market_code])

    def is_open(self, order_id: int) -> bool:
        """Whether an order (of any account) is still open, without a snapshot."""
        return order_id in self._orders

    @_exact
    def get_order(self, order_id: int) -> Order | None:
        """An open order (of any account) by id, or ``None``."""
        order = self._orders.get(order_id)
        return None if order is None else order.snapshot()

    @_exact
    def find_order(self, account_id: str, market_code: str, client_order_id: int) -> Order | None:
        """The account's newest open order in the market with this client order id."""
        found: LiveOrder | None = None
        for order in self._accounts[account_id].orders.values():
            if (
                order.client_order_id == client_order_id
                and order.spec.market_code == market_code
                and (found is None or order.order_id > found.order_id)
            ):
                found = order
        return None if found is None else found.snapshot()

    @_exact
    def open_orders(self, account_id: str) -> list[Order]:
        """The account's open orders (waiting STOP orders included) in order-id order."""
        orders = self._accounts[account_id].orders
        return [orders[order_id].snapshot() for order_id in sorted(orders)]

    def order_history(
        self, account_id: str, market_code: str | None = None, *, limit: int | None = None
    ) -> list[Order]:
        """Final states of the account's recently filled or closed orders, newest last."""
        history = self._accounts[account_id].history
        picked = [o for o in history if market_code is None or o.market_code == market_code]
        if limit is not None:
            picked = picked[len(picked) - limit :] if limit > 0 else []
        return picked

    @_exact
    def balances(self, account_id: str) -> dict[str, Balance]:
        """Every instrument the account holds or has held, by instrument id (sorted)."""
        account = self._accounts[account_id]
        return {name: account.balance(name) for name in sorted(account.totals)}

    @_exact
    def positions(self, account_id: str) -> dict[str, Position]:
        """The account's positions in every derivative market it has traded (flat ones too)."""
        account = self._accounts[account_id]
        equity: dict[str, Decimal] = {}
        records: dict[str, Position] = {}
        for code, state in sorted(account.positions.items()):
            market = self._markets[code]
            currency = market.spec.margin_currency
            if currency not in equity:
                equity[currency] = self._risk.equity(account, currency)
            records[code] = state.record(market.spec, self._mark(market), equity[currency])
        return records

    @_exact
    def net_position(self, account_id: str, market_code: str) -> Decimal:
        """The account's signed position in a market (zero if none), cheaply."""
        state = self._accounts[account_id].positions.get(market_code)
        lots = 0 if state is None else state.lots
        return lots * self._markets[market_code].spec.qty_increment

    @_exact
    def account_info(self, account_id: str, margin_currency: str = "USD") -> AccountInfo:
        """Account-level margin figures (see :class:`AccountInfo`)."""
        return self._risk.account_info(self._accounts[account_id], margin_currency, self._clock())

    def account_trades(
        self,
        account_id: str,
        market_code: str | None = None,
        *,
        limit: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[AccountTrade]:
        """The account's recent fills within ``[start_ms, end_ms]``, the newest ``limit``,
        oldest first."""
        trades = self._accounts[account_id].trades
        if market_code is None:
            return newest_within(trades, limit, start_ms, end_ms)
        return newest_within(
            trades, limit, start_ms, end_ms, keep=lambda t: t.market_code == market_code
        )

    def public_trades(
        self,
        market_code: str,
        *,
        limit: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[PublicTrade]:
        """Recent public trades within ``[start_ms, end_ms]``, the newest ``limit``, oldest
        first."""
        return self._markets[market_code].tape.recent(limit, start_ms, end_ms)

    @_exact
    def ticker(self, market_code: str) -> Ticker:
        """Rolling 24-hour statistics (see :class:`Ticker`)."""
        market = self._markets[market_code]
        return market.tape.ticker(self._clock(), self._mark(market), market.open_interest)

    @_exact
    def candles(
        self,
        market_code: str,
        granularity_s: int,
        limit: int = 500,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[Candle]:
        """Candles from the market's trades, oldest first; periods without trades are absent.

        Raises:
            ValueError: ``granularity_s`` is not one of 60, 180, 300, 900, 1800, 3600, 7200,
                14400, 21600, 43200 or 86400.
        """
        return self._markets[market_code].tape.candles(
            granularity_s, limit, start_ms=start_ms, end_ms=end_ms
        )

    def fees_collected(self) -> dict[str, Decimal]:
        """Total fees charged so far, by fee instrument."""
        return dict(self._fees)

    # ---------------------------------------------------------------------------- internals

    def _market(self, market_code: str) -> _Market:
        market = self._markets.get(market_code)
        if market is None:
            raise EngineReject("20015", f"marketCode is invalid: {market_code}")
        return market

    def _tradable(self, market_code: str) -> _Market:
        market = self._market(market_code)
        expiry = market.spec.expiry_ms
        if expiry is not None and self._now >= expiry:
            raise EngineReject("200050")
        return market

    def _owned(self, account_id: str, market_code: str, order_id: int) -> LiveOrder:
        order = self._orders.get(order_id)
        if order is None or order.spec.market_code != market_code:
            raise EngineReject("100005")
        if order.account_id != account_id:
            raise EngineReject("100006")
        return order

    @staticmethod
    def _lots(spec: MarketSpec, quantity: Decimal) -> int:
        if not quantity.is_finite() or quantity <= 0:
            raise EngineReject("20006")
        try:
            lots, rest = divmod(quantity, spec.qty_increment)
        except InvalidOperation:
            raise EngineReject("20006", f"quantity ({quantity}) is too large") from None
        if lots > _MAX_LOTS:
            raise EngineReject("20006", f"quantity ({quantity}) is too large")
        if rest or not lots:
            raise EngineReject(
                "20006",
                f"quantity ({quantity}) is not a multiple of qtyIncrement ({spec.qty_increment})",
            )
        return int(lots)

    @staticmethod
    def _ticks(spec: MarketSpec, price: Decimal, code: str) -> int:
        if not price.is_finite():
            raise EngineReject(code)
        if price <= 0:
            raise EngineReject("20028")
        if price < spec.lower_price_bound:
            raise EngineReject(
                "710002",
                f"FAILED sanity bound check as price ({price}) < lower bound "
                f"({spec.lower_price_bound})",
            )
        if price > spec.upper_price_bound:
            raise EngineReject(
                "710003",
                f"FAILED sanity bound check as price ({price}) > upper bound "
                f"({spec.upper_price_bound})",
            )
        ticks, rest = divmod(price, spec.tick_size)
        if rest:
            name = "price" if code == "20021" else "stopPrice or limitPrice"
            raise EngineReject(
                code, f"{name} ({price}) is not a multiple of tickSize ({spec.tick_size})"
            )
        return int(ticks)

    def _reprice(
        self, market: _Market, is_buy: bool, ticks: int, ignore: LiveOrder | None = None
    ) -> int:
        """The maker-only price: ``ticks``, or one tick behind the opposite best if ``ticks``
        would take. ``ignore`` is an order about to leave the book (its own level does not
        count)."""
        opposite = market.opposite(is_buy)
        best = opposite.best()
        if best is not None and ignore is not None and ignore.resting and ignore.is_buy != is_buy:
            level = opposite.levels[best]
            if level.price == ignore.price_ticks and level.live == 1:
                best = next((lv.price for lv in opposite if lv.price != best), None)
        if best is None:
            return ticks
        if is_buy and ticks >= best:
            return max(best - 1, 1)
        if not is_buy and ticks <= best:
            return best + 1
        return ticks

    def _mark(self, market: _Market) -> Decimal:
        bid = market.bids.best()
        ask = market.asks.best()
        tick = market.spec.tick_size
        if bid is not None and ask is not None:
            return (bid + ask) * tick / 2
        last = market.tape.last_price
        return market.spec.reference_price if last is None else last * tick

    def _admit(
        self,
        account: AccountState,
        order: LiveOrder,
        instrument: str,
        per_lot: Decimal,
        reserve_lots: int,
    ) -> None:
        """Register a new order, take its reservation and announce it."""
        amount = per_lot * reserve_lots
        order.reserve_instrument = instrument
        order.reserve_per_lot = per_lot
        order.reserved = amount
        account.reserve(instrument, amount, self._now)
        account.orders[order.order_id] = order
        key = (order.spec.market_code, order.is_buy)
        account.open_lots[key] = account.open_lots.get(key, 0) + order.remaining_lots
        self._orders[order.order_id] = order
        self._events.append(OrderOpened(order=order.snapshot()))

    def _release(self, account: AccountState, order: LiveOrder, lots: int) -> None:
        amount = order.reserve_per_lot * lots
        order.reserved -= amount
        instrument = order.reserve_instrument
        left = account.reserved[instrument] - amount
        # Exact zero reads better than Decimal("0E-8") in balance messages.
        account.reserved[instrument] = left if left else _ZERO
        account.updated[instrument] = self._now

    def _retire(self, account: AccountState, order: LiveOrder) -> None:
        """Forget a finished order and release whatever it still holds."""
        order.open = False
        if order.reserved:
            instrument = order.reserve_instrument
            left = account.reserved[instrument] - order.reserved
            account.reserved[instrument] = left if left else _ZERO
            account.updated[instrument] = self._now
            order.reserved = _ZERO
        del self._orders[order.order_id]
        del account.orders[order.order_id]
        account.open_lots[(order.spec.market_code, order.is_buy)] -= order.remaining_lots

    def _close(self, market: _Market, order: LiveOrder, status: OrderStatus) -> Order:
        """Close an open order for ``status`` and announce it."""
        if order.resting:
            market.side(order.is_buy).discard(order)
            market.version += 1
        order.status = status
        order.changed(self._now)
        account = self._accounts[order.account_id]
        self._retire(account, order)
        snapshot = order.snapshot()
        account.history.append(snapshot)
        self._events.append(OrderClosed(order=snapshot, status=status))
        return snapshot

    def _execute(self, market: _Market, order: LiveOrder) -> None:
        """Trade a new (or just triggered) order under its time in force, then rest or close
        what is left."""
        tif = order.tif
        opposite = market.opposite(order.is_buy)
        if tif is TimeInForce.MAKER_ONLY_REPRICE and order.order_type is OrderType.STOP:
            order.price_ticks = self._reprice(market, order.is_buy, order.price_ticks)
            order.changed(self._now)
        if tif is TimeInForce.MAKER_ONLY or tif is TimeInForce.MAKER_ONLY_REPRICE:
            best = opposite.best()
            if best is not None and opposite.crosses(best, order.price_ticks):
                self._close(market, order, OrderStatus.CANCELED_BY_MAKER_ONLY)
            else:
                self._rest(market, order)
            return
        if tif is TimeInForce.FOK:
            fillable, _ = opposite.available(order.price_ticks, order.remaining_lots)
            if fillable < order.remaining_lots:
                self._close(market, order, OrderStatus.CANCELED_BY_FOK)
                return
        self._match(market, order, opposite)
        if not order.remaining_lots:
            return
        if tif is TimeInForce.GTC:
            self._rest(market, order)
        elif order.filled_lots:
            self._close(market, order, OrderStatus.CANCELED_PARTIAL_BY_IOC)
        else:
            self._close(market, order, OrderStatus.CANCELED_ALL_BY_IOC)

    def _rest(self, market: _Market, order: LiveOrder) -> None:
        market.side(order.is_buy).add(order)
        market.version += 1

    def _match(self, market: _Market, taker: LiveOrder, opposite: BookSide[LiveOrder]) -> None:
        limit = taker.price_ticks
        while taker.remaining_lots:
            level = opposite.best_level()
            if level is None or not opposite.crosses(level.price, limit):
                return
            maker = level.head()
            self._fill(market, taker, maker, min(taker.remaining_lots, maker.remaining_lots))

    def _fill(self, market: _Market, taker: LiveOrder, maker: LiveOrder, lots: int) -> None:
        """Settle one match of ``lots`` at the maker's price and announce it."""
        now = self._now
        spec = market.spec
        price = maker.price_ticks
        market.opposite(taker.is_buy).reduce(maker, lots)
        taker.remaining_lots -= lots
        market.version += 1
        match_id = self._next_match_id
        self._next_match_id += 1
        notional = price * lots * market.unit
        fee_instrument = spec.fee_instrument
        taker_fee = (notional * self.taker_fee).quantize(_FEE_QUANTUM, ROUND_DOWN)
        maker_fee = (notional * self.maker_fee).quantize(_FEE_QUANTUM, ROUND_DOWN)
        self._fees[fee_instrument] = self._fees.get(fee_instrument, _ZERO) + taker_fee + maker_fee
        events = self._events
        match_price = price * spec.tick_size
        match_quantity = lots * spec.qty_increment
        for order, fee, role in (
            (taker, taker_fee, MatchType.TAKER),
            (maker, maker_fee, MatchType.MAKER),
        ):
            account = self._accounts[order.account_id]
            self._settle(market, account, order, lots, price, notional, fee)
            order.filled_lots += lots
            order.fill_units += price * lots
            order.status = OrderStatus.PARTIAL_FILL if order.remaining_lots else OrderStatus.FILLED
            order.changed(now)
            account.open_lots[(spec.market_code, order.is_buy)] -= lots
            if not order.remaining_lots:
                self._retire(account, order)
            snapshot = order.snapshot()
            if not order.remaining_lots:
                account.history.append(snapshot)
            account.trades.append(
                AccountTrade(
                    match_id=match_id,
                    order_id=order.order_id,
                    client_order_id=order.client_order_id,
                    market_code=spec.market_code,
                    side=order.side,
                    price=match_price,
                    quantity=match_quantity,
                    fees=fee,
                    fee_instrument=fee_instrument,
                    match_type=role,
                    timestamp=now,
                    order_type=order.order_type,
                )
            )
            events.append(
                OrderMatched(
                    order=snapshot,
                    match_id=match_id,
                    match_price=match_price,
                    match_quantity=match_quantity,
                    match_type=role,
                    fees=fee,
                    fee_instrument=fee_instrument,
                )
            )
        trade = PublicTrade(
            trade_id=match_id,
            market_code=spec.market_code,
            side=taker.side,
            price=match_price,
            quantity=match_quantity,
            timestamp=now,
        )
        market.tape.record(trade, price, lots)
        events.append(trade)

    def _settle(
        self,
        market: _Market,
        account: AccountState,
        order: LiveOrder,
        lots: int,
        price: int,
        notional: Decimal,
        fee: Decimal,
    ) -> None:
        """Move one side's money for a fill and release the matching part of its reservation."""
        now = self._now
        spec = market.spec
        self._release(account, order, lots)
        if spec.is_derivative:
            state = account.positions.get(spec.market_code)
            if state is None:
                state = account.positions[spec.market_code] = PositionState()
            before = state.lots
            realized = state.fill(lots if order.is_buy else -lots, price)
            state.updated = now
            market.open_interest += max(state.lots, 0) - max(before, 0)
            account.adjust(spec.margin_currency, realized * market.unit - fee, now)
        elif order.is_buy:
            account.adjust(spec.base, lots * spec.qty_increment, now)
            account.adjust(spec.counter, -(notional + fee), now)
        else:
            account.adjust(spec.base, -(lots * spec.qty_increment), now)
            account.adjust(spec.counter, notional - fee, now)

    def _run_stops(self, market: _Market) -> None:
        """Trigger every waiting STOP order whose condition holds, one at a time (a triggered
        order's trades can trigger more), in stop price then order id order."""
        while True:
            order = self._triggered(market)
            if order is None:
                return
            order.triggered = True
            order.price_ticks = order.limit_ticks or 0
            order.changed(self._now)
            self._events.append(OrderOpened(order=order.snapshot()))
            self._execute(market, order)

    def _triggered(self, market: _Market) -> LiveOrder | None:
        buys = market.buy_stops
        sells = market.sell_stops
        while buys and not buys[0][2].open:
            heapq.heappop(buys)
        while sells and not sells[0][2].open:
            heapq.heappop(sells)
        ask = market.asks.best()
        bid = market.bids.best()
        buy = buys[0] if buys and ask is not None and ask >= buys[0][0] else None
        sell = sells[0] if sells and bid is not None and bid <= -sells[0][0] else None
        if buy is not None and (sell is None or buy[1] < sell[1]):
            return heapq.heappop(buys)[2]
        if sell is not None:
            return heapq.heappop(sells)[2]
        return None
