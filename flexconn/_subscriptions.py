"""Fan-out: the exchange channels a connection holds and the feeds sharing each of them.

One :class:`Subscription` per exchange channel (its wire key, ``depthL25:BTC-USD-SWAP-LIN``), with
every consumer's :class:`~flexconn.feeds.Feed`. :class:`Fanout` delivers routed items to them:

* synchronously whenever every feed has room (:meth:`Fanout.offer`: no coroutine per message);
  once a ``BLOCK`` feed is full the reader awaits :meth:`Fanout.deliver` for the rest, in order;
* a wildcard channel's (``ticker:all``) feeds conflate per routed key (market or asset), never
  across keys, and the newest item of each key is kept for consumers who join later;
* updates of a trade channel being backfilled are held back (see :mod:`flexconn._backfill`).

The fan-out knows nothing of sockets: when the last consumer of a channel leaves it tells its
owner through ``on_unused`` (the connection unsubscribes).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from flexconn._backfill import TradeBackfill, TradeHistory
from flexconn.channels import ALL, Channel
from flexconn.config import Backpressure
from flexconn.errors import FlexconnError
from flexconn.feeds import Feed
from flexconn.models.enums import DepthLevel
from flexconn.models.market import DepthUpdate, TradeUpdate
from flexconn.protocol import routing

__all__ = ["Blocked", "Fanout", "Subscription"]

#: Deliveries that must wait for a full ``BLOCK`` feed: ``(subscription, item, routed key)``.
Blocked = list[tuple["Subscription", object, str]]


class Subscription:
    """One exchange channel and the consumers sharing it."""

    __slots__ = (
        "backfill",
        "channel",
        "conflatable",
        "feeds",
        "held",
        "internal",
        "latest",
        "trades",
        "wildcard",
    )

    def __init__(self, channel: Channel[Any]) -> None:
        self.channel = channel
        self.feeds: list[Feed[Any]] = []
        # Kept by the connection itself (the order channel behind ``conn.orders``): it stays
        # subscribed when its last consumer leaves.
        self.internal = False
        # Trade backfill: where to fetch missed trades, what was delivered, and live updates
        # held back while a backfill runs.
        self.backfill: TradeBackfill | None = None
        self.trades = TradeHistory()
        self.held: list[Any] | None = None
        # A wildcard channel (``ticker:all``) carries one item per market or asset: its feeds
        # conflate per routed key, never across keys.
        self.wildcard = channel.selector == ALL
        self.conflatable = channel.conflatable
        # The newest message of each key of a channel whose messages each carry the whole state
        # (books, tickers...), handed to a consumer who joins an existing subscription.
        self.latest: dict[str, Any] = {}


@functools.lru_cache(maxsize=1024)
def _depth_candidates(key: str) -> tuple[str, ...]:
    """The subscription keys of every depth variant of ``key``'s market, in level order."""
    market = key.partition(":")[2]
    return tuple(f"{level.value}:{market}" for level in DepthLevel)


class Fanout:
    """Every subscription of a connection, by wire key, and delivery to their feeds.

    Args:
        on_unused: called with a channel's key and subscription when its last feed closed (not
            for internal subscriptions); the subscription is already forgotten.
    """

    def __init__(self, *, on_unused: Callable[[str, Subscription], None]) -> None:
        self.subs: dict[str, Subscription] = {}
        #: True while the reader waits for a full ``BLOCK`` feed (the heartbeat forgives that).
        self.delivering = False
        #: Whether any depth channel is subscribed: only then may a frame be a depth frame worth
        #: peeking at (kept as subscriptions come and go, read per frame).
        self.has_depth = False
        self._on_unused = on_unused

    def _changed(self) -> None:
        self.has_depth = any(sub.channel.name.startswith("depth") for sub in self.subs.values())

    def get_or_add(self, channel: Channel[Any]) -> tuple[Subscription, bool]:
        """The subscription of ``channel``, and whether it was just created."""
        key = channel.wire
        sub = self.subs.get(key)
        if sub is not None:
            return sub, False
        sub = self.subs[key] = Subscription(channel)
        self._changed()
        return sub, True

    def attach(self, sub: Subscription, feed: Feed[Any]) -> None:
        """Add a consumer, handing it the newest item of each key already known."""
        sub.feeds.append(feed)
        for item_key, latest in sub.latest.items():
            feed.put_nowait(latest, item_key or None)

    def detach(self, feed: Feed[Any]) -> None:
        """A feed closed: forget it, and its subscription when it was the last consumer."""
        sub = self.subs.get(feed.channel)
        if sub is None or feed not in sub.feeds:
            return
        sub.feeds.remove(feed)
        if not sub.feeds and not sub.internal:
            del self.subs[feed.channel]
            self._changed()
            self._on_unused(feed.channel, sub)

    def drop(self, key: str, error: FlexconnError) -> None:
        """Forget a subscription the exchange refused, ending its feeds with ``error``."""
        sub = self.subs.pop(key, None)
        if sub is not None:
            self._changed()
            for feed in sub.feeds:
                feed.end(error)

    def forget_latest(self) -> None:
        """Forget every channel's newest items (they came from a socket that is gone)."""
        for sub in self.subs.values():
            sub.latest.clear()

    def feeds(self) -> Iterable[Feed[Any]]:
        for sub in self.subs.values():
            yield from sub.feeds

    def depth_variant(self, key: str) -> str:
        """The depth subscription a depth frame belongs to when its table does not name one.

        The document lists the table of every depth variant as ``depth``; a server that sends it
        so for a ``depthL25`` subscription is still understood.
        """
        for candidate in _depth_candidates(key):
            if candidate in self.subs:
                return candidate
        return key

    def route(self, routed: Iterable[tuple[str, Any]]) -> Blocked | None:
        """Deliver routed ``(key, item)`` pairs; returns those that must wait for a full
        ``BLOCK`` feed (the reader awaits them in order with :meth:`deliver`), if any.

        Once one delivery has to wait, the rest of the message's wait behind it.
        """
        subs = self.subs
        blocked: Blocked | None = None
        for key, item in routed:
            if key not in subs and isinstance(item, DepthUpdate):
                key = self.depth_variant(key)
            for wildcard in routing.subscription_keys(key):
                sub = subs.get(wildcard)
                if sub is None:
                    continue
                if sub.held is not None:
                    sub.held.append(item)
                    continue
                if sub.backfill is not None and isinstance(item, TradeUpdate):
                    item = sub.trades.remember(item)
                    if item is None:
                        continue
                if blocked is None and self.offer(sub, item, key):
                    continue
                blocked = blocked or []
                blocked.append((sub, item, key))
        return blocked

    def offer(self, sub: Subscription, item: object, key: str) -> bool:
        """Deliver ``item`` if every feed takes it at once (no ``BLOCK`` feed is full), without
        the cost of a coroutine; returns whether it did (if not, nothing was delivered).

        ``key`` is the item's routed key (``ticker:BTC-USD``): a wildcard subscription's feeds
        conflate per key, and keep the newest item of each key for late joiners.
        """
        feeds = sub.feeds
        for feed in feeds:
            if feed.policy is Backpressure.BLOCK and not feed.has_room():
                return False
        if sub.conflatable:
            sub.latest[key if sub.wildcard else ""] = item
        for feed in feeds:
            feed.put_nowait(item, key)
        return True

    async def deliver(self, sub: Subscription, item: object, key: str = "") -> None:
        """Deliver ``item`` to every feed, waiting for full ``BLOCK`` feeds in turn."""
        if sub.conflatable:
            sub.latest[key if sub.wildcard else ""] = item
        for feed in list(sub.feeds):
            if not feed.put_nowait(item, key):
                self.delivering = True
                try:
                    await feed.put(item, key)
                finally:
                    self.delivering = False
