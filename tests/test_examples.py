"""The examples in ``examples/`` run, print what the docs say they print, and match the README.

Each example starts its own simulator, so each runs as a plain ``python`` subprocess, exactly
as a reader would run it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.splitlines()


def test_quickstart_places_and_cancels_an_order() -> None:
    lines = run_example("quickstart.py")
    assert re.fullmatch(r"BTC-USD-SWAP-LIN: best bid \d+(\.\d+)?, spread \d+(\.\d+)?", lines[0])
    placed = re.fullmatch(r"placed order (\d+) at \d+(\.\d+)?", lines[1])
    assert placed
    assert lines[2:] == [f"cancelled order {placed.group(1)}"]


def test_watch_feeds_shows_what_a_consumer_sees_during_a_drop() -> None:
    lines = [line for line in run_example("watch_feeds.py") if not line.startswith("trade ")]
    # the drop itself invalidates the book and reports RECONNECTING (the reason depends on timing)
    first = sorted(lines[:2])
    assert first[0] == "book valid right after the drop: False"
    assert first[1].startswith("connection reconnecting: ")
    assert "trade:BTC-USD-SWAP-LIN: restarted after reconnect #1" in lines
    assert "book valid right after the drop: False" in lines
    assert any(line.startswith("book valid again at seq ") for line in lines)
    assert lines.index("connection connecting: ") < lines.index("connection connected: ")


def test_batch_orders_reports_one_outcome_per_order() -> None:
    lines = run_example("batch_orders.py")
    assert [line.split()[0] for line in lines[:3]] == ["placed"] * 3
    assert lines[3].startswith("refused: PriceBoundError: [710003]")
    assert lines[4].startswith("modified ") and ": replaced by " in lines[4]
    assert lines[5].startswith("modified ") and lines[5].endswith(" in place")
    assert lines[6:] == ["cancelled 2 orders", "cancel 42: OrderNotFoundError"]


def test_rest_client_tour() -> None:
    lines = run_example("rest_client.py")
    assert lines[0].startswith("5 markets: BTC-USD, ETH-USD, BTC-USD-SWAP-LIN")
    assert lines[2] == "balances: BTC 100, ETH 1000, USD 1000000"
    assert re.fullmatch(r"\d+ public trades in the last minute", lines[3])
    assert lines[4] == "read-only key: PermissionDenied [05001]"


def test_the_example_tests_pass() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_the_readme_embeds_the_quickstart_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "README has no python example"
    source = (EXAMPLES / "quickstart.py").read_text()
    body = source[source.index("from decimal import") :]
    assert blocks[0] == body
