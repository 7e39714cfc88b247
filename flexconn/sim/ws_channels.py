"""The cadence publishers: depth, ticker, candles, balance and market channels.

Each publisher wakes at its channel's documented cadence, builds each subscribed channel's
message once, and pushes that one :class:`~flexconn.sim.wire.Frame` to every subscriber. Order,
trade and position messages are not here: they are pushed in real time by
:meth:`SimExchange.flush <flexconn.sim.exchange.SimExchange.flush>`.

Cadences (:class:`Cadences`): depth every 50 ms while the book changes, ticker 100 ms, candles
500 ms, balance 250 ms, market 1 s; the liquidation engine (:mod:`flexconn.sim.liquidation`, which
publishes ``liquidationRFQ``) scans every 100 ms and runs alongside. Depth and balance messages
whose content did not change are re-sent every ``heartbeat`` seconds (default 1 s) rather than
every tick, which keeps a subscriber within the exchange's 60-second idle rule without flooding
it. ``depth=0`` is the firehose mode
for benchmarks: every subscribed depth channel is published on every scheduler pass, changed or
not (an unchanged book costs only a new header: its encoded levels are cached per book version),
so the server produces far more than any client can consume and slow readers get conflated
snapshots.

Depth ``seqNum`` is per channel (``depthL10:BTC-USD`` and ``depth:BTC-USD`` count separately),
starts at the simulator's start time in microseconds (below 2**53, so JavaScript clients read
it exactly) and grows by one per message, so every subscriber sees it strictly increase. A new
subscriber gets the channel's latest message at once: the cached one when the book has not
changed since, otherwise a fresh snapshot that goes to every subscriber of the channel.

A new subscriber also gets the current ticker, candle, market records and balances at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio
import trio.lowlevel

from flexconn.models.enums import CandleGranularity
from flexconn.sim import ws_messages as msg
from flexconn.sim.accounts import Balance
from flexconn.sim.fanout import Subscriber
from flexconn.sim.marketdata import Ticker
from flexconn.sim.markets import MarketSpec
from flexconn.sim.wire import Frame

if TYPE_CHECKING:
    from flexconn.sim.exchange import SimExchange

__all__ = ["CANDLE_KINDS", "DEPTH_KINDS", "Cadences", "Channels"]

logger = logging.getLogger("flexconn.sim.channels")

#: Depth channel kinds and how many levels per side each carries (``None``: the whole book).
DEPTH_KINDS: Final[Mapping[str, int | None]] = {
    "depth": None,
    "depthL5": 5,
    "depthL10": 10,
    "depthL25": 25,
    "futures/depth": None,
}
#: Candle channel kinds (``candles60s``...) and their width in seconds.
CANDLE_KINDS: Final[Mapping[str, int]] = {f"candles{g.value}": g.seconds for g in CandleGranularity}
# How long the firehose depth publisher naps when nobody subscribes to depth.
_FIREHOSE_IDLE: Final = 0.01


def _nonnegative(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative")


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive")


@attrs.frozen(kw_only=True)
class Cadences:
    """Seconds between channel messages; ``depth=0`` is the firehose (see the module notes)."""

    depth: float = attrs.field(default=0.05, validator=_nonnegative)
    ticker: float = attrs.field(default=0.1, validator=_positive)
    candles: float = attrs.field(default=0.5, validator=_positive)
    balance: float = attrs.field(default=0.25, validator=_positive)
    market: float = attrs.field(default=1.0, validator=_positive)
    liquidation: float = attrs.field(default=0.1, validator=_positive)
    heartbeat: float = attrs.field(default=1.0, validator=_positive)

    @classmethod
    def firehose(cls) -> Cadences:
        """Depth as fast as the server can publish it; the rest as documented."""
        return cls(depth=0.0)


class _DepthChannel:
    """One depth channel's state: its last seqNum and message, and the encoded levels of the
    book version they show (re-used while the book does not change)."""

    __slots__ = ("body", "frame", "key", "kind", "levels", "market", "sent_at", "seq", "version")

    def __init__(self, kind: str, market: str, seq: int) -> None:
        self.kind = kind
        self.market = market
        self.key = f"{kind}:{market}"
        self.levels = DEPTH_KINDS[kind]
        self.seq = seq
        self.version = -1
        self.sent_at = float("-inf")
        self.frame: Frame | None = None
        self.body: msg.DepthBody | None = None


def _dict_entry(ticker: Ticker, last_mark: Decimal) -> dict[str, str]:
    zero = "0"

    def opt(value: Decimal | None) -> str:
        return zero if value is None else msg.dec(value)

    return {
        "last": opt(ticker.last),
        "open24h": opt(ticker.open24h),
        "high24h": opt(ticker.high24h),
        "low24h": opt(ticker.low24h),
        "volume24h": msg.dec(ticker.volume24h),
        "currencyVolume24h": msg.dec(ticker.currency_volume24h),
        "openInterest": msg.dec(ticker.open_interest),
        "marketCode": ticker.market_code,
        "timestamp": str(ticker.timestamp),
        "lastQty": opt(ticker.last_qty),
        "markPrice": msg.dec(ticker.mark_price),
        "lastMarkPrice": msg.dec(last_mark),
    }


def _market_entry(spec: MarketSpec, mark: Decimal, ts: int) -> dict[str, str]:
    return {
        "marketPrice": msg.dec(mark),
        "listingDate": str(spec.listing_date_ms),
        "qtyIncrement": msg.dec(spec.qty_increment),
        "upperPriceBound": msg.dec(spec.upper_price_bound),
        "lowerPriceBound": msg.dec(spec.lower_price_bound),
        "counter": spec.counter,
        "type": spec.type,
        "marketId": spec.market_id,
        "referencePair": spec.reference_pair,
        "tickSize": msg.dec(spec.tick_size),
        "marketPriceLastUpdated": str(ts),
        "contractValCurrency": spec.contract_val_currency,
        "name": spec.name,
        "marketCode": spec.market_code,
        "marginCurrency": spec.margin_currency,
        "base": spec.base,
    }


def _balance_entry(balance: Balance) -> dict[str, str]:
    return {
        "total": msg.dec(balance.total),
        "reserved": msg.dec(balance.reserved),
        "instrumentId": balance.instrument,
        "available": msg.dec(balance.available),
        "quantityLastUpdated": str(balance.updated),
    }


class Channels:
    """Builds and publishes the cadence channels of one exchange."""

    def __init__(self, exchange: SimExchange) -> None:
        self._exchange = exchange
        self._seq_base = exchange.now_ms() * 1000
        self._depth: dict[tuple[str, str], _DepthChannel] = {}
        self._last_mark: dict[str, Decimal] = {}
        self._balance_state: dict[str, tuple[int, float]] = {}

    # --- depth ------------------------------------------------------------------------------

    def _depth_state(self, kind: str, market: str) -> _DepthChannel:
        states = self._depth
        state = states.get((kind, market))
        if state is None:
            state = states[(kind, market)] = _DepthChannel(kind, market, self._seq_base)
        return state

    def _depth_frame(self, state: _DepthChannel, version: int) -> Frame:
        """A new message for the channel: the cached levels when the book is unchanged."""
        exchange = self._exchange
        body = state.body
        futures = state.kind == "futures/depth"
        if body is None or version != state.version:
            book = exchange.engine.book(state.market, state.levels)
            body = state.body = msg.depth_body(book.bids, book.asks, strings=futures)
            state.version = version
        ts = exchange.now_ms()
        if futures:
            payload = msg.futures_depth_message(state.market, ts, body)
        else:
            state.seq += 1
            payload = msg.depth_message(state.market, state.seq, ts, body, table=state.kind)
        frame = state.frame = Frame(payload, conflate_key=state.key)
        state.sent_at = trio.current_time()
        return frame

    def publish_depth(self, *, force: bool = False, heartbeat: float = 1.0) -> int:
        """Publish every subscribed depth channel whose book changed (or whose last message is
        older than ``heartbeat``, or all when ``force``); returns how many messages went out."""
        exchange = self._exchange
        engine = exchange.engine
        fanout = exchange.fanout
        now = trio.current_time()
        sent = 0
        for kind in DEPTH_KINDS:
            channels = fanout.public(kind)
            if not channels:
                continue
            for market, subs in channels.items():
                state = self._depth_state(kind, market)
                version = engine.book_version(market)
                if not force and version == state.version and now - state.sent_at < heartbeat:
                    continue
                fanout.send(subs, self._depth_frame(state, version))
                sent += 1
        return sent

    def _initial_depth(self, sub: Subscriber, kind: str, market: str) -> None:
        exchange = self._exchange
        state = self._depth_state(kind, market)
        version = exchange.engine.book_version(market)
        if state.frame is not None and state.version == version:
            sub.push(state.frame)
            return
        frame = self._depth_frame(state, version)
        # Everyone on the channel gets the fresh snapshot, so seqNum stays gap-free for all.
        exchange.fanout.send(exchange.fanout.public(kind).get(market, {sub}), frame)

    # --- ticker, candles, market ------------------------------------------------------------

    def _ticker_entry(self, market: str) -> dict[str, str]:
        ticker = self._exchange.engine.ticker(market)
        last_mark = self._last_mark.get(market, ticker.mark_price)
        self._last_mark[market] = ticker.mark_price
        return _dict_entry(ticker, last_mark)

    def _ticker_frame(self, arg: str) -> Frame:
        markets = list(self._exchange.markets) if arg == "all" else [arg]
        return Frame(msg.dumps(msg.table("ticker", [self._ticker_entry(m) for m in markets])))

    def publish_tickers(self) -> None:
        """Push the ticker to every ``ticker:`` subscriber."""
        fanout = self._exchange.fanout
        for arg, subs in list(fanout.public("ticker").items()):
            fanout.send(subs, self._ticker_frame(arg))

    def _candle_frame(self, kind: str, market: str) -> Frame | None:
        candles = self._exchange.engine.candles(market, CANDLE_KINDS[kind], 1)
        if not candles:
            return None
        c = candles[-1]
        entry = {
            "marketCode": market,
            "candle": [
                str(c.start_ms),
                msg.dec(c.open),
                msg.dec(c.high),
                msg.dec(c.low),
                msg.dec(c.close),
                msg.dec(c.volume),
                msg.dec(c.currency_volume),
            ],
        }
        return Frame(msg.dumps(msg.table(kind, [entry])))

    def publish_candles(self) -> None:
        """Push the current candle to every ``candles<g>:`` subscriber (markets that traded)."""
        fanout = self._exchange.fanout
        for kind in CANDLE_KINDS:
            for market, subs in list(fanout.public(kind).items()):
                frame = self._candle_frame(kind, market)
                if frame is not None:
                    fanout.send(subs, frame)

    def _market_frame(self, arg: str) -> Frame:
        exchange = self._exchange
        specs = list(exchange.markets.values()) if arg == "all" else [exchange.markets[arg]]
        ts = exchange.now_ms()
        entries = [_market_entry(s, exchange.engine.mark_price(s.market_code), ts) for s in specs]
        return Frame(msg.dumps(msg.table("market", entries)))

    def publish_markets(self) -> None:
        """Push market records to every ``market:`` subscriber."""
        fanout = self._exchange.fanout
        for arg, subs in list(fanout.public("market").items()):
            fanout.send(subs, self._market_frame(arg))

    # --- balances ---------------------------------------------------------------------------

    def _balance_frame(self, account_id: str, arg: str, balances: Mapping[str, Balance]) -> Frame:
        if arg == "all":
            entries = [_balance_entry(b) for b in balances.values()]
        else:
            balance = balances.get(arg)
            entries = [_balance_entry(balance)] if balance is not None else []
        body = {
            "table": "balance",
            "accountId": account_id,
            "timestamp": str(self._exchange.now_ms()),
            "tradeType": "LINEAR",
            "data": entries,
        }
        return Frame(msg.dumps(body))

    def publish_balances(self, *, heartbeat: float = 1.0) -> None:
        """Push balances of accounts whose orders moved since the last push (or every
        ``heartbeat`` seconds) to their ``balance:`` subscribers."""
        exchange = self._exchange
        now = trio.current_time()
        for account_id, args in list(exchange.fanout.private_accounts("balance")):
            version = exchange.account_versions.get(account_id, 0)
            last = self._balance_state.get(account_id)
            if last is not None and last[0] == version and now - last[1] < heartbeat:
                continue
            self._balance_state[account_id] = (version, now)
            balances = exchange.engine.balances(account_id)
            for arg, subs in list(args.items()):
                exchange.fanout.send(subs, self._balance_frame(account_id, arg, balances))

    # --- a new subscriber -------------------------------------------------------------------

    def send_initial(self, sub: Subscriber, kind: str, arg: str) -> None:
        """Push the channel's current state to a new subscriber (nothing for order and trade,
        which have no state)."""
        exchange = self._exchange
        if kind in DEPTH_KINDS:
            self._initial_depth(sub, kind, arg)
        elif kind == "ticker":
            sub.push(self._ticker_frame(arg))
        elif kind in CANDLE_KINDS:
            frame = self._candle_frame(kind, arg)
            if frame is not None:
                sub.push(frame)
        elif kind == "market":
            sub.push(self._market_frame(arg))
        elif kind == "balance" and sub.account_id is not None:
            balances = exchange.engine.balances(sub.account_id)
            sub.push(self._balance_frame(sub.account_id, arg, balances))
        elif kind == "position" and sub.account_id is not None:
            exchange.push_positions_to(sub, sub.account_id, arg)

    # --- the tasks --------------------------------------------------------------------------

    async def run(
        self,
        cadences: Cadences = Cadences(),
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run every publisher until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._depth_loop, cadences)
            nursery.start_soon(self._every, cadences.ticker, self.publish_tickers)
            nursery.start_soon(self._every, cadences.candles, self.publish_candles)
            nursery.start_soon(self._every, cadences.market, self.publish_markets)
            nursery.start_soon(
                self._every,
                cadences.balance,
                lambda: self.publish_balances(heartbeat=cadences.heartbeat),
            )
            nursery.start_soon(self._exchange.liquidator.run, cadences.liquidation)
            task_status.started()

    async def _every(self, interval: float, publish: Any) -> None:
        deadline = trio.current_time()
        while True:
            deadline += interval
            await trio.sleep_until(deadline)
            publish()
            deadline = max(deadline, trio.current_time() - interval)

    async def _depth_loop(self, cadences: Cadences) -> None:
        if cadences.depth > 0:
            deadline = trio.current_time()
            while True:
                deadline += cadences.depth
                await trio.sleep_until(deadline)
                self.publish_depth(heartbeat=cadences.heartbeat)
                deadline = max(deadline, trio.current_time() - cadences.depth)
        else:
            # Firehose: every subscribed channel on every scheduler pass, changed or not.
            while True:
                if self.publish_depth(force=True):
                    await trio.lowlevel.checkpoint()
                else:
                    await trio.sleep(_FIREHOSE_IDLE)
