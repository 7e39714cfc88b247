"""The public ``liquidationRFQ`` channel: notice of an imminent liquidation event.

The later WebSocket document adds this channel (the 2020-12 one has none). The exchange publishes
an item about 50 ms before a liquidation event is due: the liquidation of a client's position, or
an automatic borrow or repayment in a repo book. Each item names only the market and the time;
it invites quotes for the coming event. The subscription is the bare name ``liquidationRFQ``
(no ``:<market>``), so every item routes to that one key whatever its market.

Read leniently: ``timestamp`` may be a digit string or a number, and may be missing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Self

import attrs

from flexconn._codec import ms_to_datetime
from flexconn.models.base import ChannelUpdate

__all__ = ["LIQUIDATION_RFQ", "LiquidationRFQ", "LiquidationRFQUpdate"]

#: The channel name, which is also its only subscription key.
LIQUIDATION_RFQ: Final = "liquidationRFQ"


@attrs.frozen(kw_only=True)
class LiquidationRFQ:
    """One upcoming liquidation event in ``market_code`` (perpetual, future, index or repo)."""

    market_code: str
    #: When the exchange announced it (epoch ms); ``None`` if the item carries no timestamp.
    timestamp: int | None = None

    @property
    def time(self) -> datetime | None:
        """``timestamp`` as an aware UTC datetime."""
        return None if self.timestamp is None else ms_to_datetime(self.timestamp)


@attrs.frozen(kw_only=True)
class LiquidationRFQUpdate(ChannelUpdate[LiquidationRFQ]):
    """A ``liquidationRFQ`` channel frame; every item routes to the key ``liquidationRFQ``."""

    data: tuple[LiquidationRFQ, ...]
    table: str = attrs.field(default=LIQUIDATION_RFQ, init=False)

    @property
    def channel(self) -> str:
        return LIQUIDATION_RFQ

    def selector(self, item: LiquidationRFQ) -> str:
        return item.market_code

    def keys(self) -> tuple[str, ...]:
        """The one subscription key, ``liquidationRFQ`` (the channel takes no market)."""
        return (LIQUIDATION_RFQ,)

    def split(self) -> tuple[tuple[str, Self], ...]:
        """The whole update under ``liquidationRFQ``."""
        return ((LIQUIDATION_RFQ, self),)
