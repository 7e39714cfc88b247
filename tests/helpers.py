"""Helpers shared by the tests that run the client against the simulator.

Test modules import them (``from helpers import ...``; ``tests/`` is on ``sys.path`` as the root
``conftest.py``'s directory), and ``tests/conftest.py`` builds its ``wall_sim`` fixture on them.

Time: tests that take pytest-trio's ``autojump_clock`` run the simulator and the client on one
``MockClock``. :func:`wall_ms` is the wall clock both sides share there (epoch milliseconds that
advance with trio's clock), so a command's ``timestamp + recvWindow`` closes at the same mock
moment for the client and the exchange. :func:`sim_exchange` and :func:`trading` wire it in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import trio

from flexconn.auth import Credentials
from flexconn.config import ReconnectPolicy
from flexconn.connection import Connection, open_connection
from flexconn.rest import RestClient
from flexconn.sim import SimExchange, Simulator

#: The demo account every simulator opens (the one its demo key trades for).
ACCOUNT = "1001"
#: The shared wall clock's origin: trio time 0 is this epoch millisecond.
EPOCH = 1_700_000_000_000
#: Reconnects quickly (a test waits for a few reconnections, not for a back-off).
FAST_RETRY = ReconnectPolicy(initial_delay=0.05, max_delay=0.2)


def wall_ms() -> int:
    """The shared wall clock: epoch milliseconds that advance with trio's (mock) time."""
    return EPOCH + int(trio.current_time() * 1000)


def sim_exchange(**kwargs: Any) -> SimExchange:
    """An exchange on the shared wall clock (pass it to ``serve(exchange=...)``)."""
    return SimExchange(clock=wall_ms, **kwargs)


def creds(sim: Simulator, *, secret: str | None = None) -> Credentials:
    """The simulator's demo key (with another ``secret``: a key that fails to sign)."""
    return Credentials(sim.demo_key.api_key, secret or sim.demo_key.api_secret)


@asynccontextmanager
async def trading(
    sim: Simulator, *, rest: bool = True, shared_clock: bool = True, **kwargs: Any
) -> AsyncIterator[Connection]:
    """A logged-in connection for the demo account, with a REST client for lookups unless
    ``rest=False``; on the shared wall clock unless ``shared_clock=False`` (then the system
    clock, for a simulator on its default clock). ``reconnect`` defaults to :data:`FAST_RETRY`.
    """
    assert sim.rest_url is not None
    key = creds(sim)
    kwargs.setdefault("reconnect", FAST_RETRY)
    clock: dict[str, Any] = {}
    rest_clock: dict[str, Any] = {}
    if shared_clock:
        clock["wall_ms"] = wall_ms
        rest_clock["clock"] = lambda: wall_ms() / 1000
    async with RestClient(sim.rest_url, key, **rest_clock) as client:
        lookup = client if rest else None
        async with open_connection(
            sim.ws_url, credentials=key, rest=lookup, **clock, **kwargs
        ) as conn:
            yield conn


async def wait_until(
    predicate: Callable[[], bool], seconds: float = 5, *, poll: float = 0.005
) -> None:
    """Poll ``predicate`` (``seconds`` at most) for state other tasks change with no event to
    wait on (the simulator's, the connection's)."""
    with trio.fail_after(seconds):
        while not predicate():  # noqa: ASYNC110 - state owned by other tasks
            await trio.sleep(poll)


def all_tasks() -> set[trio.lowlevel.Task]:
    """Every task in the run, from the root down."""
    found: set[trio.lowlevel.Task] = set()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        found.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found


def engine_orders(sim: Simulator, account: str = ACCOUNT) -> dict[int, Decimal]:
    """The exchange's open orders for ``account``: order id -> remaining quantity."""
    return {o.order_id: o.remaining for o in sim.exchange.engine.open_orders(account)}


def tracked(conn: Connection) -> dict[int, Decimal]:
    """The connection's open orders, in the form of :func:`engine_orders`."""
    return {order_id: o.remaining_quantity for order_id, o in conn.orders.items()}
