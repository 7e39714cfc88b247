"""The embedded simulator: one exchange served over WebSocket and REST, with live markets.

:func:`serve` is the async context manager most callers want; :func:`serve_sim` is its
``task_status`` twin for callers that bring their own nursery. Both start, inside a nursery they
own: the WebSocket server, the REST server, the channel publishers and the synthetic
participants, all on one :class:`~flexconn.sim.exchange.SimExchange`, and stop them all on exit
or cancellation.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from functools import partial

import attrs
import trio
import trio.lowlevel

from flexconn._groups import sole
from flexconn.sim.exchange import ApiKey, SimExchange
from flexconn.sim.faults import Faults
from flexconn.sim.markets import DEFAULT_MARKETS, MarketSpec
from flexconn.sim.participants import Participants
from flexconn.sim.ratelimit import DEFAULT_RATE_LIMITS, RateLimits
from flexconn.sim.ws_channels import Cadences
from flexconn.sim.ws_server import WsOptions, WsServer

__all__ = ["Simulator", "serve", "serve_sim"]

logger = logging.getLogger("flexconn.sim")

#: How often the participants task wakes when it trades at a finite rate.
_PARTICIPANTS_TICK = 0.05
#: Firehose mode: one participant action every few scheduler passes. The depth publisher sends
#: every subscribed channel on every pass (an unchanged book costs only a new header), so most
#: passes are cheap and the server produces several times more frames than if it waited for
#: the engine; books still change every few messages and trades keep flowing.
_FIREHOSE_STEPS = 1
_FIREHOSE_PASSES = 4


@attrs.frozen(kw_only=True)
class Simulator:
    """A running simulator: where to connect and the handles to steer it.

    Attributes:
        ws_url: ``ws://host:port/v2/websocket``.
        rest_url: ``http://host:port`` (``None`` when REST was not started).
        exchange: the shared exchange state (engine, keys, fan-out).
        participants: the synthetic market participants, if running.
        ws_server: the WebSocket server (its :meth:`~WsServer.statistics`).
    """

    ws_url: str
    rest_url: str | None
    exchange: SimExchange
    participants: Participants | None
    ws_server: WsServer

    @property
    def faults(self) -> Faults:
        """The fault switchboard."""
        return self.exchange.faults

    @property
    def demo_key(self) -> ApiKey:
        """A can-trade key on the funded demo account."""
        return self.exchange.demo_key

    @property
    def read_only_key(self) -> ApiKey:
        """A read-only key on the same account."""
        return self.exchange.read_only_key


async def _drive(exchange: SimExchange, participants: Participants) -> None:
    """Step the participants at their rate (flat out in firehose mode), flushing each round."""
    if math.isinf(participants.rate_per_s):
        while True:
            participants.step(_FIREHOSE_STEPS)
            exchange.flush()
            for _ in range(_FIREHOSE_PASSES):
                await trio.lowlevel.checkpoint()
    last = trio.current_time()
    while True:
        await trio.sleep(_PARTICIPANTS_TICK)
        now = trio.current_time()
        due = participants.steps_due(now - last)
        last = now
        if due:
            participants.step(due)
            exchange.flush()


async def serve_sim(
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    rest_port: int | None = 0,
    markets: Iterable[MarketSpec] = DEFAULT_MARKETS,
    participants_rate: float | None = 20.0,
    participants_depth: int = 10,
    seed: int = 0,
    rate_limits: RateLimits = DEFAULT_RATE_LIMITS,
    cadences: Cadences = Cadences(),  # noqa: B008 - frozen value object
    ws_options: WsOptions = WsOptions(),  # noqa: B008 - frozen value object
    exchange: SimExchange | None = None,
    task_status: trio.TaskStatus[Simulator] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a simulator until cancelled; reports a :class:`Simulator` through ``task_status``.

    Args:
        port: the WebSocket port (0: any free port).
        host: the interface both servers bind.
        rest_port: the REST port (0: any free port; ``None``: no REST server).
        markets: the markets of a fresh exchange.
        participants_rate: synthetic participant actions per second (``math.inf``: firehose,
            as fast as the engine goes; ``None``: no participants, quiet books).
        participants_depth: quotes per side the synthetic maker keeps in each market.
        seed: seeds the participants (same seed, same order flow).
        rate_limits: the WebSocket limits (:meth:`RateLimits.unlimited` for load tests).
        cadences: the channel publishing intervals.
        ws_options: WebSocket server tunables (idle timeout, login window, outbox bound...).
        exchange: run on this exchange instead of a fresh one (``markets`` and
            ``rate_limits`` are then ignored).
    """
    if exchange is None:
        exchange = SimExchange(markets=markets, rate_limits=rate_limits)
    async with trio.open_nursery() as nursery:
        ws_server = WsServer(exchange, ws_options)
        ws_url: str = await nursery.start(partial(ws_server.serve, host=host, port=port))
        rest_url: str | None = None
        if rest_port is not None:
            from flexconn.sim.rest import serve_rest

            rest_url = await nursery.start(partial(serve_rest, exchange, host=host, port=rest_port))
        await nursery.start(partial(exchange.channels.run, cadences))
        participants: Participants | None = None
        if participants_rate is not None:
            participants = Participants(
                exchange.engine, seed=seed, rate_per_s=participants_rate, depth=participants_depth
            )
            exchange.flush()
            nursery.start_soon(_drive, exchange, participants)
        logger.info("simulator running: %s %s", ws_url, rest_url or "(no REST)")
        task_status.started(
            Simulator(
                ws_url=ws_url,
                rest_url=rest_url,
                exchange=exchange,
                participants=participants,
                ws_server=ws_server,
            )
        )


@asynccontextmanager
async def serve(
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    rest_port: int | None = 0,
    markets: Iterable[MarketSpec] = DEFAULT_MARKETS,
    participants_rate: float | None = 20.0,
    participants_depth: int = 10,
    seed: int = 0,
    rate_limits: RateLimits = DEFAULT_RATE_LIMITS,
    cadences: Cadences = Cadences(),  # noqa: B008 - frozen value object
    ws_options: WsOptions = WsOptions(),  # noqa: B008 - frozen value object
    exchange: SimExchange | None = None,
) -> AsyncIterator[Simulator]:
    """Run a simulator for the duration of the ``async with`` block.

    ``async with flexconn.sim.serve() as sim:`` gives a running :class:`Simulator`; leaving the
    block (or cancelling it) stops every server and task. Arguments are those of
    :func:`serve_sim`. An exception from the block (or a single failure of the simulator)
    propagates as itself, not wrapped in an exception group.
    """
    try:
        async with trio.open_nursery() as nursery:
            sim: Simulator = await nursery.start(
                partial(
                    serve_sim,
                    port,
                    host=host,
                    rest_port=rest_port,
                    markets=markets,
                    participants_rate=participants_rate,
                    participants_depth=participants_depth,
                    seed=seed,
                    rate_limits=rate_limits,
                    cadences=cadences,
                    ws_options=ws_options,
                    exchange=exchange,
                )
            )
            try:
                yield sim
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        only = sole(group)
        if only is None:
            raise
        raise only from only.__cause__
