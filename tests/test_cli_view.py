"""The CLI's renderables, drawn into an in-memory console (no terminal needed)."""

from __future__ import annotations

from decimal import Decimal

from rich.console import Console, RenderableType

from flexconn._cli import view
from flexconn._cli.book import plain_line
from flexconn._cli.stream import marker_line
from flexconn.book import OrderBook
from flexconn.connection import ConnectionState
from flexconn.feeds import StreamRestarted
from flexconn.models.enums import DepthLevel, Side
from flexconn.models.market import DepthSnapshot, Trade

MARKET = "BTC-USD-SWAP-LIN"


def draw(renderable: RenderableType, width: int = 100) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def book(*, seq: int = 7) -> OrderBook:
    levels = OrderBook(MARKET)
    levels.apply(
        DepthSnapshot.from_levels(
            market_code=MARKET,
            level=DepthLevel.L25,
            timestamp=1_700_000_000_000,
            seq_num=seq,
            bids=[(Decimal("49990"), Decimal("0.5")), (Decimal("49980.5"), Decimal("1"))],
            asks=[(Decimal("50010"), Decimal("0.25"))],
        )
    )
    return levels


def test_the_book_shows_both_sides_best_first_with_spread_and_own_orders() -> None:
    text = draw(view.book_panel(book(), levels=5, own_prices=[Decimal("49980.5")]))
    rows = [line for line in text.splitlines() if "4998" in line or "5001" in line]
    assert "0.5" in rows[0] and "49990" in rows[0] and "50010" in rows[0] and "0.25" in rows[0]
    assert "• 49980.5" in rows[1] and "5001" not in rows[1]
    assert "spread 20 (4.0 bps)" in text and "seq 7" in text


def test_a_stale_book_says_so_and_shows_no_levels() -> None:
    stale = book()
    stale.invalidate()
    text = draw(view.book_panel(stale, levels=5))
    assert "STALE (book invalidated): not live, waiting for a fresh snapshot" in text
    assert "spread" not in text and "49990" not in text
    assert plain_line(stale, ConnectionState.CONNECTED) == (
        f"{MARKET} STALE (connected): book invalid, not live; waiting for a fresh snapshot"
    )


def test_a_valid_book_is_stale_while_the_connection_is_down() -> None:
    """Before the book itself is invalidated, the connection's state already says it is not live."""
    text = draw(view.book_panel(book(), levels=5, stale="reconnecting: connection lost"))
    assert "STALE (reconnecting: connection lost)" in text
    assert "49990" not in text
    assert plain_line(book(), ConnectionState.RECONNECTING, "closed by the server") == (
        f"{MARKET} STALE (reconnecting: closed by the server): book invalid, not live; "
        "waiting for a fresh snapshot"
    )


def test_the_book_panel_is_as_wide_as_its_numbers_and_never_cuts_them() -> None:
    levels = OrderBook(MARKET)
    levels.apply(
        DepthSnapshot.from_levels(
            market_code=MARKET,
            level=DepthLevel.L25,
            timestamp=1_700_000_000_000,
            seq_num=1_796_527_723_239_051,
            bids=[(Decimal("49987.5"), Decimal("0.036")), (Decimal("49960"), Decimal("10.125"))],
            asks=[(Decimal("50007.5"), Decimal("0.009")), (Decimal("50040"), Decimal("0.039"))],
        )
    )
    panel = view.book_panel(
        levels, levels=10, own_prices=[Decimal("49987.5"), Decimal("50040")], title="book"
    )
    width = view.width_of(panel)
    text = draw(panel, width=width)
    assert "…" not in text
    for cell in ("• 49987.5", "10.125", "50040 •", "seq 1796527723239051", "0.009"):
        assert cell in text, cell
    assert max(len(line) for line in text.splitlines()) == width


def test_fit_levels_leaves_room_for_the_rest_of_the_screen() -> None:
    assert view.fit_levels(10, 40, reserved=3) == 10
    assert view.fit_levels(25, 24, reserved=3) == 15
    assert view.fit_levels(10, 8, reserved=3) == 1


def test_the_orders_panel_shows_fewer_rows_and_says_how_many_more() -> None:
    rows = [
        view.OrderRow(
            market_code=MARKET,
            order_id=1000000000100 + i,
            client_order_id=None,
            side=Side.BUY,
            price=Decimal("49000"),
            quantity=Decimal("0.01"),
            status="OPEN",
        )
        for i in range(10)
    ]
    text = draw(view.orders_panel(rows, max_rows=4))
    assert "open orders (10)" in text
    assert "1000000000102" in text and "1000000000103" not in text
    assert "+7 more" in text


def test_the_event_log_wraps_long_lines_and_keeps_the_newest_that_fit() -> None:
    lines = [f"event {i}: " + "word " * 20 for i in range(10)]
    text = draw(view.log_panel(lines, width=60, height=7), width=60)
    assert "…" not in text
    assert "event 9" in text and "event 8" in text and "event 7" not in text


def test_the_legend_explains_each_mark() -> None:
    legend = view.legend(("•", "your order"), ("20007", "rate limited"))
    assert legend.plain == "• your order   20007 rate limited"


def test_the_plain_book_line() -> None:
    assert plain_line(book(seq=9), ConnectionState.CONNECTED) == (
        f"{MARKET} seq=9 bid 0.5 @ 49990 | ask 0.25 @ 50010 spread 20"
    )


def test_trades_show_time_side_price_and_quantity() -> None:
    trade = Trade(
        market_code=MARKET,
        trade_id=1,
        price=Decimal("50000.50"),
        quantity=Decimal("0.010"),
        side=Side.SELL,
        timestamp=1_700_000_000_123,
    )
    text = draw(view.trades_panel([trade]))
    assert "22:13:20.123" in text
    assert "SELL" in text and "50000.5" in text and "0.01" in text


def test_orders_and_fills_tables_say_when_they_are_empty() -> None:
    assert "(none)" in draw(view.orders_panel([]))
    assert "(none yet)" in draw(view.fills_panel([]))
    row = view.OrderRow(
        market_code=MARKET,
        order_id=1000000000123,
        client_order_id=None,
        side=Side.BUY,
        price=Decimal("49000"),
        quantity=Decimal("0.010"),
        status="OPEN",
    )
    text = draw(view.orders_panel([row], show_market=False), width=120)
    assert "open orders (1)" in text
    assert "1000000000123" in text and "49000" in text and MARKET not in text


def test_numbers_are_positional_without_trailing_zeros() -> None:
    assert view.number(Decimal("1E+3")) == "1000"
    assert view.number(Decimal("0.0100")) == "0.01"
    assert view.number(Decimal("-0.0")) == "0"
    assert view.number(None) == "-"


def test_the_stream_marker_line_is_json() -> None:
    marker = StreamRestarted(channel="trade:ETH-USD", reconnects=2, reason='lost "x"')
    assert marker_line(marker) == (
        '{"marker":"StreamRestarted","channel":"trade:ETH-USD","reconnects":2,'
        '"reason":"lost \\"x\\""}'
    )


def test_a_stale_book_with_a_long_reason_still_fits_a_narrow_terminal() -> None:
    reason = "reconnecting: " + "cannot connect: all attempts to connect to 127.0.0.1:1 failed"
    panel = view.book_panel(book(), levels=5, stale=reason)
    assert view.width_of(panel) <= 40
    text = draw(panel, width=40)
    assert "…" not in text and "STALE" in text
