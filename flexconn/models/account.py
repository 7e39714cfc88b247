"""Private account channel updates: balances and positions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar

import attrs

from flexconn._codec import decimals_as_strings, ms_to_datetime, wire
from flexconn.models.base import ChannelUpdate

__all__ = ["Balance", "BalanceUpdate", "Position", "PositionUpdate"]


@decimals_as_strings
@attrs.frozen(kw_only=True)
class Balance:
    """One spot asset balance: ``available`` is ``total - reserved``."""

    #: The asset, e.g. ``USD`` or ``FLEX``.
    instrument_id: str
    total: Decimal
    reserved: Decimal
    available: Decimal
    quantity_last_updated: int | None = None


@decimals_as_strings
@attrs.frozen(kw_only=True)
class BalanceUpdate(ChannelUpdate[Balance]):
    """A ``balance`` channel frame; account fields sit beside ``data`` on the wire."""

    WILDCARD: ClassVar[bool] = True

    account_id: str
    timestamp: int
    trade_type: str | None = None
    data: tuple[Balance, ...]
    table: str = attrs.field(default="balance", init=False)

    @property
    def channel(self) -> str:
        return "balance"

    def selector(self, item: Balance) -> str:
        return item.instrument_id

    @property
    def time(self) -> datetime:
        return ms_to_datetime(self.timestamp)


@decimals_as_strings
@attrs.frozen(kw_only=True)
class Position:
    """The account's position in one market (``quantity`` is signed: negative is short)."""

    market_code: str = attrs.field(metadata=wire("instrumentId"))
    quantity: Decimal
    entry_price: Decimal
    contract_val_currency: str | None = None
    last_updated: int | None = None
    position_pnl: Decimal | None = None
    est_liquidation_price: Decimal | None = None


@decimals_as_strings
@attrs.frozen(kw_only=True)
class PositionUpdate(ChannelUpdate[Position]):
    """A ``position`` channel frame."""

    WILDCARD: ClassVar[bool] = True

    account_id: str
    timestamp: int
    data: tuple[Position, ...]
    table: str = attrs.field(default="position", init=False)

    @property
    def channel(self) -> str:
        return "position"

    def selector(self, item: Position) -> str:
        return item.market_code

    @property
    def time(self) -> datetime:
        return ms_to_datetime(self.timestamp)
