"""Project-wide fixtures.

``transport``: every WebSocket transport implementation, one test run per transport. A test that
opens connections takes the fixture and passes it on (``open_connection(url,
transport=transport)``), so one test body checks that both behave identically.

Tests marked ``slow`` (long real-time runs: the soak smoke, the chaos proxy scenario, live
terminal views) are collected first, so that under ``pytest -n`` they start at once and the
rest of the suite runs beside them instead of after them.

Helpers shared by the tests (``trading``, ``wait_until``, ``all_tasks``, ``engine_orders``, the
MockClock wall clock ``wall_ms`` and the exchange set on it) live in ``tests/helpers.py``;
test modules import them from there (``from helpers import ...``). ``wall_sim`` is a quiet
simulator (no market participants) on that wall clock, for tests on ``autojump_clock``;
``quiet_sim`` is one on the real clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from helpers import sim_exchange

from flexconn.sim import Simulator, serve
from flexconn.transport import TransportFactory, open_sansio_websocket, open_trio_websocket

#: Every transport implementation, by test id.
TRANSPORTS: dict[str, TransportFactory] = {
    "sansio": open_sansio_websocket,
    "trio-websocket": open_trio_websocket,
}


@pytest.fixture(params=list(TRANSPORTS.values()), ids=list(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> TransportFactory:
    """A transport factory; the test runs once per implementation."""
    factory: TransportFactory = request.param
    return factory


@pytest.fixture
async def wall_sim() -> AsyncIterator[Simulator]:
    """A simulator without market participants whose exchange runs on ``helpers.wall_ms``."""
    async with serve(participants_rate=None, exchange=sim_exchange()) as simulator:
        yield simulator


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the slow tests first (a stable sort keeps the rest in their order)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
async def quiet_sim() -> AsyncIterator[Simulator]:
    """A simulator without market participants, on the real clock."""
    async with serve(participants_rate=None) as simulator:
        yield simulator
