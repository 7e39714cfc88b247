"""The simulated exchange's shared state: engine, API keys, fault switches, the WS fan-out,
funding records and delivery requests.

Both servers (WebSocket and REST) hold the same :class:`SimExchange`. Whoever calls the engine
calls :meth:`SimExchange.flush` right after; it drains the engine's events and pushes what they
mean to WebSocket subscribers at once: order notices to every logged-in socket of the owning
account subscribed to ``order:all`` or ``order:<market>``, trades to ``trade:<market>``,
positions to ``position:`` subscribers of accounts that traded. It also counts each account's
order events, which tells the balance publisher (:mod:`flexconn.sim.ws_channels`) whom to update
on its next tick; the depth publisher reads the engine's book versions. Everything here is
synchronous and never blocks.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Final

import attrs

from flexconn.models.enums import OrderStatus
from flexconn.sim import ws_messages as msg
from flexconn.sim.accounts import Position
from flexconn.sim.delivery import Deliveries
from flexconn.sim.engine import Engine
from flexconn.sim.fanout import Fanout, Subscriber
from flexconn.sim.faults import Faults
from flexconn.sim.funding import Funding
from flexconn.sim.liquidation import Liquidator
from flexconn.sim.markets import DEFAULT_MARKETS, MarketSpec
from flexconn.sim.orders import (
    Order,
    OrderClosed,
    OrderMatched,
    OrderModified,
    OrderOpened,
    PublicTrade,
)
from flexconn.sim.ratelimit import DEFAULT_RATE_LIMITS, Limiter, RateLimits
from flexconn.sim.wire import Frame
from flexconn.sim.ws_channels import Channels

__all__ = ["DEFAULT_DEMO_BALANCES", "DEMO_ACCOUNT_ID", "ApiKey", "SimExchange", "wall_clock_ms"]

logger = logging.getLogger("flexconn.sim.exchange")

#: The demo account's id: numeric, like the exchange's own account ids (sent as strings).
DEMO_ACCOUNT_ID: Final = "1001"

#: What the demo account starts with.
DEFAULT_DEMO_BALANCES: Final[Mapping[str, Decimal]] = {
    "USD": Decimal(1_000_000),
    "BTC": Decimal(100),
    "ETH": Decimal(1_000),
}


def wall_clock_ms() -> int:
    """Epoch milliseconds from the system clock (the default exchange clock)."""
    return time.time_ns() // 1_000_000


@attrs.frozen(kw_only=True)
class ApiKey:
    """One API key of one account; ``can_trade=False`` is a read-only key."""

    api_key: str
    api_secret: str = attrs.field(repr=False)
    account_id: str
    can_trade: bool = True


class SimExchange:
    """Everything both servers share: the engine, API keys, fault switches, the WS fan-out.

    Args:
        engine: the matching engine; a fresh one over ``markets`` when omitted.
        markets: the markets of a fresh engine.
        faults: the fault switchboard; a fresh one when omitted.
        rate_limits: the limits the servers enforce.
        clock: epoch milliseconds, for message timestamps and a fresh engine.
        demo_balances: what the demo account (behind :attr:`demo_key` and
            :attr:`read_only_key`) is funded with.
    """

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        markets: Iterable[MarketSpec] = DEFAULT_MARKETS,
        faults: Faults | None = None,
        rate_limits: RateLimits = DEFAULT_RATE_LIMITS,
        clock: Callable[[], int] = wall_clock_ms,
        demo_balances: Mapping[str, Decimal] = DEFAULT_DEMO_BALANCES,
    ) -> None:
        self.engine = engine if engine is not None else Engine(tuple(markets), clock=clock)
        self.faults = faults if faults is not None else Faults()
        self.fanout = Fanout()
        self.rate_limits = rate_limits
        self.now_ms = clock
        self._keys: dict[str, ApiKey] = {}
        self._order_limiters: dict[str, Limiter] = {}
        # Orders placed with the 2020-12 spelling "STOP"; every other stop order is STOP_LIMIT.
        self._stop_names: dict[int, str] = {}
        #: Per account, a counter bumped by every order event (balances may have moved).
        self.account_versions: dict[str, int] = {}
        #: The cadence publishers' state (depth seqNums, cached snapshots).
        self.channels = Channels(self)
        #: The liquidation engine (run by the channel publishers; announces on liquidationRFQ).
        self.liquidator = Liquidator(self)
        #: Hourly funding records of the perpetuals (the engine settles no funding).
        self.funding = Funding(self.engine)
        #: Physical delivery requests (queued; the auction is not simulated).
        self.deliveries = Deliveries(self.engine)
        if not self.engine.has_account(DEMO_ACCOUNT_ID):
            self.open_account(DEMO_ACCOUNT_ID, demo_balances)
        self.demo_key = self.create_api_key(DEMO_ACCOUNT_ID, can_trade=True)
        self.read_only_key = self.create_api_key(DEMO_ACCOUNT_ID, can_trade=False)

    # --- accounts and keys ------------------------------------------------------------------

    @property
    def markets(self) -> Mapping[str, MarketSpec]:
        """The engine's markets by code."""
        return self.engine.markets

    def open_account(self, account_id: str, balances: Mapping[str, Decimal]) -> None:
        """Create an account in the engine with these starting balances."""
        self.engine.open_account(account_id, balances)

    def add_api_key(self, key: ApiKey) -> None:
        """Accept ``key`` for logins and signed requests from now on."""
        if not self.engine.has_account(key.account_id):
            raise ValueError(f"no such account: {key.account_id}")
        self._keys[key.api_key] = key

    def create_api_key(self, account_id: str, *, can_trade: bool = True) -> ApiKey:
        """Mint, register and return a random key for an existing account."""
        key = ApiKey(
            api_key=secrets.token_hex(16),
            api_secret=secrets.token_urlsafe(32),
            account_id=account_id,
            can_trade=can_trade,
        )
        self.add_api_key(key)
        return key

    def lookup_key(self, api_key: str) -> ApiKey | None:
        """The registered key with this public part, if any."""
        return self._keys.get(api_key)

    def allow_orders(self, account_id: str, now: float, count: int = 1) -> bool:
        """Charge ``count`` orders to the account's per-second WebSocket order limit."""
        limiter = self._order_limiters.get(account_id)
        if limiter is None:
            limiter = self._order_limiters[account_id] = Limiter(
                self.rate_limits.orders_per_account
            )
        return limiter.allow(now, count)

    # --- order bookkeeping for notices ------------------------------------------------------

    def remember_stop_spelling(self, order_id: int, name: str) -> None:
        """Record that an order was placed as ``STOP`` so its notices spell it that way."""
        if name != msg.STOP_LIMIT:
            self._stop_names[order_id] = name

    def stop_spelling(self, order_id: int) -> str:
        return self._stop_names.get(order_id, msg.STOP_LIMIT)

    def finished_order(self, account_id: str, market_code: str, order_id: int) -> Order | None:
        """The account's recently filled or closed order with this id, if the engine still
        remembers it (for the ``CANCEL``/``AMEND`` failure notices)."""
        for order in reversed(self.engine.order_history(account_id, market_code)):
            if order.order_id == order_id:
                return order
        return None

    # --- fan-out ----------------------------------------------------------------------------

    def flush(self) -> None:
        """Drain the engine's events and push them to WebSocket subscribers (non-blocking).

        Must be called after every engine call, by any server.
        """
        events = self.engine.drain_events()
        if not events:
            return
        fanout = self.fanout
        trades: dict[str, list[PublicTrade]] = {}
        traded: dict[str, set[str]] = {}
        versions = self.account_versions
        for event in events:
            if isinstance(event, PublicTrade):
                trades.setdefault(event.market_code, []).append(event)
                continue
            order = event.order
            account = order.account_id
            market = order.market_code
            versions[account] = versions.get(account, 0) + 1
            if isinstance(event, OrderMatched):
                traded.setdefault(account, set()).add(market)
            if fanout.private(account, "order"):
                entry = self._notice(event)
                frame = Frame(msg.dumps(msg.table("order", [entry])))
                fanout.send_private(account, "order", market, frame)
            if self._stop_names and (
                isinstance(event, OrderClosed)
                or (isinstance(event, OrderMatched) and order.status is OrderStatus.FILLED)
            ):
                self._stop_names.pop(order.order_id, None)
        trade_subs = fanout.public("trade")
        for market, batch in trades.items():
            subs = trade_subs.get(market)
            if subs:
                fanout.send(subs, Frame(msg.trade_payload(batch)))
        for account, markets in traded.items():
            if fanout.private(account, "position"):
                self.push_positions(account, markets)

    def _notice(
        self, event: OrderOpened | OrderModified | OrderClosed | OrderMatched
    ) -> dict[str, object]:
        order = event.order
        stop_name = self.stop_spelling(order.order_id)
        if isinstance(event, OrderOpened):
            return msg.order_notice("OrderOpened", order, stop_name=stop_name)
        if isinstance(event, OrderModified):
            return msg.order_notice("OrderModified", order, stop_name=stop_name)
        if isinstance(event, OrderClosed):
            return msg.order_notice(
                "OrderClosed", order, stop_name=stop_name, status=event.status.value
            )
        return msg.order_notice("OrderMatched", order, stop_name=stop_name, match=event)

    def push_positions(self, account_id: str, markets: Iterable[str] | None = None) -> None:
        """Push the account's current positions to its ``position:`` subscribers.

        ``position:all`` subscribers get every position in one message; ``position:<market>``
        subscribers get that market's (only for ``markets``, when given).
        """
        args = self.fanout.private(account_id, "position")
        if not args:
            return
        positions = self.engine.positions(account_id)
        for arg, subs in list(args.items()):
            if arg != "all" and markets is not None and arg not in markets:
                continue
            self.fanout.send(subs, self._position_frame(account_id, arg, positions))

    def push_positions_to(self, sub: Subscriber, account_id: str, arg: str) -> None:
        """Push the current ``position:<arg>`` message to one (new) subscriber."""
        sub.push(self._position_frame(account_id, arg, self.engine.positions(account_id)))

    def _position_frame(
        self, account_id: str, arg: str, positions: Mapping[str, Position]
    ) -> Frame:
        if arg == "all":
            entries = [position_entry(p, self.markets) for p in positions.values()]
        else:
            position = positions.get(arg)
            entries = [position_entry(position, self.markets)] if position is not None else []
        body = {
            "table": "position",
            "accountId": account_id,
            "timestamp": str(self.now_ms()),
            "data": entries,
        }
        return Frame(msg.dumps(body))

    def broadcast_cancel_notice(self, account_id: str) -> None:
        """Send ``{"event":"CANCEL","submitted":true,...}`` to the account's logged-in sockets
        (after a REST cancel-all)."""
        subs = self.fanout.account_connections(account_id)
        if subs:
            frame = Frame(msg.dumps(msg.cancel_all_notice(self.now_ms())))
            self.fanout.send(subs, frame)


def position_entry(position: Position, markets: Mapping[str, MarketSpec]) -> dict[str, str]:
    """One ``position`` channel entry from an engine position."""
    currency = position.contract_val_currency
    if not currency:
        spec = markets.get(position.market_code)
        currency = spec.base if spec is not None else ""
    return {
        "entryPrice": msg.dec(position.entry_price),
        "lastUpdated": str(position.updated),
        "contractValCurrency": currency,
        "quantity": msg.dec(position.quantity),
        "instrumentId": position.market_code,
        "positionPnl": msg.dec(position.position_pnl),
        "estLiquidationPrice": msg.dec(max(position.est_liquidation_price, Decimal(0))),
    }
