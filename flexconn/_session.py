"""The session core: the protocol state of one connection's sockets, as data (sans-IO).

Design note. In the spirit of h11, :class:`SessionCore` never awaits, never imports trio and
never touches a socket: the connection's tasks (supervisor, reader, heartbeat) feed it decoded
replies and the clock (``now``, trio seconds) and act on what it returns. It holds:

* the channels the connection wants (every feed's and the internal order channel), which of them
  the exchange acknowledged on this socket, and which were ever acknowledged (the ones a reconnect
  restarts with a :class:`~flexconn.feeds.StreamRestarted` marker);
* the commands waiting for a reply, keyed by typed :class:`ReplyKey` values in the order they were
  sent (a failure that names no channel answers the oldest command of its kind, a bare ``error``
  event the oldest command of any kind);
* the heartbeat's clock: when a frame last arrived, when the outstanding ping was sent.

Replies go in through :meth:`SessionCore.receive_reply` and come out as events:

==========================  ==========================================================
:class:`ReplySettled`       a pending command's answer (``error`` set on a refusal);
                            every pending key is settled exactly once, or returned by
                            :meth:`SessionCore.session_lost` when the socket dies
:class:`PongReceived`       the answer to a text ``ping``
:class:`UnsolicitedReply`   a reply no pending command was waiting for
==========================  ==========================================================

Channel transitions (one socket)::

    want() -> WANTED --subscribe()--> REQUESTED --ack--> ACKED
                          ^                  \\--refused--> (forgotten; its feeds end)
                          \\---- session_started() (every channel) -----/
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from flexconn.errors import ExchangeError
from flexconn.models.replies import (
    ErrorReply,
    LoginReply,
    OrderReply,
    Pong,
    SubscribeReply,
    UnsubscribeReply,
)

__all__ = [
    "LOGIN",
    "ChannelState",
    "PongReceived",
    "ReplyKey",
    "ReplyKind",
    "ReplySettled",
    "SessionCore",
    "SessionEvent",
    "UnsolicitedReply",
]


class ReplyKind(enum.Enum):
    """The command a reply answers."""

    LOGIN = "login"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"


@attrs.frozen
class ReplyKey:
    """What a pending command waits for: its kind and, for (un)subscriptions, the channel."""

    kind: ReplyKind
    channel: str | None = None

    def __str__(self) -> str:
        return self.kind.value if self.channel is None else f"{self.kind.value}:{self.channel}"


LOGIN = ReplyKey(ReplyKind.LOGIN)


class ChannelState(enum.Enum):
    """A wanted channel on the current socket."""

    WANTED = "wanted"  # not asked for on this socket yet
    REQUESTED = "requested"  # a subscribe command is waiting for its reply
    ACKED = "acked"  # the exchange confirmed it


@attrs.frozen(kw_only=True)
class ReplySettled:
    """A pending command's reply arrived: ``error`` is the exchange's refusal, or ``None``."""

    key: ReplyKey
    error: ExchangeError | None


@attrs.frozen
class PongReceived:
    """The text ``pong`` answering a text ``ping``."""


@attrs.frozen(kw_only=True)
class UnsolicitedReply:
    """A reply no pending command was waiting for (``detail`` names what it answers)."""

    detail: str
    error: ExchangeError | None
    message: object


SessionEvent = ReplySettled | PongReceived | UnsolicitedReply


class SessionCore:
    """The protocol state of a connection across its sockets; see the module notes."""

    def __init__(self) -> None:
        self._channels: dict[str, ChannelState] = {}
        self._ever_acked: set[str] = set()
        self._pending: dict[ReplyKey, None] = {}
        self.last_inbound = 0.0
        self._ping_sent_at: float | None = None

    # -- channels ----------------------------------------------------------------------------

    def want(self, channel: str) -> bool:
        """Register a channel the connection needs; returns whether it was new."""
        if channel in self._channels:
            return False
        self._channels[channel] = ChannelState.WANTED
        return True

    def forget(self, channel: str) -> bool:
        """The connection no longer needs ``channel``; returns whether the exchange had
        acknowledged it on this socket (then it should be told to stop)."""
        state = self._channels.pop(channel, None)
        self._ever_acked.discard(channel)
        return state is ChannelState.ACKED

    def state_of(self, channel: str) -> ChannelState | None:
        return self._channels.get(channel)

    def unacked(self) -> list[str]:
        """Wanted channels the exchange has not acknowledged on this socket, in order."""
        return [c for c, state in self._channels.items() if state is not ChannelState.ACKED]

    def was_live(self, channel: str) -> bool:
        """Whether ``channel`` was ever acknowledged (it may have missed data in a drop)."""
        return channel in self._ever_acked

    def unsubscribed(self, channel: str) -> None:
        """The channel was unsubscribed (to subscribe it afresh): it is wanted again."""
        if channel in self._channels:
            self._channels[channel] = ChannelState.WANTED

    # -- commands ----------------------------------------------------------------------------

    def expect(self, key: ReplyKey) -> ReplyKey:
        """Register a command about to be sent as waiting for ``key``'s reply."""
        self._pending.pop(key, None)  # a command sent again waits as the newest
        self._pending[key] = None
        if key.kind is ReplyKind.SUBSCRIBE and key.channel in self._channels:
            self._channels[key.channel] = ChannelState.REQUESTED
        return key

    def subscribing(self, channels: Iterable[str]) -> list[ReplyKey]:
        """Register one subscribe command for ``channels``; returns the keys it waits for."""
        return [self.expect(ReplyKey(ReplyKind.SUBSCRIBE, channel)) for channel in channels]

    def abandon(self, key: ReplyKey) -> bool:
        """Stop waiting for ``key`` (the caller gave up); returns whether it was pending."""
        if self._pending.pop(key, 0) is None:
            if key.kind is ReplyKind.SUBSCRIBE and key.channel in self._channels:
                self._channels[key.channel] = ChannelState.WANTED
            return True
        return False

    @property
    def pending(self) -> tuple[ReplyKey, ...]:
        return tuple(self._pending)

    def receive_reply(self, message: object) -> list[SessionEvent]:
        """Take one decoded reply (not an order reply the outbox consumed); returns its events."""
        if isinstance(message, Pong):
            return [PongReceived()]
        if isinstance(message, LoginReply):
            return [self._settle(LOGIN, message.error(), message)]
        if isinstance(message, SubscribeReply | UnsubscribeReply):
            kind = ReplyKind.SUBSCRIBE if message.event == "subscribe" else ReplyKind.UNSUBSCRIBE
            error = message.error()
            if not message.channels:
                oldest = self._oldest(kind)
                return [self._settle(oldest or ReplyKey(kind), error, message)]
            return [self._settle(ReplyKey(kind, c), error, message) for c in message.channels]
        if isinstance(message, ErrorReply):
            oldest = self._oldest(None)
            if oldest is None:
                return [UnsolicitedReply(detail="error", error=message.error(), message=message)]
            return [self._settle(oldest, message.error(), message)]
        if isinstance(message, OrderReply):
            action = message.action.value
            detail = action if message.tag is None else f"{action}:{message.tag}"
            return [UnsolicitedReply(detail=detail, error=message.error(), message=message)]
        return []

    def _oldest(self, kind: ReplyKind | None) -> ReplyKey | None:
        for key in self._pending:
            if kind is None or key.kind is kind:
                return key
        return None

    def _settle(
        self, key: ReplyKey, error: ExchangeError | None, message: object
    ) -> ReplySettled | UnsolicitedReply:
        if self._pending.pop(key, 0) is not None:
            return UnsolicitedReply(detail=str(key), error=error, message=message)
        channel = key.channel
        if key.kind is ReplyKind.SUBSCRIBE and channel is not None and channel in self._channels:
            if error is None:
                self._channels[channel] = ChannelState.ACKED
                self._ever_acked.add(channel)
            else:
                del self._channels[channel]
                self._ever_acked.discard(channel)
        return ReplySettled(key=key, error=error)

    # -- sockets and heartbeat -----------------------------------------------------------------

    def session_started(self, now: float) -> None:
        """A new socket opened: nothing is acknowledged on it yet, nothing is pending."""
        for channel in self._channels:
            self._channels[channel] = ChannelState.WANTED
        self._pending.clear()
        self.last_inbound = now
        self._ping_sent_at = None

    def session_lost(self) -> list[ReplyKey]:
        """The socket died: returns every command still waiting (to be failed), oldest first."""
        lost = list(self._pending)
        self._pending.clear()
        for channel, state in self._channels.items():
            if state is ChannelState.REQUESTED:
                self._channels[channel] = ChannelState.WANTED
        return lost

    def frame_received(self, now: float) -> None:
        self.last_inbound = now

    def ping_sent(self, now: float) -> None:
        self._ping_sent_at = now

    def ping_unanswered(self, *, delivering: bool) -> bool:
        """The heartbeat's verdict once a ping got no pong in time: dead unless any frame came
        after the ping, or the reader is held by a full ``BLOCK`` feed (its fault, not the
        socket's)."""
        sent_at = self._ping_sent_at
        if sent_at is None or delivering:
            return False
        return self.last_inbound < sent_at
