"""Rich renderables for the terminal views of ``flexconn book``, ``orders`` and ``demo``.

Every function here is pure: it takes plain data (a book, trades, rows) and returns something
rich can draw, so the views can be checked without a terminal. The commands own the data and
decide when to redraw.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

import attrs
from rich import box
from rich.console import Console, Group, RenderableType
from rich.layout import Layout
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from flexconn.book import OrderBook
from flexconn.connection import ConnectionState
from flexconn.models.enums import Side
from flexconn.models.market import Trade

__all__ = [
    "OWN_MARK",
    "FillRow",
    "OrderRow",
    "book_panel",
    "clock",
    "fills_panel",
    "fit_levels",
    "height_of",
    "kv_panel",
    "legend",
    "log_panel",
    "number",
    "orders_panel",
    "split",
    "state_text",
    "trades_panel",
    "width_of",
]

_SIDE_STYLE = {Side.BUY: "green", Side.SELL: "red"}
_STATE_STYLE = {
    ConnectionState.CONNECTED: "bold green",
    ConnectionState.RECONNECTING: "bold red",
    ConnectionState.CLOSED: "bold red",
}


@attrs.frozen(kw_only=True)
class OrderRow:
    """One open order as the views show it."""

    market_code: str
    order_id: int | None
    client_order_id: int | None
    side: Side
    price: Decimal | None
    quantity: Decimal
    status: str


@attrs.frozen(kw_only=True)
class FillRow:
    """One fill of one of the account's orders."""

    timestamp: int
    market_code: str
    order_id: int
    side: Side
    price: Decimal
    quantity: Decimal
    maker: bool | None = None


def number(value: Decimal | None) -> str:
    """A decimal in positional notation without trailing zeros ("-" for none)."""
    if value is None:
        return "-"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def clock(timestamp_ms: int) -> str:
    """``HH:MM:SS.mmm`` (UTC) of an epoch-millisecond timestamp."""
    moment = datetime.fromtimestamp(timestamp_ms // 1000, tz=UTC)
    return moment.strftime("%H:%M:%S.") + f"{timestamp_ms % 1000:03d}"


def state_text(state: ConnectionState) -> Text:
    """The connection state, coloured: green when connected, red when down."""
    return Text(state.value.upper(), style=_STATE_STYLE.get(state, "bold yellow"))


def book_panel(
    book: OrderBook,
    *,
    levels: int,
    title: str | None = None,
    own_prices: Iterable[Decimal] = (),
    stale: str | None = None,
) -> Panel:
    """The two-sided book: bids left (best first), asks right, spread and sequence underneath.

    Levels at which one of ``own_prices`` rests are marked with :data:`OWN_MARK`. A book that
    is not valid, or ``stale`` (why the connection is not live), shows no levels: it says
    ``STALE`` and why instead of passing the last frozen levels off as live. Cells never wrap
    or truncate: the caller gives the panel at least :func:`width_of` it.
    """
    own = set(own_prices)
    table = _table()
    table.add_column("qty", justify="right", style="green", no_wrap=True)
    table.add_column("bid", justify="right", style="bold green", no_wrap=True)
    table.add_column("ask", justify="left", style="bold red", no_wrap=True)
    table.add_column("qty", justify="left", style="red", no_wrap=True)
    status = Text()
    if book.valid and stale is None:
        bids, asks = book.bids[:levels], book.asks[:levels]
        for index in range(max(len(bids), len(asks))):
            bid = bids[index] if index < len(bids) else None
            ask = asks[index] if index < len(asks) else None
            table.add_row(
                number(bid.quantity) if bid else "",
                _marked(bid.price, own, before=True) if bid else "",
                _marked(ask.price, own, before=False) if ask else "",
                number(ask.quantity) if ask else "",
            )
        status.append("spread ", "dim")
        status.append(_spread(book))
        status.append("\nseq ", "dim")
        status.append(str(book.seq_num if book.seq_num is not None else "-"))
    else:
        why = stale or "book invalidated"
        status.append(f"STALE ({why}): not live, waiting for a fresh snapshot", "bold yellow")
    return Panel(
        Group(table, status),
        title=title or f"book {book.market_code}",
        border_style="cyan",
    )


#: Marks a book level at which one of the account's own orders rests.
OWN_MARK = "•"


def _marked(price: Decimal, own: set[Decimal], *, before: bool) -> str:
    text = number(price)
    if price not in own:
        return text
    return f"{OWN_MARK} {text}" if before else f"{text} {OWN_MARK}"


def _spread(book: OrderBook) -> str:
    spread, bid, ask = book.spread, book.best_bid, book.best_ask
    if spread is None or bid is None or ask is None:
        return "-"
    mid = (bid.price + ask.price) / 2
    bps = spread / mid * 10_000 if mid else Decimal(0)
    return f"{number(spread)} ({bps:.1f} bps)"


def _table() -> Table:
    return Table(
        box=box.SIMPLE_HEAD, expand=True, pad_edge=False, show_edge=False, collapse_padding=True
    )


# --- fitting panels to a terminal ---------------------------------------------------------------


def _scratch() -> Console:
    return Console(width=10_000, file=io.StringIO(), color_system=None, legacy_windows=False)


def width_of(panel: Panel) -> int:
    """The columns ``panel`` needs to show every cell in full: its tables' natural width (their
    cells never wrap), and the longest word of its plain text (which may wrap)."""
    console = _scratch()
    title = len(panel.title) + 4 if isinstance(panel.title, str) else 0
    return max(_needed(console, panel.renderable), title) + 4  # borders, one space padding


def _needed(console: Console, renderable: RenderableType) -> int:
    if isinstance(renderable, Group):
        return max((_needed(console, part) for part in renderable.renderables), default=0)
    measured = Measurement.get(console, console.options, renderable)
    return measured.minimum if isinstance(renderable, Text) else measured.maximum


def height_of(renderable: RenderableType, width: int) -> int:
    """The lines ``renderable`` takes when drawn ``width`` columns wide."""
    console = _scratch()
    return len(console.render_lines(renderable, console.options.update_width(width), pad=False))


def fit_levels(wanted: int, height: int, *, reserved: int) -> int:
    """How many levels a side of the book can show in ``height`` lines (``reserved`` for the
    rest of the screen), at most ``wanted`` and at least one."""
    chrome = 6  # borders, header, rule, spread and sequence lines
    return max(1, min(wanted, height - reserved - chrome))


def legend(*entries: tuple[str, str]) -> Text:
    """One line (wrapped if it must) explaining the view's markers and codes."""
    text = Text(style="dim")
    for index, (mark, meaning) in enumerate(entries):
        if index:
            text.append("   ")
        text.append(mark, style="bold")
        text.append(f" {meaning}")
    return text


def trades_panel(trades: Sequence[Trade], *, title: str = "latest trades") -> Panel:
    """Public trades, newest first."""
    table = _table()
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("side", no_wrap=True)
    table.add_column("price", justify="right", no_wrap=True)
    table.add_column("qty", justify="right", no_wrap=True)
    for trade in trades:
        table.add_row(
            clock(trade.timestamp),
            Text(trade.side.value, style=_SIDE_STYLE.get(trade.side, "")),
            number(trade.price),
            number(trade.quantity),
        )
    if not trades:
        table.add_row("(none yet)")
    return Panel(table, title=title, border_style="magenta")


def orders_panel(
    orders: Sequence[OrderRow],
    *,
    title: str = "open orders",
    show_market: bool = True,
    show_status: bool = True,
    max_rows: int | None = None,
) -> Panel:
    """The account's open orders (``show_market=False`` when they are all in one market;
    ``show_status=False`` in narrow places).

    With ``max_rows`` at most that many lines of orders, the last saying how many more there are.
    """
    table = _table()
    table.add_column("order id", no_wrap=True)
    if show_market:
        table.add_column("market", no_wrap=True)
    table.add_column("side", no_wrap=True)
    table.add_column("price", justify="right", no_wrap=True)
    table.add_column("qty", justify="right", no_wrap=True)
    if show_status:
        table.add_column("status", no_wrap=True)
    shown = orders
    if max_rows is not None and len(orders) > max_rows:
        shown = orders[: max(0, max_rows - 1)]
    for order in shown:
        cells: list[RenderableType] = [
            str(order.order_id) if order.order_id is not None else "(pending)"
        ]
        if show_market:
            cells.append(order.market_code)
        cells += [
            Text(order.side.value, style=_SIDE_STYLE.get(order.side, "")),
            number(order.price),
            number(order.quantity),
        ]
        if show_status:
            cells.append(order.status)
        table.add_row(*cells)
    if len(shown) < len(orders):
        table.add_row(f"+{len(orders) - len(shown)} more")
    if not orders:
        table.add_row("(none)")
    return Panel(table, title=f"{title} ({len(orders)})", border_style="blue")


def fills_panel(fills: Sequence[FillRow], *, title: str = "fills") -> Panel:
    """The account's fills, newest first."""
    table = _table()
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("side", no_wrap=True)
    table.add_column("price", justify="right", no_wrap=True)
    table.add_column("qty", justify="right", no_wrap=True)
    table.add_column("role", no_wrap=True)
    for fill in fills:
        table.add_row(
            clock(fill.timestamp),
            Text(fill.side.value, style=_SIDE_STYLE.get(fill.side, "")),
            number(fill.price),
            number(fill.quantity),
            "-" if fill.maker is None else ("maker" if fill.maker else "taker"),
        )
    if not fills:
        table.add_row("(none yet)")
    return Panel(table, title=title, border_style="green")


def kv_panel(title: str, items: Sequence[tuple[str, RenderableType]], *, style: str) -> Panel:
    """A two-column panel of labels and values; a long value wraps between words (never cut)."""
    table = Table.grid(padding=(0, 2))
    width = max((len(label) for label, _ in items), default=0)
    table.add_column(style="dim", no_wrap=True, min_width=width)
    table.add_column(overflow="fold")
    for label, value in items:
        table.add_row(label, value)
    return Panel(table, title=title, border_style=style)


def log_panel(
    lines: Sequence[str], *, title: str = "events", width: int | None = None, height: int = 12
) -> Panel:
    """The latest lines of a log that fit in ``height`` lines, oldest first.

    Long lines wrap rather than being cut; with ``width`` (the panel's), only the newest lines
    that fit whole are kept.
    """
    kept = list(lines)
    if width is not None:
        room, inner = max(1, height - 2), max(1, width - 4)
        kept = []
        for line in reversed(lines):
            need = height_of(Text(line), inner)
            if need > room:
                break
            kept.insert(0, line)
            room -= need
    text = Text("\n".join(kept) or "(nothing yet)", overflow="fold")
    return Panel(text, title=title, border_style="yellow")


def split(*parts: tuple[str, RenderableType, int], column: bool, ratio: int = 1) -> Layout:
    """A layout of named parts stacked (``column``) or side by side, with relative sizes.

    ``ratio`` is the layout's own share of its parent.
    """
    layout = Layout(ratio=ratio)
    children = [Layout(renderable, name=name, ratio=ratio) for name, renderable, ratio in parts]
    if column:
        layout.split_column(*children)
    else:
        layout.split_row(*children)
    return layout
