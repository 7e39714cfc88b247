"""The REST routes the simulator serves: verb, path template, handler, and who may call it."""

from __future__ import annotations

import re
from typing import Final

import attrs

from flexconn.sim.rest import handlers_account as account
from flexconn.sim.rest import handlers_delivery as delivery
from flexconn.sim.rest import handlers_market as market
from flexconn.sim.rest import handlers_orders as orders
from flexconn.sim.rest.request import Handler, Reject

__all__ = ["ROUTES", "Route", "match"]


@attrs.frozen(kw_only=True)
class Route:
    """One endpoint: ``event`` names its replies, ``private`` routes need a signed request and
    ``trading`` ones a key that can trade."""

    verb: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler
    event: str
    private: bool
    trading: bool = False


def _route(
    verb: str, template: str, handler: Handler, event: str, *, private: bool, trading: bool = False
) -> Route:
    regex = re.sub(r"\\\{[A-Za-z]+\\\}", "([^/]+)", re.escape(template))
    return Route(
        verb=verb,
        template=template,
        pattern=re.compile(regex + "$"),
        handler=handler,
        event=event,
        private=private,
        trading=trading,
    )


ROUTES: Final = (
    _route("GET", "/v2/ping", market.ping, "ping", private=False),
    _route("GET", "/v2/all/markets", market.markets, "markets", private=False),
    _route("GET", "/v2/all/assets", market.assets, "assets", private=False),
    _route("GET", "/v2/ticker", market.ticker, "ticker", private=False),
    _route(
        "GET", "/v2/publictrades/{marketCode}", market.public_trades, "publicTrades", private=False
    ),
    _route("GET", "/v2/depth/{marketCode}/{level}", market.depth, "depth", private=False),
    _route("GET", "/v2/candles/{marketCode}", market.candles, "candles", private=False),
    _route(
        "GET", "/v2/funding-rates/{marketCode}", market.funding_rates, "fundingRates", private=False
    ),
    _route("GET", "/v2/delivery/public/funding", market.public_funding, "funding", private=False),
    _route("GET", "/v2/accountinfo", account.account_info, "accountinfo", private=True),
    _route("GET", "/v2/balances", account.balances, "balances", private=True),
    _route("GET", "/v2/balances/{instrumentId}", account.balance, "balancesById", private=True),
    _route("GET", "/v2/positions", account.positions, "positions", private=True),
    _route("GET", "/v2/positions/{instrumentId}", account.position, "positionsById", private=True),
    _route("GET", "/v2/trades/{marketCode}", account.trades, "trades", private=True),
    _route("GET", "/v2/orders", account.open_orders, "orders", private=True),
    _route("GET", "/v2.1/orders", account.orders_v21, "orders", private=True),
    _route("DELETE", "/v2/cancel/orders", orders.cancel_all, "orders", private=True, trading=True),
    _route(
        "DELETE",
        "/v2/cancel/orders/{marketCode}",
        orders.cancel_all,
        "orders",
        private=True,
        trading=True,
    ),
    _route("POST", "/v2/orders/place", orders.place, "placeOrder", private=True, trading=True),
    _route("POST", "/v2/orders/modify", orders.modify, "modifyOrder", private=True, trading=True),
    _route("DELETE", "/v2/orders/cancel", orders.cancel, "cancelOrder", private=True, trading=True),
    _route("GET", "/v2.1/delivery/orders", delivery.delivery_orders, "deliverOrders", private=True),
    _route(
        "POST",
        "/v2.1/delivery/orders",
        delivery.submit_delivery,
        "delivery",
        private=True,
        trading=True,
    ),
    _route(
        "DELETE",
        "/v2.1/delivery/orders/{deliveryOrderId}",
        delivery.cancel_delivery,
        "delivery",
        private=True,
        trading=True,
    ),
    _route(
        "GET", "/v2.1/deliver-auction", delivery.deliver_auction, "deliverAuction", private=True
    ),
    _route(
        "GET",
        "/v2.1/deliver-auction/{instrumentId}",
        delivery.deliver_auction,
        "deliverAuction",
        private=True,
    ),
)


def match(verb: str, path: str) -> tuple[Route, tuple[str, ...]]:
    """The route for ``verb`` and ``path`` and the path's parameters (still URL-encoded).

    Raises:
        Reject: ``20003`` with HTTP 404 for an unknown path, 405 for a known path with
            another verb.
    """
    wrong_verb = False
    for route in ROUTES:
        found = route.pattern.match(path)
        if found is None:
            continue
        if route.verb == verb:
            return route, found.groups()
        wrong_verb = True
    if wrong_verb:
        raise Reject(405, "20003", "Unrecognized operation")
    raise Reject(404, "20003", "Unrecognized operation")
