"""The soak's smoke run: ``benchmarks/soak.py`` for 90 s with a fault every 10 s.

The long soak (30 minutes, ``make soak``) is not part of the test suite; this short run checks
that the script works end to end and that a connection under a fault every few seconds, with 20
feeds and a steady order flow, passes its own checks: no unbounded growth, every feed resumed,
every order request answered, ``conn.orders`` equal to the exchange's open orders.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"
DURATION = 90
FAULT_EVERY = 10


@pytest.mark.timeout(DURATION + 90)
def test_soak_smoke_run_passes_its_own_checks(tmp_path: Path) -> None:
    out = tmp_path / "soak"
    command = [
        sys.executable,
        str(SOAK),
        f"--duration={DURATION}",
        f"--fault-every={FAULT_EVERY}",
        "--sample-every=1",
        "--orders-per-s=4",
        f"--out={out}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=DURATION + 75)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((out / "soak.json").read_text())
    assert result["complete"] and result["passed"] and not result["problems"]
    assert result["feeds"] == 20
    assert len(result["faults"]) == DURATION // FAULT_EVERY - 1
    figures = result["figures"]
    assert figures["reconnects"] >= 1
    requests = sum(figures["order requests"].values())
    assert requests >= DURATION  # about four a second, less while reconnecting
    assert sum(figures["order outcomes"].values()) == requests
    assert len(result["samples"]) >= DURATION - 5
    assert set(result["checks"]) == {"rss_mb", "fds", "tasks", "buffered"}
