"""Who is subscribed to what: the simulator's channel registry.

A channel is ``<kind>:<arg>`` (``depthL25:BTC-USD``, ``ticker:all``, ``order:all``). Public
channels are indexed ``kind -> arg -> subscribers`` so a publisher walks only the channels that
have someone listening; private channels add the account in front
(``account -> kind -> arg -> subscribers``). Empty entries are pruned as subscribers leave.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from flexconn.sim.wire import Frame

__all__ = ["Fanout", "Subscriber"]


class Subscriber(Protocol):
    """A connection that receives pushed frames (implemented by the WebSocket server)."""

    @property
    def account_id(self) -> str | None:
        """The logged-in account, or ``None``."""
        ...

    def push(self, frame: Frame) -> None:
        """Queue ``frame`` for sending; never blocks (a too-slow receiver is disconnected)."""
        ...


_Index = dict[str, dict[str, set[Subscriber]]]


def _add(index: _Index, kind: str, arg: str, sub: Subscriber) -> None:
    index.setdefault(kind, {}).setdefault(arg, set()).add(sub)


def _discard(index: _Index, kind: str, arg: str, sub: Subscriber) -> None:
    args = index.get(kind)
    if args is None:
        return
    subs = args.get(arg)
    if subs is None:
        return
    subs.discard(sub)
    if not subs:
        del args[arg]
        if not args:
            del index[kind]


class Fanout:
    """The subscription registry of one simulated exchange."""

    def __init__(self) -> None:
        self._public: _Index = {}
        self._private: dict[str, _Index] = {}
        self._accounts: dict[str, set[Subscriber]] = {}
        # Reverse index, to forget a closing connection in one pass.
        self._held: dict[Subscriber, set[tuple[str | None, str, str]]] = {}

    # --- registration -----------------------------------------------------------------------

    def subscribe(self, sub: Subscriber, kind: str, arg: str, *, account_id: str | None) -> None:
        """Add ``sub`` to ``kind:arg`` (a private channel of ``account_id`` when given)."""
        if account_id is None:
            _add(self._public, kind, arg, sub)
        else:
            _add(self._private.setdefault(account_id, {}), kind, arg, sub)
        self._held.setdefault(sub, set()).add((account_id, kind, arg))

    def unsubscribe(self, sub: Subscriber, kind: str, arg: str, *, account_id: str | None) -> None:
        """Remove ``sub`` from ``kind:arg``; a no-op when it was not subscribed."""
        if account_id is None:
            _discard(self._public, kind, arg, sub)
        else:
            index = self._private.get(account_id)
            if index is not None:
                _discard(index, kind, arg, sub)
                if not index:
                    del self._private[account_id]
        held = self._held.get(sub)
        if held is not None:
            held.discard((account_id, kind, arg))

    def is_subscribed(
        self, sub: Subscriber, kind: str, arg: str, *, account_id: str | None
    ) -> bool:
        return (account_id, kind, arg) in self._held.get(sub, ())

    def login(self, sub: Subscriber, account_id: str) -> None:
        """Record that ``sub`` is authenticated as ``account_id``."""
        self._accounts.setdefault(account_id, set()).add(sub)

    def remove(self, sub: Subscriber) -> None:
        """Forget a connection entirely (it closed)."""
        for account_id, kind, arg in self._held.pop(sub, set()):
            self.unsubscribe(sub, kind, arg, account_id=account_id)
        account_id = sub.account_id
        if account_id is not None:
            subs = self._accounts.get(account_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._accounts[account_id]

    # --- lookup -----------------------------------------------------------------------------

    def public(self, kind: str) -> dict[str, set[Subscriber]]:
        """``arg -> subscribers`` of one public channel kind (empty when nobody listens)."""
        return self._public.get(kind, {})

    def public_kinds(self) -> Iterable[str]:
        """The public channel kinds that have at least one subscriber."""
        return self._public.keys()

    def private(self, account_id: str, kind: str) -> dict[str, set[Subscriber]]:
        """``arg -> subscribers`` of one private channel kind of one account."""
        index = self._private.get(account_id)
        return index.get(kind, {}) if index is not None else {}

    def private_accounts(self, kind: str) -> Iterator[tuple[str, dict[str, set[Subscriber]]]]:
        """Every account with subscribers to ``kind``, with its ``arg -> subscribers``."""
        for account_id, index in self._private.items():
            args = index.get(kind)
            if args:
                yield account_id, args

    def account_connections(self, account_id: str) -> set[Subscriber]:
        """Every logged-in connection of the account."""
        return self._accounts.get(account_id, set())

    def send(self, subs: Iterable[Subscriber], frame: Frame) -> None:
        """Push one shared frame to each subscriber."""
        for sub in subs:
            sub.push(frame)

    def send_private(self, account_id: str, kind: str, arg: str, frame: Frame) -> None:
        """Push to the account's subscribers of ``kind:all`` and ``kind:<arg>``, once each."""
        args = self.private(account_id, kind)
        if not args:
            return
        everything = args.get("all")
        specific = args.get(arg)
        if everything:
            for sub in everything:
                sub.push(frame)
        if specific:
            for sub in specific:
                if not everything or sub not in everything:
                    sub.push(frame)
