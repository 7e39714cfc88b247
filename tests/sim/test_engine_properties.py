"""Stateful property tests: random command sequences from several accounts keep the engine's
invariants (book never crossed, quantities and money conserved, FOK/MAKER_ONLY semantics,
price-time priority, reservations exact)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from flexconn.models.enums import MatchType, OrderStatus, OrderType, Side, TimeInForce
from flexconn.sim.engine import (
    Engine,
    EngineEvent,
    EngineReject,
    Order,
    OrderClosed,
    OrderMatched,
    OrderModified,
    OrderOpened,
)
from flexconn.sim.markets import MarketSpec

D = Decimal
SPOT = "XBT-USD"
PERP = "XBT-USD-SWAP-LIN"
ACCOUNTS = ("a", "b", "c")
MAKER_FEE = D("0.001")
TAKER_FEE = D("0.002")
RESERVE_RATE = 1 + max(MAKER_FEE, TAKER_FEE)
INITIAL = {"USD": D(20_000), "XBT": D(40)}

MARKETS = (
    MarketSpec(
        market_code=SPOT,
        name="XBT/USD",
        type="SPOT",
        base="XBT",
        counter="USD",
        tick_size=D("0.5"),
        qty_increment=D("0.1"),
        lower_price_bound=D(80),
        upper_price_bound=D(120),
        reference_price=D(100),
    ),
    MarketSpec(
        market_code=PERP,
        name="XBT/USD Perpetual",
        type="FUTURE",
        base="XBT",
        counter="USD",
        tick_size=D("0.5"),
        qty_increment=D("0.1"),
        lower_price_bound=D(80),
        upper_price_bound=D(120),
        reference_price=D(100),
        initial_margin=D("0.2"),
        position_limit=D(8),
    ),
)

accounts = st.sampled_from(ACCOUNTS)
markets = st.sampled_from((SPOT, PERP))
sides = st.sampled_from((Side.BUY, Side.SELL))
tifs = st.sampled_from(tuple(TimeInForce))
# Mostly near the middle so orders cross often; sometimes at or past the bounds.
prices = st.integers(min_value=150, max_value=250).map(lambda h: D(h) / 2)
quantities = st.integers(min_value=1, max_value=40).map(lambda n: D(n) / 10)


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1_700_000_000_000
        self.engine = Engine(
            MARKETS, maker_fee=MAKER_FEE, taker_fee=TAKER_FEE, clock=lambda: self.now
        )
        for name in ACCOUNTS:
            self.engine.open_account(name, INITIAL)
        self.submitted: dict[int, Decimal] = {}
        self.filled: dict[int, Decimal] = defaultdict(D)
        self.reduced: dict[int, Decimal] = defaultdict(D)
        self.last: dict[int, Order] = {}
        self.tif: dict[int, TimeInForce] = {}
        self.taker_matches: dict[int, int] = defaultdict(int)

    # ------------------------------------------------------------------------------ rules

    @rule(
        account=accounts,
        market=markets,
        side=sides,
        kind=st.sampled_from((OrderType.LIMIT, OrderType.LIMIT, OrderType.MARKET, OrderType.STOP)),
        tif=tifs,
        price=prices,
        other=prices,
        qty=quantities,
    )
    def place(
        self,
        account: str,
        market: str,
        side: Side,
        kind: OrderType,
        tif: TimeInForce,
        price: Decimal,
        other: Decimal,
        qty: Decimal,
    ) -> None:
        stop_price = limit_price = None
        if kind is OrderType.STOP:
            low, high = sorted((price, other))
            stop_price, limit_price = (low, high) if side is Side.BUY else (high, low)
        self._run(
            self.engine.place,
            account,
            market_code=market,
            side=side,
            order_type=kind,
            quantity=qty,
            price=price if kind is OrderType.LIMIT else None,
            stop_price=stop_price,
            limit_price=limit_price,
            time_in_force=tif,
        )

    @rule(
        account=accounts,
        market=markets,
        side=sides,
        tif=st.sampled_from((TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK)),
        through=st.integers(min_value=-2, max_value=4),
        qty=quantities,
    )
    def take(
        self, account: str, market: str, side: Side, tif: TimeInForce, through: int, qty: Decimal
    ) -> None:
        """A LIMIT order priced ``through`` ticks past the opposite best (negative: short of it),
        so matches happen often."""
        bid, ask = self.engine.best_bid_ask(market)
        best = ask if side is Side.BUY else bid
        if best is None:
            return
        tick = D("0.5") * through
        price = best + tick if side is Side.BUY else best - tick
        self._run(
            self.engine.place,
            account,
            market_code=market,
            side=side,
            order_type=OrderType.LIMIT,
            quantity=qty,
            price=price,
            time_in_force=tif,
        )

    @rule(data=st.data(), own=st.booleans())
    def cancel(self, data: st.DataObject, own: bool) -> None:
        order = self._pick(data)
        if order is None:
            return
        account = order.account_id if own else data.draw(accounts)
        self._run(self.engine.cancel, account, order.market_code, order.order_id)

    @rule(
        data=st.data(),
        side=st.none() | sides,
        price=st.none() | prices,
        qty=st.none() | quantities,
    )
    def modify(
        self, data: st.DataObject, side: Side | None, price: Decimal | None, qty: Decimal | None
    ) -> None:
        order = self._pick(data)
        if order is None:
            return
        if qty is not None and data.draw(st.booleans()):
            qty = max(D("0.1"), order.remaining - D("0.1"))  # often a pure reduction
        self._run(
            self.engine.modify,
            order.account_id,
            order.market_code,
            order.order_id,
            side=side,
            price=price,
            quantity=qty,
        )

    @rule(account=accounts, market=st.none() | markets)
    def cancel_all(self, account: str, market: str | None) -> None:
        self._run(self.engine.cancel_all, account, market)

    @rule(ms=st.integers(min_value=1, max_value=120_000))
    def tick(self, ms: int) -> None:
        self.now += ms

    # ---------------------------------------------------------------------------- helpers

    def _pick(self, data: st.DataObject) -> Order | None:
        open_orders = [o for name in ACCOUNTS for o in self.engine.open_orders(name)]
        return data.draw(st.sampled_from(open_orders)) if open_orders else None

    def _resting(self) -> dict[int, Order]:
        return {
            o.order_id: o
            for name in ACCOUNTS
            for o in self.engine.open_orders(name)
            if o.order_type is OrderType.LIMIT
        }

    def _run(self, command: object, *args: object, **kwargs: object) -> None:
        before = self._resting()
        assert callable(command)
        try:
            command(*args, **kwargs)
        except EngineReject as error:
            assert error.code in {
                "20006",
                "20017",
                "20018",
                "20022",
                "100005",
                "100006",
                "710002",
                "710003",
                "710004",
                "710005",
                "710006",
            }, error
            assert self.engine.drain_events() == []
            return
        events = self.engine.drain_events()
        self._check_priority(before, events)
        self._track(events)

    def _check_priority(self, before: dict[int, Order], events: list[EngineEvent]) -> None:
        """Each maker fill must find every older LIMIT order at its price already used up, and
        each taker's fills must walk away from the best price."""
        consumed: dict[int, Decimal] = defaultdict(D)
        closed: set[int] = set()
        last_price: dict[int, Decimal] = {}
        for event in events:
            if isinstance(event, OrderClosed):
                closed.add(event.order.order_id)
            if not isinstance(event, OrderMatched):
                continue
            order = event.order
            if event.match_type is MatchType.TAKER:
                previous = last_price.get(order.order_id)
                if previous is not None:
                    worse = event.match_price >= previous
                    assert worse if order.side is Side.BUY else event.match_price <= previous
                last_price[order.order_id] = event.match_price
                continue
            for older in before.values():
                if (
                    older.order_id < order.order_id
                    and older.market_code == order.market_code
                    and older.side is order.side
                    and older.price == event.match_price
                    and older.order_id not in closed
                ):
                    assert consumed[older.order_id] == older.remaining, (older, event)
            consumed[order.order_id] += event.match_quantity

    def _track(self, events: list[EngineEvent]) -> None:
        for event in events:
            if isinstance(event, OrderOpened | OrderModified | OrderClosed | OrderMatched):
                order = event.order
                order_id = order.order_id
                if isinstance(event, OrderOpened) and order_id not in self.submitted:
                    self.submitted[order_id] = order.quantity
                    self.tif[order_id] = order.time_in_force
                if isinstance(event, OrderModified):
                    self.reduced[order_id] += self.last[order_id].remaining - order.remaining
                if isinstance(event, OrderMatched):
                    self.filled[order_id] += event.match_quantity
                    if event.match_type is MatchType.TAKER:
                        self.taker_matches[order_id] += 1
                self.last[order_id] = order

    # -------------------------------------------------------------------------- invariants

    @invariant()
    def book_is_never_crossed(self) -> None:
        for code in (SPOT, PERP):
            bid, ask = self.engine.best_bid_ask(code)
            assert bid is None or ask is None or bid < ask

    @invariant()
    def book_levels_match_resting_orders(self) -> None:
        for code in (SPOT, PERP):
            book = self.engine.book(code)
            resting: dict[tuple[Side, Decimal], Decimal] = defaultdict(D)
            for name in ACCOUNTS:
                for order in self.engine.open_orders(name):
                    if order.market_code == code and order.price is not None:
                        resting[(order.side, order.price)] += order.remaining
            levels = {(Side.BUY, p): q for p, q in book.bids}
            levels.update({(Side.SELL, p): q for p, q in book.asks})
            assert levels == resting
            assert [p for p, _ in book.bids] == sorted((p for p, _ in book.bids), reverse=True)
            assert [p for p, _ in book.asks] == sorted(p for p, _ in book.asks)

    @invariant()
    def quantity_is_conserved_per_order(self) -> None:
        for order_id, submitted in self.submitted.items():
            last = self.last[order_id]
            live = self.engine.get_order(order_id)
            if live is not None:
                remaining = live.remaining
            elif last.status is OrderStatus.FILLED:
                remaining = D(0)
            else:
                remaining = last.remaining  # historical remainder of a closed order
            assert self.filled[order_id] + self.reduced[order_id] + remaining == submitted
            assert last.quantity == last.filled + last.remaining
            assert last.filled == self.filled[order_id]

    @invariant()
    def fok_fills_fully_or_not_at_all(self) -> None:
        for order_id, tif in self.tif.items():
            if tif is not TimeInForce.FOK or self.engine.is_open(order_id):
                continue
            last = self.last[order_id]
            if last.status is OrderStatus.FILLED:
                assert self.filled[order_id] == self.submitted[order_id]
            else:
                # Killed, or a stop cancelled before it triggered.
                assert last.status is OrderStatus.CANCELED_BY_FOK or not last.triggered
                assert self.filled[order_id] == 0

    @invariant()
    def maker_only_never_takes(self) -> None:
        for order_id, tif in self.tif.items():
            if tif in (TimeInForce.MAKER_ONLY, TimeInForce.MAKER_ONLY_REPRICE):
                assert self.taker_matches[order_id] == 0

    @invariant()
    def money_is_conserved(self) -> None:
        totals: dict[str, Decimal] = defaultdict(D)
        for name in ACCOUNTS:
            for instrument, balance in self.engine.balances(name).items():
                totals[instrument] += balance.total
            for position in self.engine.positions(name).values():
                totals[position.margin_currency] += position.position_pnl
        for instrument, fee in self.engine.fees_collected().items():
            totals[instrument] += fee
        expected = {k: v * len(ACCOUNTS) for k, v in INITIAL.items()}
        assert dict(totals) == expected

    @invariant()
    def reservations_are_exact(self) -> None:
        specs = {spec.market_code: spec for spec in MARKETS}
        for name in ACCOUNTS:
            expected: dict[str, Decimal] = defaultdict(D)
            for order in self.engine.open_orders(name):
                spec = specs[order.market_code]
                price = order.limit_price if order.order_type is OrderType.STOP else order.price
                assert price is not None
                if spec.is_derivative:
                    expected["USD"] += spec.initial_margin * price * order.remaining
                elif order.side is Side.BUY:
                    expected["USD"] += price * order.remaining * RESERVE_RATE
                else:
                    expected["XBT"] += order.remaining
            for instrument, balance in self.engine.balances(name).items():
                assert balance.reserved >= 0
                assert balance.available == balance.total - balance.reserved
                assert balance.reserved == expected[instrument], (name, instrument)

    @invariant()
    def nothing_is_reserved_without_open_orders(self) -> None:
        for name in ACCOUNTS:
            if not self.engine.open_orders(name):
                assert all(b.reserved == 0 for b in self.engine.balances(name).values())

    @invariant()
    def open_interest_is_the_sum_of_longs(self) -> None:
        longs = sum(
            (
                max(D(0), p.quantity)
                for name in ACCOUNTS
                for p in self.engine.positions(name).values()
            ),
            D(0),
        )
        assert self.engine.ticker(PERP).open_interest == longs


EngineMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)
TestEngineMachine = EngineMachine.TestCase
