"""The soak's smoke run (``benchmarks/soak.py`` for 90 s with a fault every 10 s) and its
growth test on synthetic series.

The long soak (30 minutes, ``make soak``) is not part of the test suite; this short run checks
that the script works end to end and that a connection under a fault every few seconds, with 20
feeds and a steady order flow, passes its own checks: no unbounded growth, every feed resumed,
every order request answered, ``conn.orders`` equal to the exchange's open orders.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

SOAK = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"
DURATION = 90
FAULT_EVERY = 10


@pytest.mark.slow
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
    assert set(result["checks"]) == {"rss_mb", "fds", "tasks", "buffered", "outbox"}


def _load_soak() -> Any:
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("soak", module)
    spec.loader.exec_module(module)
    return module


soak = _load_soak()


@given(
    level=st.floats(min_value=10, max_value=1000),
    noise=st.floats(min_value=0, max_value=0.04),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_growth_check_passes_a_flat_noisy_series(level: float, noise: float, seed: int) -> None:
    rng = random.Random(seed)
    samples = [{"m": level * (1 + rng.uniform(-noise, noise))} for _ in range(90)]
    limit = soak.Limit(relative=0.10, absolute=0.0, cap=2 * level)
    assert soak.growth_checks(samples, {"m": limit})["m"]["ok"]


@given(
    level=st.floats(min_value=10, max_value=1000),
    leak=st.floats(min_value=0.5, max_value=5),
)
def test_growth_check_fails_a_steady_leak(level: float, leak: float) -> None:
    # growing by `leak` percent of the level per sample: the last third ends well above the
    # middle third, however the noise falls
    samples = [{"m": level * (1 + leak / 100 * i)} for i in range(90)]
    limit = soak.Limit(relative=0.10, absolute=0.0, cap=math.inf)
    check = soak.growth_checks(samples, {"m": limit})["m"]
    assert not check["ok"]
    assert check["growth"] > check["allowed"]


def test_growth_check_fails_a_series_over_its_cap() -> None:
    samples = [{"m": 10.0} for _ in range(30)]
    samples[3]["m"] = 100.0  # a spike early on, past the cap, though the medians are flat
    check = soak.growth_checks(samples, {"m": soak.Limit(relative=0.1, absolute=1, cap=50)})["m"]
    assert not check["ok"] and check["growth"] == 0
