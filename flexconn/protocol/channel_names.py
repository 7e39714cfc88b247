"""The grammar of subscription keys: which channel names exist and what selector each takes.

A key is ``<name>:<selector>`` (``depthL25:BTC-USD-SWAP-LIN``, ``order:all``), except the bare
channels (``liquidationRFQ``), subscribed by their name alone. These are facts of the wire
protocol, so they live here; :mod:`flexconn.channels` adds what a subscription yields (the message
types) on top, and the request validator (:mod:`flexconn.protocol.encode`) checks subscribe and
unsubscribe arguments with :func:`parse_key`.
"""

from __future__ import annotations

import re
from typing import Final

from flexconn.errors import ValidationError
from flexconn.models.enums import CandleGranularity, DepthLevel
from flexconn.models.liquidation import LIQUIDATION_RFQ

__all__ = [
    "ALL",
    "BARE_CHANNELS",
    "CHANNEL_NAMES",
    "PRIVATE_CHANNELS",
    "WILDCARD_CHANNELS",
    "check_channel",
    "parse_key",
]

#: The selector meaning "every market / asset".
ALL: Final = "all"
#: Channels that need an authenticated connection.
PRIVATE_CHANNELS: Final = frozenset({"balance", "position", "order"})
#: Channels with an ``<name>:all`` subscription.
WILDCARD_CHANNELS: Final = frozenset({"ticker", "market", "balance", "position", "order"})
#: Channels subscribed by their bare name, without ``:<selector>``.
BARE_CHANNELS: Final = frozenset({LIQUIDATION_RFQ})
#: Every channel name the exchange serves.
CHANNEL_NAMES: Final = frozenset(
    {
        "trade",
        "ticker",
        "market",
        "balance",
        "position",
        "order",
        LIQUIDATION_RFQ,
        *(level.value for level in DepthLevel),
        *(f"candles{g.value}" for g in CandleGranularity),
    }
)

_SELECTOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


def _check_name(name: str, field: str) -> None:
    if name not in CHANNEL_NAMES:
        raise ValidationError(field, f"unknown channel {name!r}")


def _check_selector(name: str, selector: str, field: str) -> None:
    if name in BARE_CHANNELS:
        if selector:
            raise ValidationError(field, f"channel {name!r} takes no market or 'all'")
        return
    if selector == ALL:
        if name not in WILDCARD_CHANNELS:
            raise ValidationError(field, f"channel {name!r} needs a market code, not 'all'")
        return
    if not isinstance(selector, str) or not _SELECTOR.fullmatch(selector):
        raise ValidationError(field, f"invalid market code or asset {selector!r}")


def check_channel(name: str, selector: str, field: str = "channel") -> None:
    """Check a channel ``name`` and its ``selector`` (``""`` for a bare channel).

    Raises:
        ValidationError: an unknown name, or a selector the channel does not take.
    """
    _check_name(name, field)
    _check_selector(name, selector, field)


def parse_key(text: str, *, field: str = "channel") -> tuple[str, str]:
    """Split and check a subscription key: ``"depthL25:BTC-USD"`` -> ``("depthL25", "BTC-USD")``.

    Args:
        text: the subscription key.
        field: the name to report in a :class:`ValidationError`.

    Raises:
        ValidationError: not a channel the exchange serves, or a malformed selector.
    """
    if not isinstance(text, str):
        raise ValidationError(field, f"a channel is a string, got {type(text).__name__}")
    name, sep, selector = text.partition(":")
    if not sep and name not in BARE_CHANNELS:
        raise ValidationError(field, f"{text!r} is not '<channel>:<market or all>'")
    if sep and name in BARE_CHANNELS:
        raise ValidationError(field, f"channel {name!r} takes no market: subscribe to {name!r}")
    check_channel(name, selector, field)
    return name, selector
