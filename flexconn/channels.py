"""Channel names: what can be subscribed to, and what each subscription yields.

A :class:`Channel` is the value behind a subscription key such as ``depthL25:BTC-USD-SWAP-LIN``:
a channel ``name`` and a ``selector`` (a market code, an asset id for balances, or ``all``).
Build one with the constructors below (``channels.trade("BTC-USD-SWAP-LIN")``) or read one with
:meth:`Channel.parse`; both refuse names the exchange does not serve with
:class:`~flexconn.errors.ValidationError`.

Which channels accept ``all`` (from the later API document): ``ticker``, ``market``, ``balance``,
``position`` and ``order``. ``trade``, the depth channels and candles need a market code.
``liquidationRFQ`` takes neither: it is subscribed by its bare name (its ``selector`` is ``""``
and its wire form has no colon), and every market's items arrive on it.
"""

from __future__ import annotations

from typing import Any, Final, Generic, TypeAlias, TypeVar

import attrs

from flexconn.models.account import BalanceUpdate, PositionUpdate
from flexconn.models.enums import CandleGranularity, DepthLevel
from flexconn.models.liquidation import LIQUIDATION_RFQ, LiquidationRFQUpdate
from flexconn.models.market import (
    CandleUpdate,
    DepthUpdate,
    MarketUpdate,
    TickerUpdate,
    TradeUpdate,
)
from flexconn.models.notices import CancelAllNotice, OrderFailureNotice, OrderUpdate
from flexconn.protocol.channel_names import (
    ALL,
    BARE_CHANNELS,
    PRIVATE_CHANNELS,
    WILDCARD_CHANNELS,
    check_channel,
    parse_key,
)

__all__ = [
    "ALL",
    "BARE_CHANNELS",
    "PRIVATE_CHANNELS",
    "WILDCARD_CHANNELS",
    "Channel",
    "OrderMessage",
    "balance",
    "candles",
    "depth",
    "futures_depth",
    "liquidation_rfq",
    "market",
    "order",
    "position",
    "ticker",
    "trade",
]

T = TypeVar("T")

#: What an ``order`` subscription yields: channel frames plus the order notices sent as events.
OrderMessage: TypeAlias = OrderUpdate | OrderFailureNotice | CancelAllNotice
# Channels whose every message supersedes the previous one, so a slow consumer may skip to the
# newest (depth snapshots, tickers, current candles, market data).
_CONFLATABLE_PREFIXES: Final = ("depth", "futures/depth", "ticker", "candles", "market")

_FIXED: Final[dict[str, tuple[type[Any], ...]]] = {
    "trade": (TradeUpdate,),
    "ticker": (TickerUpdate,),
    "market": (MarketUpdate,),
    "balance": (BalanceUpdate,),
    "position": (PositionUpdate,),
    "order": (OrderUpdate, OrderFailureNotice, CancelAllNotice),
    LIQUIDATION_RFQ: (LiquidationRFQUpdate,),
    **{level.value: (DepthUpdate,) for level in DepthLevel},
    **{f"candles{g.value}": (CandleUpdate,) for g in CandleGranularity},
}


# The channel grammar (names, selectors, ALL and the channel sets) is the protocol's
# (flexconn.protocol.channel_names); this module adds what each of its CHANNEL_NAMES yields.


@attrs.frozen
class Channel(Generic[T]):
    """A subscribable channel: ``name`` (``trade``, ``depthL25``, ``candles60s``...) and
    ``selector`` (market code, asset id or ``all``). ``str(channel)`` is the wire form.

    Use the constructors (:func:`trade`, :func:`depth`...) or :meth:`parse` rather than
    building one directly: they check both parts.
    """

    name: str
    selector: str
    #: The message classes a subscription to this channel yields.
    message_types: tuple[type[Any], ...] = attrs.field(eq=False, repr=False)

    @classmethod
    def parse(cls, text: str, *, field: str = "channel") -> Channel[Any]:
        """Read a wire channel string such as ``"depthL25:BTC-USD-SWAP-LIN"``.

        Args:
            text: the subscription key.
            field: the name to report in a :class:`ValidationError`.

        Raises:
            ValidationError: not a channel the exchange serves, or a malformed selector.
        """
        name, selector = parse_key(text, field=field)
        return cls(name, selector, _FIXED[name])

    @property
    def wire(self) -> str:
        """The subscription key as sent in ``args`` (a bare channel's name alone)."""
        return f"{self.name}:{self.selector}" if self.selector else self.name

    @property
    def private(self) -> bool:
        """Whether subscribing needs a logged-in connection (order, balance, position)."""
        return self.name in PRIVATE_CHANNELS

    @property
    def conflatable(self) -> bool:
        """Whether each message supersedes the previous (a slow reader may keep only the latest)."""
        return self.name.startswith(_CONFLATABLE_PREFIXES)

    def __str__(self) -> str:
        return self.wire


def _make(name: str, selector: str) -> Channel[Any]:
    check_channel(name, selector, "channel")
    return Channel(name, selector, _FIXED[name])


def depth(market: str, level: DepthLevel = DepthLevel.FULL) -> Channel[DepthUpdate]:
    """Order book snapshots of ``market``: the whole book (``depth``) or ``depthL5/L10/L25``."""
    return _make(DepthLevel(level).value, market)


def futures_depth(market: str) -> Channel[DepthUpdate]:
    """The 2020-12 ``futures/depth`` channel (string levels, ISO timestamps)."""
    return _make(DepthLevel.FUTURES.value, market)


def trade(market: str) -> Channel[TradeUpdate]:
    """Public trades of ``market``."""
    return _make("trade", market)


def ticker(market: str = ALL) -> Channel[TickerUpdate]:
    """24-hour ticker of ``market``, or of every market with ``all``."""
    return _make("ticker", market)


def candles(market: str, granularity: CandleGranularity) -> Channel[CandleUpdate]:
    """The current candle of ``market`` at ``granularity`` (``candles60s:...``)."""
    return _make(f"candles{CandleGranularity(granularity).value}", market)


def market(market: str = ALL) -> Channel[MarketUpdate]:
    """Reference data and price bounds of ``market``, or of every market with ``all``."""
    return _make("market", market)


def balance(instrument: str = ALL) -> Channel[BalanceUpdate]:
    """Balances of one asset (``USD``) or all assets (private)."""
    return _make("balance", instrument)


def position(instrument: str = ALL) -> Channel[PositionUpdate]:
    """Positions in one market or all markets (private)."""
    return _make("position", instrument)


def order(market: str = ALL) -> Channel[OrderMessage]:
    """Order notices for one market or all markets (private)."""
    return _make("order", market)


def liquidation_rfq() -> Channel[LiquidationRFQUpdate]:
    """Upcoming liquidation events in every market, about 50 ms ahead (public, later API)."""
    return _make(LIQUIDATION_RFQ, "")
