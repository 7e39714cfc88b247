"""One writer per socket: the command bucket and the write, under one lock.

Every command a connection sends (login, subscribe, ping, the outbox's order batches) leaves
through the connection's :class:`SocketWriter`. It owns the socket's command bucket (the
exchange counts every command against it) and serialises writes with one lock, taking a token
inside the lock so that frames leave in the order their senders queued. Inner layers (the
outbox) hold the writer handle and hand it whole commands; they never call back into the
connection. The connection binds a socket to it when a session opens (:meth:`open`), swaps the
bucket after login (:meth:`set_bucket`) and unbinds the socket the moment it is considered dead
(:meth:`shut`): from then on every send raises :class:`~flexconn.errors.ConnectionClosed`.
"""

from __future__ import annotations

import itertools

import trio

from flexconn.errors import ConnectionClosed
from flexconn.ratelimit import TokenBucket
from flexconn.transport import Transport

__all__ = ["SocketWriter"]


class SocketWriter:
    """Writes commands to the current socket, paced by its command bucket."""

    def __init__(self, bucket: TokenBucket) -> None:
        self._bucket = bucket
        self._ws: Transport | None = None
        self._dead = trio.Event()  # set when the bound socket dies: waiting commands give up
        self._lock = trio.Lock()
        self._tags = itertools.count(1)
        self.frames_out = 0
        self.bytes_out = 0

    def next_tag(self) -> int:
        """A command tag no other command of the connection uses."""
        return next(self._tags)

    def open(self, ws: Transport, bucket: TokenBucket) -> None:
        """Bind a new socket, with the bucket that paces it."""
        self._ws = ws
        self._dead = trio.Event()
        self._bucket = bucket

    def set_bucket(self, bucket: TokenBucket) -> None:
        """Pace the socket by ``bucket`` from now on (an authenticated socket's limits)."""
        self._bucket = bucket

    def shut(self) -> None:
        """The socket is dead (or closing): refuse every send from now on."""
        self._ws = None
        self._dead.set()

    @property
    def is_open(self) -> bool:
        return self._ws is not None

    def delay(self, now: float) -> float:
        """Seconds (trio time) until the bucket has a token for the next command."""
        return self._bucket.delay(now)

    async def send(self, text: str) -> None:
        """Send one encoded command once the bucket allows it.

        Raises:
            ConnectionClosed: no live socket (before it opens, after it died).
        """
        ws, dead = self._ws, self._dead
        if ws is None:
            raise ConnectionClosed("not connected")
        async with self._lock:
            # A command is bound to the socket it was sent on: if that one dies while the
            # command waits (for the lock or a token), it is not written to the next one.
            # The bucket is refilled by time alone, so sleeping until it has a token is exact.
            while self._ws is ws and not self._bucket.try_take(trio.current_time()):
                with trio.move_on_after(self._bucket.delay(trio.current_time())):
                    await dead.wait()
            if self._ws is not ws:
                raise ConnectionClosed("connection lost")
            await ws.send(text)
        self.frames_out += 1
        self.bytes_out += len(text)
