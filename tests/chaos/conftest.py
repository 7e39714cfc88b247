"""Seeds for the chaos scenarios.

The scenarios run once per seed in ``FLEXCONN_CHAOS_SEEDS`` (comma-separated; default one fixed
seed), so ``FLEXCONN_CHAOS_SEEDS=1,2,3 pytest tests/chaos`` tries other ones; and once per
transport, through the project-wide ``transport`` fixture of ``tests/conftest.py``.
"""

from __future__ import annotations

import os

import pytest

DEFAULT_SEEDS = "20261126"


def chaos_seeds() -> list[int]:
    raw = os.environ.get("FLEXCONN_CHAOS_SEEDS", DEFAULT_SEEDS)
    return [int(part) for part in raw.split(",") if part.strip()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "chaos_seed" in metafunc.fixturenames:
        metafunc.parametrize("chaos_seed", chaos_seeds(), ids=lambda seed: f"seed{seed}")
