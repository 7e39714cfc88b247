"""The live terminal views, checked in a real terminal: tmux runs the command, we read the screen.

``.ci/run`` installs tmux, so in CI these never skip. Each test uses its own tmux server (``-L``)
so it cannot touch a developer's sessions.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("flexconn")
MARKET = "BTC-USD-SWAP-LIN"

# Real terminals in real time: among the slow tests. In CI a missing tmux is a failure (.ci/run
# installs it), never a skip.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("tmux") is None and not os.environ.get("CI"), reason="tmux is not installed"
    ),
]


class Terminal:
    """One detached tmux session running one command in a pane of ``size`` (150x45)."""

    def __init__(self, command: list[str], size: tuple[int, int] = (150, 45)) -> None:
        self.server = f"flexconn-test-{uuid.uuid4().hex[:8]}"
        # The pane outlives the command, so its exit status and last screen can be read. rich
        # takes COLUMNS and LINES over the terminal's size, and pytest exports them (80x24).
        shell = "env -u COLUMNS -u LINES " + " ".join(command) + "; echo EXIT-STATUS=$?; sleep 60"
        width, height = (str(n) for n in size)
        self._tmux("new-session", "-d", "-s", "t", "-x", width, "-y", height, shell)

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.server, *args], capture_output=True, text=True, timeout=10
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def press(self, key: str) -> None:
        self._tmux("send-keys", "-t", "t", key)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t")

    def wait_for(self, check: Callable[[str], bool], *, timeout: float = 20) -> str:
        """Poll the screen until ``check`` accepts it (the UI runs on its own clock)."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if check(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never matched; last screen:\n{screen}")
            time.sleep(0.1)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def terminal() -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def open_terminal(command: list[str], size: tuple[int, int] = (150, 45)) -> Terminal:
        opened.append(Terminal(command, size))
        return opened[-1]

    yield open_terminal
    for term in opened:
        term.close()


def test_demo_draws_book_trades_orders_outbox_and_connection_panels(
    terminal: Callable[..., Terminal],
) -> None:
    term = terminal([str(SCRIPT), "demo", "--duration", "6"])
    panels = (
        f"book {MARKET}",
        "qty",
        "spread ",
        "latest trades",
        "fills",
        "open orders (",
        "outbox",
        "orders/command",
        "connection",
        "events",
    )
    screen = term.wait_for(lambda s: all(p in s for p in panels) and "CONNECTED" in s)
    assert "flexconn demo" in screen.splitlines()[0]
    # After the forced disconnect the connection panel shows the reconnect and what was
    # resubscribed, while the orders placed before it are still listed.
    # (reconnects counts sessions that reached CONNECTED, which follows the resubscription.)
    screen = term.wait_for(
        lambda s: (
            re.search(r"resubscribed\s+order:all", s) is not None
            and re.search(r"reconnects\s+1\b", s) is not None
        )
    )
    assert re.search(r"reconnects\s+1\b", screen)
    assert "open orders (0)" not in screen
    # It ends by itself, leaves the full screen and prints its summary.
    final = term.wait_for(lambda s: "EXIT-STATUS=" in s, timeout=30)
    assert "EXIT-STATUS=0" in final
    assert "demo summary after" in final
    assert "connection: 1 reconnect(s)" in final


def test_ctrl_c_ends_the_demo_cleanly_with_its_summary(
    terminal: Callable[..., Terminal],
) -> None:
    term = terminal([str(SCRIPT), "demo", "--duration", "60"])
    term.wait_for(lambda s: "open orders (10)" in s)
    term.press("C-c")
    final = term.wait_for(lambda s: "EXIT-STATUS=" in s)
    assert "EXIT-STATUS=0" in final
    assert "demo stopped by Ctrl-C after" in final
    assert "demo summary after" in final
    assert "Traceback" not in final


def test_book_draws_a_live_two_sided_book(terminal: Callable[..., Terminal]) -> None:
    term = terminal([str(SCRIPT), "book", MARKET, "--duration", "4", "--levels", "5"])
    screen = term.wait_for(lambda s: "bid" in s and "spread " in s and "CONNECTED" in s)
    assert f"book {MARKET}" in screen
    first_seq = _seq(screen)
    # The view redraws as new snapshots arrive.
    term.wait_for(lambda s: _seq(s) not in (None, first_seq))
    final = term.wait_for(lambda s: "EXIT-STATUS=" in s, timeout=20)
    assert "EXIT-STATUS=0" in final


def _seq(screen: str) -> str | None:
    for line in screen.splitlines():
        if "seq " in line:
            return line.split("seq ", 1)[1].split()[0]
    return None


#: A price or quantity cut short by the view (rich's ellipsis), or a marker split from its price.
CUT = re.compile(r"\d…|…\d|^\s*│?\s*•\s*│", re.M)


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
def test_demo_fits_the_terminal_without_cutting_numbers_and_explains_its_marks(
    terminal: Callable[..., Terminal], size: tuple[int, int]
) -> None:
    width, height = size
    term = terminal([str(SCRIPT), "demo", "--duration", "8"], size)
    screen = term.wait_for(lambda s: re.search(r"• \d", s) is not None, timeout=20)
    seen = [screen]
    # Through the drop and the requotes: every screen fits and cuts nothing.
    seen.append(term.wait_for(lambda s: "reconnect" in s or "requot" in s))
    seen.append(term.wait_for(lambda s: "cancel" in s, timeout=20))
    for shown in seen:
        lines = shown.splitlines()
        assert len(lines) <= height and all(len(line) <= width for line in lines)
        assert not CUT.search(shown), shown
        words = " ".join(shown.split())
        assert "• your order rests at this price" in words
        assert "20007 refused as too fast (rate limit), resent" in words
        assert f"book {MARKET}" in shown and "open orders (" in shown
        assert re.search(r"seq \d{6,}", shown), shown  # the whole sequence number
    term.wait_for(lambda s: "EXIT-STATUS=0" in s, timeout=30)


def test_demo_in_a_terminal_too_small_says_so(terminal: Callable[..., Terminal]) -> None:
    term = terminal([str(SCRIPT), "demo", "--duration", "30"], (70, 20))
    screen = term.wait_for(lambda s: "too small" in s)
    assert "this terminal (70x20) is too small for the live view" in " ".join(screen.split())
    assert "needs at least 80x24" in " ".join(screen.split())
    term.press("C-c")
    assert "EXIT-STATUS=0" in term.wait_for(lambda s: "EXIT-STATUS=" in s)


def test_book_at_80x24_shows_fewer_levels_whole(terminal: Callable[..., Terminal]) -> None:
    term = terminal([str(SCRIPT), "book", MARKET, "--duration", "4", "--levels", "25"], (80, 24))
    screen = term.wait_for(lambda s: re.search(r"seq \d", s) is not None)
    lines = screen.splitlines()
    assert lines[0].startswith("flexconn book")  # nothing scrolled off the top
    assert not CUT.search(screen), screen
    assert "STALE connection down or awaiting a fresh snapshot" in " ".join(screen.split())
    rows = [line for line in lines if re.match(r"│\s+[\d.]+\s+[\d.]+\s", line)]
    assert 1 <= len(rows) <= 24 - 9
    assert "EXIT-STATUS=0" in term.wait_for(lambda s: "EXIT-STATUS=" in s)
