"""The embedded CoinFLEX exchange simulator: WebSocket and REST servers over a matching engine.

``async with flexconn.sim.serve() as sim:`` runs one on free local ports; ``sim.ws_url``,
``sim.rest_url`` and ``sim.demo_key`` are what a client needs, ``sim.faults`` breaks things on
purpose and ``sim.exchange`` reaches the engine and the fan-out.
"""

from flexconn.sim.exchange import ApiKey, SimExchange
from flexconn.sim.faults import Faults, InjectedFailure
from flexconn.sim.markets import DEFAULT_MARKETS, MarketSpec
from flexconn.sim.ratelimit import DEFAULT_RATE_LIMITS, RateLimits
from flexconn.sim.simulator import Simulator, serve, serve_sim
from flexconn.sim.ws_channels import Cadences
from flexconn.sim.ws_messages import depth_checksum
from flexconn.sim.ws_server import WS_PATH, WsOptions, WsServer, WsStatistics, serve_ws

__all__ = [
    "DEFAULT_MARKETS",
    "DEFAULT_RATE_LIMITS",
    "WS_PATH",
    "ApiKey",
    "Cadences",
    "Faults",
    "InjectedFailure",
    "MarketSpec",
    "RateLimits",
    "SimExchange",
    "Simulator",
    "WsOptions",
    "WsServer",
    "WsStatistics",
    "depth_checksum",
    "serve",
    "serve_sim",
    "serve_ws",
]
