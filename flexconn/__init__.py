"""flexconn: a Trio-native, structured-concurrency connector for the CoinFLEX v2 API.

The public surface is re-exported here; everything else is an implementation detail. Channels
are built with :mod:`flexconn.channels`, the simulator lives in :mod:`flexconn.sim` and the REST
models in :mod:`flexconn.models.rest` (their names clash with the WebSocket models).

Importing the package loads only what a WebSocket program needs: the REST client (and with it
httpx, whose command line pulls click, rich and pygments) loads on first use of
:class:`RestClient` or :class:`RetryPolicy`, and the simulator and the command line only when a
program imports them.
"""

from typing import TYPE_CHECKING, Any

from flexconn import channels, errors
from flexconn.auth import Credentials
from flexconn.book import InvalidationReason, OrderBook
from flexconn.config import (
    Backpressure,
    Heartbeat,
    PingStyle,
    ReconnectPolicy,
    Timeouts,
)
from flexconn.connection import (
    Connection,
    ConnectionEvent,
    ConnectionEventKind,
    ConnectionState,
    ConnectionStatistics,
    DisconnectReason,
    LiveOrderBook,
    connect,
    open_connection,
)
from flexconn.errors import (
    AuthenticationError,
    ConnectionClosed,
    ConnectTimeout,
    ExchangeError,
    FeedOverflow,
    FlexconnError,
    HeartbeatTimeout,
    InsufficientFundsError,
    InvalidOrderError,
    InvalidRequestError,
    LocalProtocolError,
    MarketUnavailableError,
    OrderAlreadyClosed,
    OrderNotApplied,
    OrderNotFoundError,
    OrderOutcomeUnknown,
    PermissionDenied,
    PriceBoundError,
    ProtocolError,
    RateLimitError,
    RemoteProtocolError,
    ReplyTimeout,
    ServerError,
    SubscriptionError,
    TransportError,
    ValidationError,
)
from flexconn.feeds import Feed, FeedStatistics, StreamRestarted
from flexconn.models import (
    Balance,
    CancelOrder,
    Candle,
    DepthSnapshot,
    LimitOrder,
    LiquidationRFQ,
    LiquidationRFQUpdate,
    MarketOrder,
    MatchType,
    ModifyOrder,
    OrderClosed,
    OrderMatched,
    OrderModified,
    OrderOpened,
    OrderRejected,
    OrderStatus,
    OrderType,
    Position,
    PriceLevel,
    Side,
    StopLimitOrder,
    Ticker,
    TimeInForce,
    Trade,
)
from flexconn.orders import OpenOrders, WorkingOrder
from flexconn.outbox import (
    AckSource,
    CancelAck,
    ModifyAck,
    OutboxConfig,
    OutboxStatistics,
    PlaceAck,
)

if TYPE_CHECKING:
    from flexconn.rest import RestClient, RetryPolicy

#: Public names whose module loads on first use: ``name -> module``.
_LAZY: dict[str, str] = {"RestClient": "flexconn.rest", "RetryPolicy": "flexconn.rest"}

__all__ = [
    "AckSource",
    "AuthenticationError",
    "Backpressure",
    "Balance",
    "CancelAck",
    "CancelOrder",
    "Candle",
    "ConnectTimeout",
    "Connection",
    "ConnectionClosed",
    "ConnectionEvent",
    "ConnectionEventKind",
    "ConnectionState",
    "ConnectionStatistics",
    "Credentials",
    "DepthSnapshot",
    "DisconnectReason",
    "ExchangeError",
    "Feed",
    "FeedOverflow",
    "FeedStatistics",
    "FlexconnError",
    "Heartbeat",
    "HeartbeatTimeout",
    "InsufficientFundsError",
    "InvalidOrderError",
    "InvalidRequestError",
    "InvalidationReason",
    "LimitOrder",
    "LiquidationRFQ",
    "LiquidationRFQUpdate",
    "LiveOrderBook",
    "LocalProtocolError",
    "MarketOrder",
    "MarketUnavailableError",
    "MatchType",
    "ModifyAck",
    "ModifyOrder",
    "OpenOrders",
    "OrderAlreadyClosed",
    "OrderBook",
    "OrderClosed",
    "OrderMatched",
    "OrderModified",
    "OrderNotApplied",
    "OrderNotFoundError",
    "OrderOpened",
    "OrderOutcomeUnknown",
    "OrderRejected",
    "OrderStatus",
    "OrderType",
    "OutboxConfig",
    "OutboxStatistics",
    "PermissionDenied",
    "PingStyle",
    "PlaceAck",
    "Position",
    "PriceBoundError",
    "PriceLevel",
    "ProtocolError",
    "RateLimitError",
    "ReconnectPolicy",
    "RemoteProtocolError",
    "ReplyTimeout",
    "RestClient",
    "RetryPolicy",
    "ServerError",
    "Side",
    "StopLimitOrder",
    "StreamRestarted",
    "SubscriptionError",
    "Ticker",
    "TimeInForce",
    "Timeouts",
    "Trade",
    "TransportError",
    "ValidationError",
    "WorkingOrder",
    "channels",
    "connect",
    "errors",
    "open_connection",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
