"""What the command line says while the connection is down, run in-process on trio's MockClock.

The subcommands' handlers run against the in-process simulator over loopback; the simulator
drops every connection and refuses new ones for a while, and the tests read what the command
printed: piped ``book`` must mark the book stale (never print the frozen book as live) and
``stream`` must report the drop and the reconnect on stderr.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from flexconn._cli import book, stream
from flexconn._cli.common import EXIT_UNKNOWN
from flexconn._cli.orders import _not_done
from flexconn.cli import build_parser
from flexconn.errors import OrderOutcomeUnknown
from flexconn.sim import Simulator, serve

MARKET = "BTC-USD-SWAP-LIN"


@pytest.fixture
async def sim(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Simulator]:
    for name in ("FLEXCONN_URL", "FLEXCONN_REST_URL", "FLEXCONN_API_KEY", "FLEXCONN_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    async with serve(participants_rate=20, seed=5) as simulator:
        yield simulator


async def _outage(sim: Simulator, at: float, refuse_for: float) -> None:
    await trio.sleep(at)
    sim.faults.refuse_connections(refuse_for)
    sim.faults.drop_all()


async def test_piped_book_says_stale_while_the_connection_is_down_never_the_frozen_book(
    sim: Simulator, autojump_clock: trio.testing.MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(
        ["book", MARKET, "--url", sim.ws_url, "--duration", "20", "--interval", "1"]
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_outage, sim, 4.5, 6)
        assert await book.handle(args, trio.CancelScope()) == 0
    lines = capsys.readouterr().out.splitlines()
    kinds = "".join("S" if " STALE (" in line else "L" for line in lines)
    # (Stale until the first snapshot,) live lines, then only stale ones while the server
    # refuses (6 s), then live ones again.
    assert re.fullmatch(r"S?L{3,}S{5,}L{3,}", kinds), "\n".join(lines)
    assert all(
        re.search(r"bid [\d.]+ @ [\d.]+ \| ask [\d.]+ @ [\d.]+", line)
        for line in lines
        if " STALE (" not in line
    )
    stale = next(line for line in lines[1:] if " STALE (" in line)
    assert stale.startswith(f"{MARKET} STALE (reconnecting")
    assert "seq=" not in stale and "bid" not in stale
    assert all(line.startswith(f"{MARKET} seq=") for line in lines if " STALE (" not in line)


async def test_stream_reports_the_drop_and_the_reconnect_on_stderr(
    sim: Simulator, autojump_clock: trio.testing.MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(
        ["stream", f"ticker:{MARKET}", "--url", sim.ws_url, "--duration", "15"]
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_outage, sim, 2, 3)
        assert await stream.handle(args, trio.CancelScope()) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 3, err
    assert lines[0].startswith("flexconn stream: disconnected: ")
    assert lines[0].endswith("; reconnecting (data may be missing until it is back)")
    # Attempts refused for the same reason are told once.
    assert (
        lines[1]
        == "flexconn stream: still reconnecting: WebSocket handshake rejected with HTTP 503"
    )
    assert lines[2] == "flexconn stream: reconnected (reconnect #1); resubscribing"
    # stdout keeps only JSON lines: the continuity marker says where data may be missing.
    assert '"marker":"StreamRestarted"' in out
    assert "flexconn stream:" not in out


def test_an_unknown_outcome_exits_3_and_says_what_to_check() -> None:
    error = _not_done(
        OrderOutcomeUnknown("no reply within 10 s and no REST client to look it up"),
        what="cancelling order 1000000000123",
        order_id=1000000000123,
        verb="cancelled",
        check="order 1000000000123 is still open if this lists it: flexconn orders",
    )
    assert error.status == EXIT_UNKNOWN == 3
    assert str(error) == (
        "cancelling order 1000000000123: the outcome is unknown (no reply within 10 s and no "
        "REST client to look it up); order 1000000000123 is still open if this lists it: "
        "flexconn orders"
    )
