"""Synthetic market participants that keep the simulator's public feeds alive.

A market maker quotes both sides of every market around a mid price that takes a slow random
walk, and a taker sends occasional small MARKET orders against it, so depth, trades, tickers and
candles move the way a real market's do. They trade through the same ``Engine.place``,
``cancel`` and ``modify`` calls as any client, under their own well-funded accounts, and draw
every decision from one seeded ``random.Random``: the same seed, clock and call sequence give
the same orders.

Each :meth:`Participants.step` is one cheap action in one market (round robin): a quote
refresh (cancel the oldest quote once the market holds ``2 * depth`` of them, place a new
maker-only quote a few levels from the mid), a size trim (a quantity-reducing modify), or a
taker trade. A server calls ``step(steps_due(elapsed))`` at whatever pace it likes;
``rate_per_s = math.inf`` is the firehose mode for benchmarks.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Final, ParamSpec, TypeVar

from flexconn.models.enums import OrderType, Side, TimeInForce
from flexconn.sim.engine import Engine, EngineReject
from flexconn.sim.markets import MarketSpec

__all__ = ["Participants"]

logger = logging.getLogger("flexconn.sim.participants")

_P = ParamSpec("_P")
_R = TypeVar("_R")

# Funds large enough never to run out, small enough to keep Decimal arithmetic exact.
_QUOTE_FUNDS: Final = Decimal(10) ** 11
_BASE_FUNDS: Final = Decimal(10) ** 8
# Roughly what one size unit is worth in the counter currency.
_SIZE_UNIT_VALUE: Final = Decimal(100)
# Probabilities per step.
_P_WALK: Final = 0.3
_P_TAKE: Final = 0.12
_P_TRIM: Final = 0.05


class _Quoter:
    """Per-market state: the random-walking mid and the maker's quotes, oldest first."""

    __slots__ = ("gap", "high", "low", "mid", "quotes", "size_unit", "spec", "stride", "walk")

    def __init__(self, spec: MarketSpec) -> None:
        self.spec = spec
        tick = spec.tick_size
        reference = spec.reference_price
        self.mid = max(1, int(reference / tick))
        # Levels about 2 basis points apart; the mid wanders within -20%/+25% of the reference,
        # and never closer to the sanity bounds than a few levels.
        self.gap = max(1, int(reference * Decimal("0.0002") / tick))
        self.walk = max(1, self.gap // 4)
        self.stride = 0
        margin = self.gap * 12
        self.low = max(
            int(reference * Decimal("0.8") / tick), int(spec.lower_price_bound / tick) + margin
        )
        self.high = min(
            int(reference * Decimal("1.25") / tick), int(spec.upper_price_bound / tick) - margin
        )
        if self.low > self.high:  # bounds too tight to wander in: stay put
            self.low = self.high = self.mid
        self.size_unit = max(1, int(_SIZE_UNIT_VALUE / (reference * spec.qty_increment)))
        self.quotes: deque[int] = deque()


class Participants:
    """A seeded market maker and taker trading every market of an engine.

    Args:
        engine: the engine to trade on.
        seed: seeds every decision.
        markets: market codes to trade (default: all of the engine's markets).
        rate_per_s: steps per second a server should run (``math.inf``: as fast as it can).
        depth: quotes per side the maker keeps in each market.
        account_base: the maker's account id; the taker's is the next number (the exchange's
            account ids are numeric).

    Opening the accounts and quoting ``depth`` levels per side in every market happens here, so
    the books are two-sided before the first step.
    """

    FIREHOSE_BURST: Final = 256

    def __init__(
        self,
        engine: Engine,
        *,
        seed: int = 0,
        markets: Iterable[str] | None = None,
        rate_per_s: float = 20.0,
        depth: int = 10,
        account_base: int = 9001,
    ) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self._engine = engine
        self._rng = random.Random(seed)
        self.rate_per_s = rate_per_s
        self._depth = depth
        self._carry = 0.0
        codes = list(engine.markets) if markets is None else list(markets)
        self._quoters = [_Quoter(engine.markets[code]) for code in codes]
        self._next = 0
        self.maker = str(account_base)
        self.taker = str(account_base + 1)
        self.accounts = (self.maker, self.taker)
        funds: dict[str, Decimal] = {}
        for quoter in self._quoters:
            spec = quoter.spec
            funds[spec.counter] = _QUOTE_FUNDS
            funds[spec.margin_currency] = _QUOTE_FUNDS
            funds.setdefault(spec.base, _BASE_FUNDS)
        for account in self.accounts:
            engine.open_account(account, funds)
        for quoter in self._quoters:
            for level in range(1, depth + 1):
                self._quote(quoter, level)
                self._quote(quoter, level)

    def mid(self, market_code: str) -> Decimal:
        """The current centre of the maker's quotes in a market."""
        for quoter in self._quoters:
            if quoter.spec.market_code == market_code:
                return quoter.mid * quoter.spec.tick_size
        raise KeyError(market_code)

    def steps_due(self, elapsed_s: float) -> int:
        """How many steps ``elapsed_s`` seconds at ``rate_per_s`` are worth, carrying the
        fraction over to the next call; a fixed burst in firehose mode."""
        if math.isinf(self.rate_per_s):
            return self.FIREHOSE_BURST
        self._carry += max(0.0, elapsed_s) * self.rate_per_s
        due = int(self._carry)
        self._carry -= due
        return due

    def step(self, n: int = 1) -> None:
        """Take ``n`` actions, each in the next market in turn."""
        quoters = self._quoters
        if not quoters:
            return
        rng = self._rng
        for _ in range(n):
            quoter = quoters[self._next]
            self._next = (self._next + 1) % len(quoters)
            if rng.random() < _P_WALK:
                mid = quoter.mid + rng.choice((-quoter.walk, quoter.walk))
                quoter.mid = min(max(mid, quoter.low), quoter.high)
            roll = rng.random()
            if roll < _P_TAKE:
                self._take(quoter)
            elif roll < _P_TAKE + _P_TRIM:
                self._trim(quoter)
            else:
                self._quote(quoter)

    def _quote(self, quoter: _Quoter, level: int | None = None) -> None:
        """Place a maker-only quote ``level`` gaps from the mid (random when ``None``), on
        alternate sides, first retiring the oldest quote if the market holds enough."""
        engine = self._engine
        spec = quoter.spec
        quotes = quoter.quotes
        if len(quotes) >= 2 * self._depth:
            oldest = quotes.popleft()
            if engine.is_open(oldest):
                _attempt(engine.cancel, self.maker, spec.market_code, oldest)
        rng = self._rng
        is_buy = quoter.stride % 2 == 0
        quoter.stride += 1
        if level is None:
            level = 1 + min(int(rng.expovariate(0.5)), self._depth)
        offset = quoter.gap * level
        ticks = quoter.mid - offset if is_buy else quoter.mid + offset
        lots = quoter.size_unit * rng.randint(1, 20)
        order = _attempt(
            engine.place,
            self.maker,
            market_code=spec.market_code,
            side=Side.BUY if is_buy else Side.SELL,
            order_type=OrderType.LIMIT,
            quantity=lots * spec.qty_increment,
            price=ticks * spec.tick_size,
            time_in_force=TimeInForce.MAKER_ONLY_REPRICE,
        )
        if order is not None and order.is_open:
            quotes.append(order.order_id)

    def _trim(self, quoter: _Quoter) -> None:
        if not quoter.quotes:
            return
        order = self._engine.get_order(quoter.quotes[-1])
        if order is None or order.remaining <= order.quantity / 2:
            return
        lot = quoter.spec.qty_increment
        keep = max(1, int(order.remaining / lot) // 2)
        _attempt(
            self._engine.modify,
            self.maker,
            quoter.spec.market_code,
            order.order_id,
            quantity=keep * lot,
        )

    def _take(self, quoter: _Quoter) -> None:
        spec = quoter.spec
        rng = self._rng
        lots = quoter.size_unit * rng.randint(1, 5)
        p_buy = 0.5
        if spec.is_derivative:
            # Lean against the taker's own position so it (and the maker's) stays bounded.
            held = self._engine.net_position(self.taker, spec.market_code) / spec.qty_increment
            soft_cap = 200 * quoter.size_unit
            p_buy -= 0.4 * max(-1.0, min(1.0, float(held) / soft_cap))
        _attempt(
            self._engine.place,
            self.taker,
            market_code=spec.market_code,
            side=Side.BUY if rng.random() < p_buy else Side.SELL,
            order_type=OrderType.MARKET,
            quantity=lots * spec.qty_increment,
        )


def _attempt(command: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R | None:
    """Run an engine command, treating a refusal (a bound, a limit) as a skipped action."""
    try:
        return command(*args, **kwargs)
    except EngineReject as exc:
        logger.debug("participant action refused: %s", exc)
        return None
