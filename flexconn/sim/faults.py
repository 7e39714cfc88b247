"""Programmatic fault switches shared by the simulator's WebSocket and REST servers.

A test (or the CLI) flips a switch on :class:`Faults`; the servers consult it. Two kinds exist:

* **Request faults**, read by both servers: :meth:`Faults.fail_next` makes the next command of a
  kind fail with a chosen error code, :meth:`Faults.delay_replies` holds every reply back.
* **Connection faults**, WebSocket only, acting on the live connections registered with
  :meth:`Faults.attach`: drop them all, drop each after N more frames, stall them (a half-open
  socket: nothing read, nothing written, nothing closed), refuse new connections for a while,
  inject a raw frame.

Connection faults act on connections open at the moment of the call; only
:meth:`Faults.refuse_connections` concerns future ones. Time comes from ``trio.current_time`` so
trio's ``MockClock`` governs every duration.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Protocol

import attrs
import trio

from flexconn.errors import ERROR_CODES

__all__ = ["ConnectionControl", "Faults", "InjectedFailure", "Refusal"]

logger = logging.getLogger("flexconn.sim.faults")


class ConnectionControl(Protocol):
    """What a WebSocket server connection lets the fault switches do to it."""

    @property
    def account_id(self) -> str | None:
        """The logged-in account, or ``None`` before login."""
        ...

    def drop(self, close_code: int | None) -> None:
        """Close now: with a close frame carrying ``close_code``, or abruptly when ``None``."""
        ...

    def drop_after(self, frames: int) -> None:
        """Close abruptly once ``frames`` more frames have been written."""
        ...

    def stall(self, until: float) -> None:
        """Stop reading and writing (without closing) until trio time ``until``."""
        ...

    def resume(self) -> None:
        """End a stall early."""
        ...

    def inject(self, frame: str | bytes) -> None:
        """Queue a raw frame: ``str`` as a text frame, ``bytes`` as a binary frame."""
        ...


@attrs.frozen(kw_only=True)
class InjectedFailure:
    """A failure armed by :meth:`Faults.fail_next`: the code and message to reply with."""

    code: str
    message: str


@attrs.frozen(kw_only=True)
class Refusal:
    """How new connections are refused while :meth:`Faults.refuse_connections` is in force.

    ``http_status`` is the status of the handshake rejection; ``None`` closes the TCP connection
    without any response.
    """

    until: float
    http_status: int | None


class Faults:
    """The fault switchboard of one simulated exchange; every method is synchronous."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[InjectedFailure]] = {}
        self._reply_delay = 0.0
        self._refusal: Refusal | None = None
        self._connections: set[ConnectionControl] = set()

    # --- request faults (WebSocket and REST) ------------------------------------------------

    def fail_next(self, op: str, code: str, message: str | None = None, *, times: int = 1) -> None:
        """Make the next ``times`` commands of kind ``op`` fail with ``code``.

        Args:
            op: a WebSocket op (``"placeorder"``, ``"cancelorder"``, ``"modifyorder"`` — each
                order of a batch counts as one —, ``"login"``, ``"subscribe"``,
                ``"unsubscribe"``) or a REST route as ``"<VERB> <path>"``
                (``"POST /v2/orders/place"``).
            code: the exchange error code to reply with.
            message: the reply's message; the documented text for ``code`` when omitted.
            times: how many consecutive commands fail.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        known = ERROR_CODES.get(code)
        text = message if message is not None else (known[0] if known else "Injected failure")
        queue = self._failures.setdefault(op, deque())
        queue.extend(InjectedFailure(code=code, message=text) for _ in range(times))
        logger.info("fault armed: next %d %s fail with %s", times, op, code)

    def take_failure(self, op: str) -> InjectedFailure | None:
        """Consume and return the failure armed for ``op``, if any (servers call this)."""
        queue = self._failures.get(op)
        if not queue:
            return None
        failure = queue.popleft()
        if not queue:
            del self._failures[op]
        return failure

    def delay_replies(self, seconds: float) -> None:
        """Hold every command reply back by ``seconds`` (0 turns the delay off).

        The command itself takes effect at once; only its reply is late, and pushed channel data
        is not delayed. Replies keep their order.
        """
        if seconds < 0:
            raise ValueError("delay must not be negative")
        self._reply_delay = float(seconds)

    @property
    def reply_delay(self) -> float:
        """Seconds every reply is currently held back."""
        return self._reply_delay

    # --- connection faults (WebSocket) ------------------------------------------------------

    def attach(self, connection: ConnectionControl) -> None:
        """Register a live connection (the WebSocket server calls this on accept)."""
        self._connections.add(connection)

    def detach(self, connection: ConnectionControl) -> None:
        """Forget a connection (the WebSocket server calls this when it closes)."""
        self._connections.discard(connection)

    @property
    def connection_count(self) -> int:
        """How many WebSocket connections are open."""
        return len(self._connections)

    def _targets(self, account_id: str | None) -> list[ConnectionControl]:
        return [c for c in self._connections if account_id is None or c.account_id == account_id]

    def drop_all(self, *, close_code: int | None = None, account_id: str | None = None) -> int:
        """Close every open connection (or one account's) at once.

        Args:
            close_code: send a close frame with this code first; ``None`` drops the TCP
                connection without one, as a network failure would.
            account_id: only that account's logged-in connections.

        Returns:
            How many connections were dropped.
        """
        targets = self._targets(account_id)
        for connection in targets:
            connection.drop(close_code)
        logger.info("fault: dropped %d connections", len(targets))
        return len(targets)

    def drop_after(self, frames: int, *, account_id: str | None = None) -> int:
        """Drop each open connection abruptly after it has written ``frames`` more frames.

        Returns:
            How many connections were armed.
        """
        if frames < 0:
            raise ValueError("frames must not be negative")
        targets = self._targets(account_id)
        for connection in targets:
            connection.drop_after(frames)
        return len(targets)

    def stall(self, seconds: float | None = None, *, account_id: str | None = None) -> int:
        """Make open connections half-open: stop reading and writing without closing.

        Pings go unanswered, commands unprocessed and pushed data is discarded; the idle rule is
        suspended, so only the client can notice. Frames are processed again after ``seconds``
        (``None``: until :meth:`resume`): everything the client sent meanwhile is then read and
        executed in order, even if the client has closed the socket since (its close frame, FIN
        or reset is read after the frames it sent before it).

        Returns:
            How many connections were stalled.
        """
        until = float("inf") if seconds is None else trio.current_time() + seconds
        targets = self._targets(account_id)
        for connection in targets:
            connection.stall(until)
        return len(targets)

    def resume(self) -> None:
        """End every stall."""
        for connection in list(self._connections):
            connection.resume()

    def refuse_connections(self, seconds: float, *, http_status: int | None = 503) -> None:
        """Refuse new WebSocket connections for ``seconds``.

        Args:
            seconds: how long, from now; 0 lifts a refusal.
            http_status: reject the opening handshake with this HTTP status; ``None`` closes the
                TCP connection before any response.
        """
        self._refusal = Refusal(until=trio.current_time() + seconds, http_status=http_status)

    def refusal(self) -> Refusal | None:
        """The refusal in force now, if any (the WebSocket server checks each new connection)."""
        if self._refusal is not None and trio.current_time() >= self._refusal.until:
            self._refusal = None
        return self._refusal

    def inject(self, frame: str | bytes, *, account_id: str | None = None) -> int:
        """Send a raw frame (garbage, an unknown message...) to every open connection.

        Args:
            frame: ``str`` goes out as a text frame, ``bytes`` as a binary frame, unvalidated.
            account_id: only that account's logged-in connections.

        Returns:
            How many connections it was queued on.
        """
        targets = self._targets(account_id)
        for connection in targets:
            connection.inject(frame)
        return len(targets)

    def clear(self) -> None:
        """Disarm every request fault and lift refusals and stalls."""
        self._failures.clear()
        self._reply_delay = 0.0
        self._refusal = None
        self.resume()
