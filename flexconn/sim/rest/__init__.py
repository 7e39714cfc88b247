"""The simulator's REST server: a small hand-written ASGI app over :class:`SimExchange`.

Layout: :mod:`~flexconn.sim.rest.app` (the ASGI app: plumbing, routing, limits,
authentication), :mod:`~flexconn.sim.rest.routes` (the route table),
:mod:`~flexconn.sim.rest.request` (the request as handlers see it, refusals, parameter parsing),
one ``handlers_*`` module per concern (market data, account, orders, delivery) and
:mod:`~flexconn.sim.rest.server` (serving it with hypercorn). Funding and delivery state belong
to the exchange (:mod:`flexconn.sim.funding`, :mod:`flexconn.sim.delivery`), not to HTTP.
"""

from flexconn.sim.rest.app import RestApp, make_rest_app, status_for_code
from flexconn.sim.rest.server import serve_rest

__all__ = ["RestApp", "make_rest_app", "serve_rest", "status_for_code"]
