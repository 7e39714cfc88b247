"""Seeds and clocks for the chaos scenarios.

The scenarios run once per seed in ``FLEXCONN_CHAOS_SEEDS`` (comma-separated seeds and
inclusive ranges, ``1-30`` or ``7,100-104``; default one fixed seed), so
``FLEXCONN_CHAOS_SEEDS=1-30 pytest tests/chaos`` tries thirty; and once per transport, through
the project-wide ``transport`` fixture of ``tests/conftest.py``.

``virtual_wall``: for scenarios on trio's ``MockClock``, a wall clock that jumps with it (see
:class:`chaos.helpers.VirtualWallClock`), installed over ``time.time`` and ``time.time_ns``. The
test must also take ``autojump_clock`` itself: pytest-trio runs a test on a clock only when the
test function receives it.
"""

from __future__ import annotations

import os
import time

import pytest
import trio.testing

from chaos.helpers import VirtualWallClock

DEFAULT_SEEDS = "20261126"


def parse_seeds(raw: str) -> list[int]:
    """``"1-3,7"`` -> ``[1, 2, 3, 7]``."""
    seeds: list[int] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        if dash and first:
            seeds.extend(range(int(first), int(last) + 1))
        else:
            seeds.append(int(part))
    return seeds


def chaos_seeds() -> list[int]:
    return parse_seeds(os.environ.get("FLEXCONN_CHAOS_SEEDS", DEFAULT_SEEDS))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "chaos_seed" in metafunc.fixturenames:
        metafunc.parametrize("chaos_seed", chaos_seeds(), ids=lambda seed: f"seed{seed}")


@pytest.fixture
def virtual_wall(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> VirtualWallClock:
    clock = VirtualWallClock(time.time)
    monkeypatch.setattr(time, "time", clock.time)
    monkeypatch.setattr(time, "time_ns", clock.time_ns)
    return clock
