"""What every channel update (``{"table": ..., "data": [...]}``) has in common: its routing.

A channel update carries a tuple of items; each item names the market (or asset) it concerns.
The subscription key of an item is ``<channel>:<selector>``, where ``channel`` is the name used to
subscribe (``trade``, ``depthL25``, ``candles60s``...; not always the wire ``table``: candles
arrive in table ``candle60s``) and ``selector`` is the item's market code, asset id, or ``all``
when the item names neither.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Self, TypeVar

import attrs

__all__ = ["ChannelUpdate"]

ItemT = TypeVar("ItemT")


class ChannelUpdate(Generic[ItemT]):
    """Base of every channel update: routing by :attr:`channel` and each item's selector."""

    __slots__ = ()

    #: Whether the channel also has a ``<channel>:all`` subscription receiving every item.
    WILDCARD: ClassVar[bool] = False

    data: tuple[ItemT, ...]

    @property
    def channel(self) -> str:
        """The channel name this update belongs to (the part of the key before ``:``)."""
        raise NotImplementedError

    def selector(self, item: ItemT) -> str:
        """The part of ``item``'s subscription key after ``:``."""
        raise NotImplementedError

    def keys(self) -> tuple[str, ...]:
        """The distinct subscription keys of the items, in order of first appearance."""
        channel = self.channel
        return tuple(dict.fromkeys(f"{channel}:{self.selector(item)}" for item in self.data))

    def split(self) -> tuple[tuple[str, Self], ...]:
        """This update as ``(key, update)`` pairs, one per subscription key.

        The common single-key case returns ``self`` unchanged; otherwise each part is a copy of
        this update holding only that key's items, in their original order.
        """
        channel = self.channel
        data = self.data
        if len(data) == 1:  # the common case: one item, one key, no grouping
            return ((f"{channel}:{self.selector(data[0])}", self),)
        groups: dict[str, list[ItemT]] = {}
        for item in self.data:
            groups.setdefault(f"{channel}:{self.selector(item)}", []).append(item)
        if len(groups) <= 1:
            return tuple((key, self) for key in groups) or ((f"{channel}:all", self),)
        evolve: Any = attrs.evolve
        return tuple((key, evolve(self, data=tuple(items))) for key, items in groups.items())
