"""Serving the REST app over HTTP with hypercorn."""

from __future__ import annotations

import logging
from typing import Any

import trio

from flexconn.sim.exchange import SimExchange
from flexconn.sim.ratelimit import DEFAULT_REST_LIMITS, RestLimits
from flexconn.sim.rest.app import make_rest_app

__all__ = ["serve_rest"]

logger = logging.getLogger("flexconn.sim.rest")


async def serve_rest(
    exchange: SimExchange,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    rate_limits: RestLimits = DEFAULT_REST_LIMITS,
    timestamp_tolerance: float = 60.0,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the REST API with hypercorn until cancelled (or ``shutdown`` is set).

    Reports the bound base URL (``http://127.0.0.1:54321``) through ``task_status``, so
    ``url = await nursery.start(serve_rest, exchange)`` works with ``port=0``.
    """
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("flexconn.sim.rest.hypercorn")
    config.graceful_timeout = 1.0
    app = make_rest_app(exchange, rate_limits=rate_limits, timestamp_tolerance=timestamp_tolerance)
    trigger = shutdown.wait if shutdown is not None else trio.sleep_forever

    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        asgi: Any = app  # hypercorn types its apps structurally with TypedDict scopes
        await serve(asgi, config, shutdown_trigger=trigger, task_status=task_status)

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(run)
        url = binds[0]
        logger.info("REST simulator listening on %s", url)
        task_status.started(url)
