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
from rich.panel import Panel
from rich.text import Text

from flexconn._cli import view
from flexconn.connection import Connection, ConnectionState, LiveOrderBook
from flexconn.errors import ExchangeError, FlexconnError, OrderNotApplied, OrderOutcomeUnknown
from flexconn.models.market import Trade
from flexconn.transport import Transport, TransportFactory

__all__ = ["LEGEND", "MIN_SIZE", "WIDE", "DemoState", "Scoreboard", "WireTap"]

#: The smallest terminal (columns, lines) the live view is drawn in.
MIN_SIZE = (80, 24)
#: From this many columns on the view has three columns.
WIDE = 130
#: The line under the view: its markers and codes.
LEGEND = view.legend(
    (view.OWN_MARK, "your order rests at this price"),
    ("20007", "refused as too fast (rate limit), resent"),
    ("STALE", "book not live"),
)
# The narrowest book and middle columns, so the layout does not jump as numbers change length;
# the side column's narrowest, and the fewest lines the open orders get.
_COLUMN = 38
_SIDE = 36
_ORDERS_MIN = 6
#: The fewest lines worth giving a table panel (borders, header, rule and two rows).
_TABLE_MIN = 6

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

        Every panel gets the width its numbers need, so nothing is cut short; what does not
        fit is left out instead: the connection panel (its state is in the header), the fills,
        the trades, then rows of the book and of the open orders (the last row says how many
        more there are). From :data:`WIDE` columns on the view has three columns (book |
        trades and fills | orders, outbox and connection), below that two. Under
        :data:`MIN_SIZE`, or when even the book and a few orders do not fit, it says the
        terminal is too small.
        """
        if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
            return self._too_small(width, height)
        conn = self.conn
        header = Text.assemble(
            ("flexconn demo  ", "bold"),
            view.state_text(conn.state) if conn is not None else Text("STARTING"),
            f"  {self.market}  ",
            (f"{self.elapsed():4.1f}/{self.duration:g} s", "dim"),
        )
        phase = Text.assemble("  ", (self.phase, "italic cyan"))
        if header.cell_len + phase.cell_len <= width:
            header.append_text(phase)  # else the events log says what the script is doing
        header_h, legend_h = view.height_of(header, width), view.height_of(LEGEND, width)
        events_h = 8 if height >= 40 else 4
        body_h = height - header_h - legend_h - events_h
        book = self._book_panel(body_h)
        book_w, book_h = max(_COLUMN, view.width_of(book)), view.height_of(book, _COLUMN)
        trades = list(self.trades)[::-1]
        fills = list(self.fills)[::-1]
        trades_w = view.width_of(view.trades_panel(trades))
        fills_w = view.width_of(view.fills_panel(fills))
        columns: list[Layout] = []
        middle_w = max(_COLUMN, trades_w, fills_w)
        if width >= WIDE and width - book_w - middle_w >= _SIDE:
            columns.append(Layout(book, name="book", size=book_w))
            trades_h = body_h // 2
            middle = Layout(name="middle", size=middle_w)
            middle.split_column(
                Layout(view.trades_panel(trades[: trades_h - 4]), name="trades", size=trades_h),
                Layout(view.fills_panel(fills[: body_h - trades_h - 4]), name="fills"),
            )
            columns.append(middle)
        else:
            left_w = book_w
            if width - max(book_w, trades_w, fills_w) >= _SIDE:
                left_w = max(book_w, trades_w, fills_w)
            parts = [Layout(book, name="book", size=book_h)]
            room = body_h - book_h
            show_trades = trades_w <= left_w and room >= _TABLE_MIN
            show_fills = fills_w <= left_w and room >= 2 * _TABLE_MIN
            if show_trades and show_fills:
                trades_h = room // 2
                parts.append(
                    Layout(view.trades_panel(trades[: trades_h - 4]), name="trades", size=trades_h)
                )
                parts.append(Layout(view.fills_panel(fills[: room - trades_h - 4]), name="fills"))
            elif show_trades:
                parts.append(Layout(view.trades_panel(trades[: room - 4]), name="trades"))
            parts[-1].size = None  # the last part takes what is left, to the last line
            left = Layout(name="left", size=left_w)
            left.split_column(*parts)
            columns.append(left)
        side = self._side(width - sum(c.size or 0 for c in columns), body_h)
        if side is None:
            return self._too_small(width, height)
        columns.append(side)
        layout = Layout()
        layout.split_column(
            Layout(header, name="header", size=header_h),
            Layout(name="body", size=body_h),
            Layout(
                view.log_panel(list(self.log), width=width, height=events_h),
                name="events",
                size=events_h,
            ),
            Layout(LEGEND, name="legend", size=legend_h),
        )
        layout["body"].split_row(*columns)
        return layout

    def _book_panel(self, height: int) -> Panel:
        conn, live = self.conn, self.book
        if live is None:
            return view.kv_panel(f"book {self.market}", [("book", "waiting")], style="cyan")
        stale = None
        if conn is not None and conn.state is not ConnectionState.CONNECTED:
            stale = conn.state.value
        return view.book_panel(
            live.book,
            levels=view.fit_levels(10, height, reserved=0),
            own_prices=[row.price for row in self.our_orders() if row.price is not None],
            title=f"book {self.market}",
            stale=stale,
        )

    def _side(self, width: int, height: int) -> Layout | None:
        """Orders, outbox and connection stacked in ``width`` x ``height``; ``None`` when the
        outbox and a few orders do not fit."""
        outbox, connection = self._outbox_panel(), self._connection_panel()
        outbox_h = view.height_of(outbox, width)
        connection_h = view.height_of(connection, width)
        orders_h = height - outbox_h - connection_h
        if orders_h < _ORDERS_MIN:
            orders_h, connection_h = height - outbox_h, 0
        if orders_h < _ORDERS_MIN:
            outbox = self._outbox_panel(compact=True)
            outbox_h = view.height_of(outbox, width)
            orders_h = height - outbox_h
        if orders_h < _ORDERS_MIN:
            return None
        rows = self.our_orders()
        orders = view.orders_panel(rows, show_market=False, max_rows=orders_h - 4)
        if view.width_of(orders) > width:
            orders = view.orders_panel(
                rows, show_market=False, show_status=False, max_rows=orders_h - 4
            )
            if view.width_of(orders) > width:
                return None
        parts = [
            Layout(orders, name="orders", size=orders_h),
            Layout(outbox, name="outbox", size=outbox_h),
        ]
        if connection_h:
            parts.append(Layout(connection, name="connection", size=connection_h))
        parts[-1].size = None  # the last part takes what is left, to the last line
        side = Layout(name="side")
        side.split_column(*parts)
        return side

    def _too_small(self, width: int, height: int) -> RenderableType:
        return Text(
            f"flexconn demo: this terminal ({width}x{height}) is too small for the live view; "
            f"it needs at least {MIN_SIZE[0]}x{MIN_SIZE[1]}. Enlarge it, or run "
            "flexconn demo --plain for one line per event.",
            style="bold yellow",
        )

    def _outbox_panel(self, *, compact: bool = False) -> RenderableType:
        """The outbox's figures; ``compact``: only the outcomes (for short terminals)."""
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
        kinds: Counter[str] = Counter()
        for op, n in tap.commands.items():
            kinds[_ORDER_OPS[op]] += n
        rejected = ", ".join(f"{n} {name}" for name, n in score.rejected.items()) or "0"
        items: list[tuple[str, RenderableType]] = [
            ("commands sent", f"{stats.commands_sent} ({_counts(kinds)})"),
            ("orders/command", batches),
            ("queued/in flight", f"{stats.queued} / {stats.in_flight}"),
            ("acks", f"{sum(score.acked.values())} ({_counts(score.acked)})"),
            ("rejections", rejected),
            (
                "reconciled",
                f"{stats.reconciled} ({score.not_applied} not applied, {score.unknown} unknown)",
            ),
            ("20007 resent", str(stats.rate_limited)),
            ("latency", score.latency_text()),
        ]
        if compact:
            keep = {"commands sent", "acks", "rejections", "20007 resent"}
            items = [(label, value) for label, value in items if label in keep]
        return view.kv_panel("outbox", items, style="cyan")

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
