"""What ``flexconn demo`` observes, and how it is drawn.

:class:`DemoState` collects everything the demo shows: the live book, the latest trades, the
account's fills, a log of notable events, and the outbox figures. Those come from two places:

* the public API: each order call is timed and its outcomes counted (:class:`Scoreboard`), and
  ``conn.outbox_stats()`` gives the outbox's own counters (commands and orders sent, requests
  queued, in flight and reconciled);
* the wire: :class:`WireTap` wraps the connection's transport factory (a public parameter of
  :func:`~flexconn.open_connection`) and reads every command the connection writes, which is how
  the demo can show the commands by kind, the largest batch, and that a reconnect resubscribed
  every channel in one command.
"""

from __future__ import annotations

import statistics
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import orjson
import trio
from rich.console import RenderableType
from rich.layout import Layout
from rich.text import Text

from flexconn._cli import view
from flexconn.connection import Connection, LiveOrderBook
from flexconn.errors import ExchangeError, FlexconnError, OrderNotApplied, OrderOutcomeUnknown
from flexconn.models.market import Trade
from flexconn.transport import Transport, TransportFactory

__all__ = ["DemoState", "Scoreboard", "WireTap"]

_ORDER_OPS = {
    "placeorder": "place",
    "placeorders": "place",
    "cancelorder": "cancel",
    "cancelorders": "cancel",
    "modifyorder": "modify",
    "modifyorders": "modify",
}


class WireTap:
    """Reads the commands a connection writes: order commands and their sizes, subscriptions.

    ``on_subscribe(channels, session)`` is called for every ``subscribe`` command with the
    number of the socket (session) it went out on, starting at 1.
    """

    def __init__(self, on_subscribe: Callable[[list[str], int], None]) -> None:
        self.commands: Counter[str] = Counter()
        self.orders_per_command: list[int] = []
        self.sessions = 0
        self._on_subscribe = on_subscribe

    def factory(self, inner: TransportFactory) -> TransportFactory:
        """A transport factory like ``inner`` whose transports report what they send."""

        @asynccontextmanager
        async def open_tapped(url: str, **options: Any) -> AsyncIterator[Transport]:
            async with inner(url, **options) as transport:
                self.sessions += 1
                yield _Tapped(transport, self)

        return open_tapped

    def seen(self, text: str) -> None:
        if not text.startswith("{"):
            return  # the text "ping"
        command = orjson.loads(text)
        op = command.get("op")
        if op in _ORDER_OPS:
            self.commands[op] += 1
            batch = command.get("dataArray")
            self.orders_per_command.append(len(batch) if isinstance(batch, list) else 1)
        elif op == "subscribe":
            self._on_subscribe(list(command.get("args", [])), self.sessions)


class _Tapped:
    """A transport that shows every outgoing frame to a :class:`WireTap` first."""

    def __init__(self, inner: Transport, tap: WireTap) -> None:
        self._inner = inner
        self._tap = tap

    async def send(self, text: str) -> None:
        self._tap.seen(text)
        await self._inner.send(text)

    async def receive(self) -> str:
        return await self._inner.receive()

    async def ping(self) -> None:
        await self._inner.ping()

    async def aclose(self, reason: str = "") -> None:
        await self._inner.aclose(reason)


class Scoreboard:
    """Outcomes and latencies of the order calls the demo made, by kind."""

    def __init__(self) -> None:
        self.requested: Counter[str] = Counter()
        self.acked: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.not_applied = 0
        self.unknown = 0
        self.latencies: deque[float] = deque(maxlen=500)

    def record(self, kind: str, outcomes: Sequence[object], seconds: float) -> None:
        """Count one call's outcomes (acks or exceptions) and its round trip."""
        self.requested[kind] += len(outcomes)
        self.latencies.append(seconds)
        for outcome in outcomes:
            if isinstance(outcome, ExchangeError):
                self.rejected[type(outcome).__name__] += 1
            elif isinstance(outcome, OrderNotApplied):
                self.not_applied += 1
            elif isinstance(outcome, OrderOutcomeUnknown):
                self.unknown += 1
            elif not isinstance(outcome, FlexconnError):
                self.acked[kind] += 1

    def latency_text(self) -> str:
        if not self.latencies:
            return "-"
        values = sorted(self.latencies)
        median = statistics.median(values) * 1000
        return f"median {median:.1f} ms, max {values[-1] * 1000:.1f} ms"


class DemoState:
    """Everything the demo shows; tasks update it, the view and the summary read it."""

    def __init__(
        self,
        *,
        market: str,
        duration: float,
        started: float,
        sink: Callable[[str], None] | None,
    ) -> None:
        self.market = market
        self.duration = duration
        self.started = started
        self.phase = "connecting"
        self.log: deque[str] = deque(maxlen=10)
        self.trades: deque[Trade] = deque(maxlen=12)
        self.fills: deque[view.FillRow] = deque(maxlen=8)
        self.fill_count = 0
        #: Orders of ours that filled completely.
        self.filled: set[int] = set()
        self.score = Scoreboard()
        self.tap = WireTap(self._subscribed)
        self.conn: Connection | None = None
        self.book: LiveOrderBook | None = None
        self.markers = 0
        self.resubscribed: list[str] = []
        self.orders_before_drop: frozenset[int] | None = None
        self.orders_after_drop: frozenset[int] | None = None
        self._sink = sink

    def elapsed(self) -> float:
        return trio.current_time() - self.started

    def commands_sent(self) -> int:
        """Order commands the outbox has written (its own statistics)."""
        return self.conn.outbox_stats().commands_sent if self.conn is not None else 0

    def orders_sent(self) -> int:
        """Orders those commands carried."""
        return self.conn.outbox_stats().orders_sent if self.conn is not None else 0

    def note(self, text: str) -> None:
        """Log a notable event (and print it at once in plain mode)."""
        line = f"[+{self.elapsed():5.2f}s] {text}"
        self.log.append(line)
        if self._sink is not None:
            self._sink(line)

    def _subscribed(self, channels: list[str], session: int) -> None:
        if session > 1:
            self.resubscribed = channels
            self.note(
                f"resubscribed {len(channels)} channels in one command: {', '.join(channels)}"
            )

    # -- reading ---------------------------------------------------------------------------------

    def our_orders(self) -> list[view.OrderRow]:
        if self.conn is None:
            return []
        rows = [
            view.OrderRow(
                market_code=order.market_code,
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                side=order.side,
                price=order.price,
                quantity=order.remaining_quantity,
                status=order.status.value,
            )
            for order in self.conn.orders.values()
        ]
        return sorted(rows, key=lambda r: (r.side.value, -(r.price or Decimal(0))))

    def status_line(self) -> str:
        """One line for plain mode: state, touch, open orders, traffic."""
        conn, live = self.conn, self.book
        state = conn.state.value if conn is not None else "starting"
        touch = "book not ready"
        if live is not None and live.book.valid:
            bid, ask = live.book.best_bid, live.book.best_ask
            touch = (
                f"bid {view.number(bid.price) if bid else '-'} / "
                f"ask {view.number(ask.price) if ask else '-'} "
                f"(spread {view.number(live.book.spread)})"
            )
        orders = len(conn.orders) if conn is not None else 0
        return (
            f"status: {state}; {self.market} {touch}; {orders} open orders; "
            f"{self.fill_count} fills; {self.commands_sent()} order commands sent"
        )

    def render(self, width: int = 150, height: int = 45) -> RenderableType:
        """The live view for a terminal of ``width`` x ``height`` characters.

        Wide terminals get three columns (book | trades and fills | orders, outbox and
        connection); narrower ones two (book, trades and fills | the rest). Best at 120x40 or
        more; the panels crop rather than wrap below that.
        """
        conn, live = self.conn, self.book
        header = Text.assemble(
            ("flexconn demo  ", "bold"),
            view.state_text(conn.state) if conn is not None else Text("STARTING"),
            f"  {self.market}  ",
            (f"{self.elapsed():4.1f}/{self.duration:g} s", "dim"),
            "  ",
            (self.phase, "italic cyan"),
        )
        own = [row.price for row in self.our_orders() if row.price is not None]
        book: RenderableType = (
            view.book_panel(live.book, levels=10, own_prices=own, title=f"book {self.market}")
            if live is not None
            else Text("waiting for the book")
        )
        trades = view.trades_panel(list(self.trades)[::-1][:10])
        fills = view.fills_panel(list(self.fills)[::-1])
        events = 12 if height >= 40 else 6
        layout = Layout()
        layout.split_column(
            Layout(header, name="header", size=1),
            Layout(name="body", ratio=1),
            Layout(view.log_panel(list(self.log)[-(events - 2) :]), name="events", size=events),
        )
        side = Layout(name="side", ratio=6 if width >= 120 else 1)
        if width >= 120:
            layout["body"].split_row(
                Layout(book, name="book", ratio=5),
                view.split(("trades", trades, 1), ("fills", fills, 1), column=True, ratio=5),
                side,
            )
        else:
            layout["body"].split_row(
                view.split(
                    ("book", book, 3), ("trades", trades, 2), ("fills", fills, 2), column=True
                ),
                side,
            )
        side.split_column(
            Layout(view.orders_panel(self.our_orders(), show_market=False), name="orders"),
            Layout(self._outbox_panel(), name="outbox", size=9),
            Layout(self._connection_panel(), name="connection", size=7),
        )
        return layout

    def _outbox_panel(self) -> RenderableType:
        tap, score = self.tap, self.score
        if self.conn is None:
            return view.kv_panel("outbox", [("commands sent", "0")], style="cyan")
        stats = self.conn.outbox_stats()
        per = tap.orders_per_command
        batches = (
            f"{stats.orders_sent / stats.commands_sent:.1f} avg, {max(per)} max"
            if stats.commands_sent and per
            else "-"
        )
        rejected = ", ".join(f"{n} {name}" for name, n in score.rejected.items()) or "0"
        return view.kv_panel(
            "outbox",
            [
                ("commands sent", f"{stats.commands_sent} ({_counts(tap.commands)})"),
                ("orders per command", batches),
                ("queued / in flight", f"{stats.queued} / {stats.in_flight}"),
                ("acks", f"{sum(score.acked.values())} ({_counts(score.acked)})"),
                ("rejections", rejected),
                (
                    "reconciled",
                    f"{stats.reconciled} (not applied {score.not_applied}, "
                    f"unknown {score.unknown}, 20007 {stats.rate_limited})",
                ),
                ("latency", score.latency_text()),
            ],
            style="cyan",
        )

    def _connection_panel(self) -> RenderableType:
        conn = self.conn
        if conn is None:
            return view.kv_panel("connection", [("state", "starting")], style="white")
        stats = conn.stats()
        return view.kv_panel(
            "connection",
            [
                ("state", view.state_text(conn.state)),
                ("reconnects", str(stats.reconnects)),
                ("resubscribed", ", ".join(self.resubscribed) or "-"),
                ("frames in / out", f"{stats.frames_in} / {stats.frames_out}"),
                ("orders synced", "yes (REST)" if conn.orders.synced else "no"),
            ],
            style="white",
        )

    def summary(self) -> list[str]:
        """The closing lines."""
        score = self.score
        conn = self.conn
        reconnects = conn.stats().reconnects if conn is not None else 0
        commands, orders = self.commands_sent(), self.orders_sent()
        lines = [
            f"demo summary after {self.elapsed():.1f} s on {self.market}:",
            f"  orders: {_counts(score.requested) or 'none'} requested; "
            f"acks {sum(score.acked.values())}, rejections {sum(score.rejected.values())}"
            + (f" ({_counts(score.rejected)})" if score.rejected else "")
            + f", not applied {score.not_applied}, unknown {score.unknown}"
            + f"; fills {self.fill_count}",
            f"  outbox: {commands} order commands carried {orders} orders"
            + (f" ({orders / commands:.1f} per command)" if commands else "")
            + f"; latency of {len(score.latencies)} calls {score.latency_text()}",
            f"  connection: {reconnects} reconnect(s); resubscribed "
            + (", ".join(self.resubscribed) or "nothing")
            + f"; {self.markers} continuity marker(s) seen",
        ]
        if self.orders_before_drop is not None and self.orders_after_drop is not None:
            same = self.orders_before_drop - self.filled == self.orders_after_drop - self.filled
            lines.append(
                f"  open orders across the drop: {len(self.orders_before_drop)} before, "
                f"{len(self.orders_after_drop)} after ({'the same ids' if same else 'changed'})"
            )
        return lines


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counter.items()))
