"""Fixtures for the chaos tests: seeds and the transport.

Seeds: the chaos scenarios run once per seed in ``FLEXCONN_CHAOS_SEEDS`` (comma-separated;
default one fixed seed), so ``FLEXCONN_CHAOS_SEEDS=1,2,3 pytest tests/chaos`` tries other ones.

Transport: the scenarios take a ``transport`` factory. When the project-wide ``tests/conftest.py``
provides a ``transport`` fixture (one per transport implementation), the scenarios run on each;
until then this file provides one that yields the default transport.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from flexconn.transport import TransportFactory, open_trio_websocket

DEFAULT_SEEDS = "20261126"


def chaos_seeds() -> list[int]:
    raw = os.environ.get("FLEXCONN_CHAOS_SEEDS", DEFAULT_SEEDS)
    return [int(part) for part in raw.split(",") if part.strip()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "chaos_seed" in metafunc.fixturenames:
        metafunc.parametrize("chaos_seed", chaos_seeds(), ids=lambda seed: f"seed{seed}")


def _root_defines_transport() -> bool:
    root = Path(__file__).resolve().parent.parent / "conftest.py"
    if not root.exists():
        return False
    return re.search(r"^(async )?def transport\(", root.read_text(), re.MULTILINE) is not None


if not _root_defines_transport():

    @pytest.fixture
    def transport() -> TransportFactory:
        """The default transport (the project conftest's fixture takes over once it exists)."""
        return open_trio_websocket
