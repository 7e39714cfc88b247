"""What every REST handler works with: the parsed request, its refusal, and parameter parsing."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import attrs
import orjson

from flexconn.models import rest as m
from flexconn.protocol.codec import converter
from flexconn.sim.exchange import ApiKey, SimExchange
from flexconn.sim.markets import MarketSpec

__all__ = [
    "INVALID",
    "Handler",
    "Reject",
    "Request",
    "decimal_param",
    "int_param",
    "invalid",
    "json_body",
    "lookup_market",
    "lookup_perpetual",
    "window",
]

#: The code and message of a request the parameter tables do not allow.
INVALID: Final = ("40032", "Invalid request data")


class Reject(Exception):
    """Answer the request with the failure body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"[{code}] {message}")
        self.status = status
        self.code = code
        self.message = message


def invalid(detail: str) -> Reject:
    """A ``40032`` refusal naming what is wrong."""
    return Reject(400, INVALID[0], f"{INVALID[1]}: {detail}")


@attrs.define(kw_only=True)
class Request:
    """One HTTP request as the handlers see it; ``key`` is set once a private route is signed."""

    verb: str
    path: str
    raw_query: str
    query: dict[str, str]
    body: bytes
    headers: dict[str, str]
    client: str
    params: tuple[str, ...]
    key: ApiKey | None = None

    @property
    def account_id(self) -> str:
        assert self.key is not None
        return self.key.account_id


#: A route's handler: the reply body for a request at ``now`` (epoch ms), or a :class:`Reject`.
Handler = Callable[[SimExchange, Request, int], object]


def int_param(query: Mapping[str, str], name: str) -> int | None:
    """An optional integer query parameter."""
    text = query.get(name)
    if text is None or text == "":
        return None
    if not re.fullmatch(r"-?[0-9]+", text):
        raise invalid(f"{name} must be an integer")
    return int(text)


def window(query: Mapping[str, str], rule: m.PageRule, now: int) -> tuple[int, int, int]:
    """``(limit, start, end)`` from the query, defaulted and checked against ``rule``."""
    limit = int_param(query, "limit")
    if limit is None:
        limit = rule.default
    if limit < 1 or (rule.maximum is not None and limit > rule.maximum):
        raise invalid(f"limit must be between 1 and {rule.maximum}")
    end = int_param(query, "endTime")
    start = int_param(query, "startTime")
    if end is None:
        end = now
    if start is None:
        start = end - rule.default_span_ms
    if start > end:
        raise invalid("startTime must not be after endTime")
    if rule.max_window_ms is not None and end - start > rule.max_window_ms:
        raise invalid("startTime and endTime must be within 7 days of each other")
    return limit, start, end


def decimal_param(value: object, name: str) -> Decimal:
    """A number from a JSON body."""
    try:
        result = converter.structure(value, Decimal)
    except (TypeError, ValueError, InvalidOperation):
        raise invalid(f"{name} must be a number") from None
    return result


def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body (``{}`` when empty)."""
    try:
        data = orjson.loads(request.body) if request.body else {}
    except orjson.JSONDecodeError:
        raise Reject(400, "20009", "JSON data format is invalid") from None
    if not isinstance(data, dict):
        raise Reject(400, "20009", "JSON data format is invalid")
    return data


def lookup_market(exchange: SimExchange, code: str) -> MarketSpec:
    """The market named by a request, or ``20015``."""
    spec = exchange.markets.get(code)
    if spec is None:
        raise Reject(400, "20015", "marketCode is invalid")
    return spec


def lookup_perpetual(exchange: SimExchange, code: str) -> MarketSpec:
    """The perpetual swap named by a request, or ``20015``."""
    spec = lookup_market(exchange, code)
    if not spec.is_perpetual:
        raise Reject(400, "20015", "marketCode is invalid: not a perpetual swap")
    return spec
