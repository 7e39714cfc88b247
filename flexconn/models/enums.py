"""Enumerations of the exchange's closed vocabularies.

Each enum is a ``StrEnum`` whose values are exactly the strings on the wire, so
``Side("BUY")`` decodes and ``str(Side.BUY)`` encodes.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CandleGranularity",
    "DepthLevel",
    "MatchType",
    "OrderNotice",
    "OrderStatus",
    "OrderType",
    "Side",
    "TimeInForce",
]


class Side(StrEnum):
    """Side of an order or a trade."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    """Order types the exchange accepts (``STOP`` is a stop-limit order).

    The later API calls the stop-limit type ``STOP_LIMIT`` (once ``STOP LIMIT``); both spellings
    decode to :attr:`STOP`, the one member for that order type.
    """

    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP = "STOP"

    @classmethod
    def _missing_(cls, value: object) -> OrderType | None:
        if isinstance(value, str) and value.upper().replace(" ", "_") == "STOP_LIMIT":
            return cls.STOP
        return None


class TimeInForce(StrEnum):
    """How long an order rests and whether it may take liquidity."""

    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    MAKER_ONLY = "MAKER_ONLY"
    MAKER_ONLY_REPRICE = "MAKER_ONLY_REPRICE"


class MatchType(StrEnum):
    """Whether an order provided (maker) or took (taker) liquidity in a match."""

    MAKER = "MAKER"
    TAKER = "TAKER"


class OrderNotice(StrEnum):
    """The ``notice`` field of an order-channel update."""

    OPENED = "OrderOpened"
    MODIFIED = "OrderModified"
    CLOSED = "OrderClosed"
    REJECTED = "OrderRejected"
    MATCHED = "OrderMatched"


class OrderStatus(StrEnum):
    """Order statuses seen in order notices and REST order listings."""

    OPEN = "OPEN"
    PARTIAL_FILL = "PARTIAL_FILL"
    FILLED = "FILLED"
    CANCELED_BY_USER = "CANCELED_BY_USER"
    CANCELED_BY_MAKER_ONLY = "CANCELED_BY_MAKER_ONLY"
    CANCELED_BY_FOK = "CANCELED_BY_FOK"
    CANCELED_ALL_BY_IOC = "CANCELED_ALL_BY_IOC"
    CANCELED_PARTIAL_BY_IOC = "CANCELED_PARTIAL_BY_IOC"
    CANCELED_BY_AMEND = "CANCELED_BY_AMEND"
    REJECT_CANCEL_ORDER_ID_NOT_FOUND = "REJECT_CANCEL_ORDER_ID_NOT_FOUND"
    REJECT_AMEND_ORDER_ID_NOT_FOUND = "REJECT_AMEND_ORDER_ID_NOT_FOUND"
    REJECT_QUANTITY_ZERO = "REJECT_QUANTITY_ZERO"
    REJECT_UNKNOW_ORDER_ACTION = "REJECT_UNKNOW_ORDER_ACTION"
    REJECT_LIMITE_ORDER_WITH_MARKET_PRICE = "REJECT_LIMITE_ORDER_WITH_MARKET_PRICE"
    STOP_PRICE_LARGER_THAN_LIMIT_PRICE = "STOP_PRICE_LARGER_THAN_LIMIT_PRICE"
    STOP_PRICE_LESS_THAN_LIMIT_PRICE = "STOP_PRICE_LESS_THAN_LIMIT_PRICE"

    @classmethod
    def _missing_(cls, value: object) -> OrderStatus | None:
        # The 2020-12 OrderMatched parameter table spells FILLED as FILL.
        return cls.FILLED if value == "FILL" else None


class DepthLevel(StrEnum):
    """Depth channel names: the later era's level variants and the 2020-12 name."""

    FULL = "depth"
    L5 = "depthL5"
    L10 = "depthL10"
    L25 = "depthL25"
    FUTURES = "futures/depth"

    @property
    def max_levels(self) -> int | None:
        """How many levels per side the channel carries (``None``: the whole book)."""
        return {"depthL5": 5, "depthL10": 10, "depthL25": 25}.get(self.value)


class CandleGranularity(StrEnum):
    """Candle widths; the channel is ``candles<granularity>:<marketCode>``."""

    S60 = "60s"
    S180 = "180s"
    S300 = "300s"
    S900 = "900s"
    S1800 = "1800s"
    S3600 = "3600s"
    S7200 = "7200s"
    S14400 = "14400s"
    S21600 = "21600s"
    S43200 = "43200s"
    S86400 = "86400s"

    @property
    def seconds(self) -> int:
        return int(self.value[:-1])
