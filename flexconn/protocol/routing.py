"""The routing rules of :mod:`flexconn.protocol.decode` as functions, for the connection manager.

Sans-IO helpers: build the connection's own commands (login, subscribe, unsubscribe), classify a
decoded message as a reply (and to which command), or route it to subscription keys.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from flexconn.auth import Credentials, ws_login_data
from flexconn.channels import ALL, WILDCARD_CHANNELS, Channel
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

__all__ = [
    "classify_reply",
    "login_request",
    "reply_keys",
    "route",
    "subscribe_request",
    "subscription_keys",
    "unsubscribe_request",
]


def login_request(
    credentials: Credentials, *, timestamp_ms: int, tag: Tag | None = None
) -> LoginRequest:
    """The ``login`` command for ``credentials``, signed over ``timestamp_ms``."""
    data = ws_login_data(credentials, timestamp_ms=timestamp_ms)
    return LoginRequest(
        api_key=data["apiKey"], timestamp=data["timestamp"], signature=data["signature"], tag=tag
    )


def subscribe_request(
    channels: Iterable[str | Channel[Any]], *, tag: Tag | None = None
) -> SubscribeRequest:
    """One ``subscribe`` command for every channel (keys or :class:`Channel` objects)."""
    return SubscribeRequest(channels=tuple(str(c) for c in channels), tag=tag)


def unsubscribe_request(
    channels: Iterable[str | Channel[Any]], *, tag: Tag | None = None
) -> UnsubscribeRequest:
    """One ``unsubscribe`` command for every channel."""
    return UnsubscribeRequest(channels=tuple(str(c) for c in channels), tag=tag)


def reply_keys(message: object) -> tuple[tuple[str, ExchangeError | None], ...]:
    """Every ``(key, error)`` a reply answers; empty when ``message`` is not a reply.

    Keys: ``pong``; ``login``; ``subscribe:<channel>`` / ``unsubscribe:<channel>`` for each
    channel the reply names (just ``subscribe`` / ``unsubscribe`` when a failure names none);
    ``error`` for an :class:`ErrorReply`; ``<action>:<tag>`` for an :class:`OrderReply`
    (``placeorder:17``, just ``placeorder`` without a tag; the action sees through a modify
    echoed as ``placeorder``). ``error`` is
    the exchange error of a failed reply, else ``None``.
    """
    if isinstance(message, Pong):
        return (("pong", None),)
    if isinstance(message, LoginReply):
        return (("login", message.error()),)
    if isinstance(message, SubscribeReply | UnsubscribeReply):
        error = message.error()
        if not message.channels:
            return ((message.event, error),)
        return tuple((f"{message.event}:{channel}", error) for channel in message.channels)
    if isinstance(message, ErrorReply):
        return (("error", message.error()),)
    if isinstance(message, OrderReply):
        action = message.action.value
        key = action if message.tag is None else f"{action}:{message.tag}"
        return ((key, message.error()),)
    return ()


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
    if isinstance(message, ChannelUpdate):
        return message.split()
    if isinstance(message, OrderFailureNotice):
        return ((f"order:{message.market_code or ALL}", message),)
    if isinstance(message, CancelAllNotice):
        return ((f"order:{ALL}", message),)
    return None


@functools.lru_cache(maxsize=4096)
def subscription_keys(key: str) -> tuple[str, ...]:
    """The subscriptions that receive an item routed to ``key``: itself, and ``<channel>:all``
    for channels that have one (``order:BTC-USD`` -> ``order:BTC-USD``, ``order:all``)."""
    name, _, selector = key.partition(":")
    if name in WILDCARD_CHANNELS and selector != ALL:
        return (key, f"{name}:{ALL}")
    return (key,)
