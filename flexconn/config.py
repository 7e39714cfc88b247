"""Small frozen value objects that configure a connection, with module-level defaults.

Every timing knob lives here so that tests and callers change behaviour by passing a value, never by
patching code. Times are seconds (floats), as trio measures them.
"""

from __future__ import annotations

import random
from enum import StrEnum
from typing import Final

import attrs

__all__ = [
    "DEFAULT_HEARTBEAT",
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_RECONNECT",
    "DEFAULT_TIMEOUTS",
    "WS_RATE_LIMITS",
    "Backpressure",
    "Heartbeat",
    "PingStyle",
    "RateLimit",
    "ReconnectPolicy",
    "Timeouts",
]


class PingStyle(StrEnum):
    """How the heartbeat probes the server."""

    #: WebSocket ping control frames, answered by pong frames (the default).
    FRAME = "frame"
    #: The exchange's plain-text ``ping`` message, answered by the text ``pong``.
    TEXT = "text"


@attrs.frozen(kw_only=True)
class Heartbeat:
    """Liveness probing.

    A ping goes out every ``interval`` seconds of inbound silence; when neither a pong nor any other
    frame arrives within ``timeout`` seconds of it, the socket is declared dead (half-open) and
    replaced. The exchange closes sockets idle for 60 s, so ``interval`` must stay well inside that.
    """

    interval: float = 15.0
    timeout: float = 10.0
    style: PingStyle = PingStyle.FRAME

    def __attrs_post_init__(self) -> None:
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError("heartbeat interval and timeout must be positive")
        if self.interval >= 60:
            raise ValueError("heartbeat interval must be under the exchange's 60 s idle limit")


@attrs.frozen(kw_only=True)
class ReconnectPolicy:
    """Exponential backoff with full jitter, capped; the first retry is immediate.

    ``max_attempts=None`` retries forever once connected; before the first success only
    ``max_initial_attempts`` are made, so a wrong URL fails fast. ``connect_timeout`` bounds each
    attempt (TCP, TLS and the WebSocket handshake); ``max_connects_per_minute`` keeps us inside
    the exchange's limit on new connections.
    """

    initial_delay: float = 0.1
    max_delay: float = 10.0
    multiplier: float = 2.0
    max_attempts: int | None = None
    max_initial_attempts: int = 3
    connect_timeout: float = 10.0
    max_connects_per_minute: int = 200

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (0 = the first retry, immediate)."""
        if attempt <= 0:
            return 0.0
        ceiling = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        return rng.uniform(0.0, ceiling)


@attrs.frozen(kw_only=True)
class Timeouts:
    """How long each protocol step may take before it is an error."""

    login: float = 10.0
    subscribe: float = 10.0
    close: float = 2.0


@attrs.frozen(kw_only=True)
class RateLimit:
    """A token bucket: ``rate`` tokens per ``per`` seconds, holding at most ``burst`` tokens."""

    rate: float
    per: float = 1.0
    burst: int | None = None

    @property
    def capacity(self) -> float:
        return float(self.burst) if self.burst is not None else self.rate


class Backpressure(StrEnum):
    """What a feed does when its consumer falls behind."""

    #: Keep only the newest message: a slow consumer never sees a backlog (books, tickers).
    LATEST = "latest"
    #: Drop nothing; reading from the socket waits for the consumer (orders, trades, balances).
    BLOCK = "block"
    #: Fail the feed with :class:`~flexconn.errors.FeedOverflow` when its buffer is full.
    ERROR = "error"


#: The largest inbound WebSocket message accepted by default (4 MiB): far above the exchange's real
#: frames, small enough that a hostile one costs little memory. A larger one closes the socket with
#: code 1009 before its payload is read (``DisconnectReason.FRAME_TOO_LARGE``).
DEFAULT_MAX_FRAME_BYTES: Final = 4 * 1024 * 1024
DEFAULT_HEARTBEAT = Heartbeat()
DEFAULT_RECONNECT = ReconnectPolicy()
DEFAULT_TIMEOUTS = Timeouts()
#: The exchange's documented WebSocket command limits: authenticated and unauthenticated sockets.
WS_RATE_LIMITS = {"auth": RateLimit(rate=50), "noauth": RateLimit(rate=1)}
