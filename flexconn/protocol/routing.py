"""The routing rules of :mod:`flexconn.protocol.decode` as functions, for the connection manager.

Sans-IO helpers: build the connection's own commands (login, subscribe, unsubscribe), classify a
decoded message as a reply (and to which command), or route it to subscription keys.

Dispatch is a route table keyed by the message's exact type, not a chain of ``isinstance`` tests:
:func:`handlers_of` gives a type's :class:`Handlers` (its reply-key function and its routing
function, either ``None``), looked up once per type and cached. A reader handles a message with
one dictionary look-up::

    handlers = handlers_of(type(message))
    if handlers.reply is not None:
        settle(handlers.reply(message))  # ((key, error), ...)
    elif handlers.route is not None:
        deliver(handlers.route(message))  # ((subscription key, message), ...)
    else:
        ...  # connection messages (Greeting, UnknownMessage)

:func:`reply_keys` and :func:`route` are that table's two columns as functions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

import attrs

from flexconn.errors import ExchangeError
from flexconn.models.base import ChannelUpdate
from flexconn.models.notices import CancelAllNotice, OrderFailureNotice
from flexconn.models.orders import LoginRequest, SubscribeRequest, Tag, UnsubscribeRequest
from flexconn.models.replies import (
    ErrorReply,
    LoginReply,
    OrderReply,
    Pong,
    SubscribeReply,
    UnsubscribeReply,
)
from flexconn.protocol.channel_names import ALL, WILDCARD_CHANNELS
from flexconn.protocol.signing import ws_login_signature

__all__ = [
    "ChannelLike",
    "Handlers",
    "KeyPair",
    "classify_reply",
    "handlers_of",
    "login_request",
    "reply_keys",
    "route",
    "subscribe_request",
    "subscription_keys",
    "unsubscribe_request",
]


class KeyPair(Protocol):
    """What the login needs of credentials (:class:`flexconn.auth.Credentials` is one)."""

    @property
    def api_key(self) -> str: ...

    @property
    def api_secret(self) -> str: ...


class ChannelLike(Protocol):
    """A channel given as an object (:class:`flexconn.channels.Channel` is one)."""

    @property
    def wire(self) -> str: ...


def _keys(channels: Iterable[str | ChannelLike]) -> tuple[str, ...]:
    return tuple(c if isinstance(c, str) else c.wire for c in channels)


def login_request(
    credentials: KeyPair, *, timestamp_ms: int, tag: Tag | None = None
) -> LoginRequest:
    """The ``login`` command for ``credentials``, signed over ``timestamp_ms``."""
    timestamp = str(timestamp_ms)
    return LoginRequest(
        api_key=credentials.api_key,
        timestamp=timestamp,
        signature=ws_login_signature(credentials.api_secret, timestamp),
        tag=tag,
    )


def subscribe_request(
    channels: Iterable[str | ChannelLike], *, tag: Tag | None = None
) -> SubscribeRequest:
    """One ``subscribe`` command for every channel (keys or :class:`ChannelLike` objects)."""
    return SubscribeRequest(channels=_keys(channels), tag=tag)


def unsubscribe_request(
    channels: Iterable[str | ChannelLike], *, tag: Tag | None = None
) -> UnsubscribeRequest:
    """One ``unsubscribe`` command for every channel."""
    return UnsubscribeRequest(channels=_keys(channels), tag=tag)


_ReplyKeys = tuple[tuple[str, ExchangeError | None], ...]


def _pong_keys(message: Pong) -> _ReplyKeys:
    return (("pong", None),)


def _login_keys(message: LoginReply) -> _ReplyKeys:
    return (("login", message.error()),)


def _subscription_keys(message: SubscribeReply | UnsubscribeReply) -> _ReplyKeys:
    error = message.error()
    if not message.channels:
        return ((message.event, error),)
    return tuple((f"{message.event}:{channel}", error) for channel in message.channels)


def _error_keys(message: ErrorReply) -> _ReplyKeys:
    return (("error", message.error()),)


def _order_keys(message: OrderReply) -> _ReplyKeys:
    action = message.action.value
    key = action if message.tag is None else f"{action}:{message.tag}"
    return ((key, message.error()),)


def _split(message: ChannelUpdate[Any]) -> tuple[tuple[str, Any], ...]:
    return message.split()


def _failure_route(message: OrderFailureNotice) -> tuple[tuple[str, Any], ...]:
    return ((f"order:{message.market_code or ALL}", message),)


def _cancel_all_route(message: CancelAllNotice) -> tuple[tuple[str, Any], ...]:
    return ((f"order:{ALL}", message),)


@attrs.frozen
class Handlers:
    """How one message type is handled: at most one of the two is set."""

    #: ``message -> ((reply key, error), ...)`` for replies (see :func:`reply_keys`).
    reply: Callable[[Any], _ReplyKeys] | None = None
    #: ``message -> ((subscription key, message), ...)`` for channel data (see :func:`route`).
    route: Callable[[Any], tuple[tuple[str, Any], ...]] | None = None


_NOTHING: Final = Handlers()

#: The route table: exact message type -> handlers. Types not listed (subclasses, new channel
#: updates) are resolved along their MRO on first sight and cached by :func:`handlers_of`.
_TABLE: Final[dict[type, Handlers]] = {
    Pong: Handlers(reply=_pong_keys),
    LoginReply: Handlers(reply=_login_keys),
    SubscribeReply: Handlers(reply=_subscription_keys),
    UnsubscribeReply: Handlers(reply=_subscription_keys),
    ErrorReply: Handlers(reply=_error_keys),
    OrderReply: Handlers(reply=_order_keys),
    OrderFailureNotice: Handlers(route=_failure_route),
    CancelAllNotice: Handlers(route=_cancel_all_route),
    ChannelUpdate: Handlers(route=_split),
}
_CACHE: dict[type, Handlers] = dict(_TABLE)


def handlers_of(message_type: type) -> Handlers:
    """The :class:`Handlers` of a decoded message's type (empty for connection messages)."""
    found = _CACHE.get(message_type)
    if found is None:
        found = next((_TABLE[base] for base in message_type.__mro__ if base in _TABLE), _NOTHING)
        _CACHE[message_type] = found
    return found


def reply_keys(message: object) -> tuple[tuple[str, ExchangeError | None], ...]:
    """Every ``(key, error)`` a reply answers; empty when ``message`` is not a reply.

    Keys: ``pong``; ``login``; ``subscribe:<channel>`` / ``unsubscribe:<channel>`` for each
    channel the reply names (just ``subscribe`` / ``unsubscribe`` when a failure names none);
    ``error`` for an :class:`ErrorReply`; ``<action>:<tag>`` for an :class:`OrderReply`
    (``placeorder:17``, just ``placeorder`` without a tag; the action sees through a modify
    echoed as ``placeorder``). ``error`` is
    the exchange error of a failed reply, else ``None``.
    """
    reply = handlers_of(type(message)).reply
    return () if reply is None else reply(message)


def classify_reply(message: object) -> tuple[str, ExchangeError | None] | None:
    """The first ``(key, error)`` of :func:`reply_keys`, or ``None`` when not a reply.

    A 2020-12 ``subscribe`` reply may list several channels; use :func:`reply_keys` for all.
    """
    keys = reply_keys(message)
    return keys[0] if keys else None


def route(message: object) -> tuple[tuple[str, Any], ...] | None:
    """``(subscription key, message)`` pairs for a channel update or an order notice event.

    A channel update is split so that each part holds one key's items (see
    :meth:`ChannelUpdate.split`). ``None`` means the message is not for a subscription.
    """
    router = handlers_of(type(message)).route
    return None if router is None else router(message)


@functools.lru_cache(maxsize=4096)
def subscription_keys(key: str) -> tuple[str, ...]:
    """The subscriptions that receive an item routed to ``key``: itself, and ``<channel>:all``
    for channels that have one (``order:BTC-USD`` -> ``order:BTC-USD``, ``order:all``)."""
    name, _, selector = key.partition(":")
    if name in WILDCARD_CHANNELS and selector != ALL:
        return (key, f"{name}:{ALL}")
    return (key,)
