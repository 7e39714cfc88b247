"""The error tree and the exchange code table."""

from __future__ import annotations

import pytest

from flexconn import errors


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("05001", errors.PermissionDenied),
        (5001, errors.PermissionDenied),
        ("20000", errors.AuthenticationError),
        ("20007", errors.RateLimitError),
        ("20009", errors.InvalidRequestError),
        ("20022", errors.InvalidOrderError),
        ("100005", errors.OrderNotFoundError),
        ("40035", errors.OrderNotFoundError),
        ("40032", errors.InvalidRequestError),
        ("200050", errors.MarketUnavailableError),
        ("710002", errors.PriceBoundError),
        ("710006", errors.InsufficientFundsError),
        ("20032", errors.ServerError),
    ],
)
def test_codes_map_to_their_class(code: str | int, cls: type[errors.ExchangeError]) -> None:
    exc = errors.exchange_error(code, "boom")
    assert type(exc) is cls
    assert exc.code == str(code).zfill(5)
    assert exc.message == "boom"
    assert isinstance(exc, errors.FlexconnError)


def test_missing_message_uses_the_table_text() -> None:
    exc = errors.exchange_error("20034")
    assert exc.message == "The size of tag must be less than 32"
    assert str(exc) == "[20034] The size of tag must be less than 32"


def test_unknown_code_falls_back_to_default_class_and_keeps_http_status() -> None:
    exc = errors.exchange_error("999999", "odd", http_status=418)
    assert type(exc) is errors.ExchangeError
    assert (exc.code, exc.http_status) == ("999999", 418)
    assert "HTTP 418" in str(exc)


#: The WebSocket documents' error table, code -> message, as the documents print it.
DOCUMENTED_CODES = {
    "05001": "Your operation authority is invalid",
    "20000": "Signature is invalid",
    "20001": "Operation failed, please contact system administrator",
    "20002": "Unexpected error, please check if your request data complies with the specification.",
    "20003": "Unrecognized operation",
    "20005": "Already logged in",
    "20006": "Quantity must be greater than zero",
    "20007": "You are accessing server too rapidly",
    "20008": "clientOrderId must be greater than zero if provided",
    "20009": "JSON data format is invalid",
    "20010": "Either clientOrderId or orderId is required",
    "20011": "marketCode is required",
    "20012": "side is required",
    "20013": "orderType is required",
    "20014": "clientOrderId is not long type",
    "20015": "marketCode is invalid",
    "20016": "side is invalid",
    "20017": "orderType is invalid",
    "20018": "timeInForce is invalid",
    "20019": "orderId is invalid",
    "20020": "stopPrice or limitPrice is invalid",
    "20021": "price is invalid",
    "20022": "price is required for LIMIT order",
    "20023": "timestamp is required",
    "20024": "timestamp exceeds the threshold",
    "20025": "API key is invalid",
    "20026": "Token is invalid or expired",
    "20027": "The length of the message exceeds the maximum length",
    "20028": "price or stopPrice or limitPrice must be greater than zero",
    "20029": "stopPrice must be less than limitPrice for Buy Stop Order",
    "20030": "limitPrice must be less than stopPrice for Sell Stop Order",
    "20031": "The marketCode is closed for trading temporarily",
    "20032": "Failed to submit due to timeout in server side",
    "20033": "triggerType is invalid",
    "20034": "The size of tag must be less than 32",
    "300011": "Repo market orders are not allowed during the auction window",
    "300012": "Repo bids above 0 and offers below 0 are not allowed during the auction window",
    "100005": "Open order not found with id",
    "100006": "Open order does not match to the given account",
    "200050": "The market is not active",
    "710002": "FAILED sanity bound check as price (.....) < lower bound (.....)",
    "710003": "FAILED sanity bound check as price (.....) > upper bound (.....)",
    "710004": "FAILED net position check as position (.....) > threshold (.....)",
    "710005": "FAILED margin check as collateral (.....) < var (.....)",
    "710006": "FAILED balance check as balance (.....) < value (.....)",
}

#: Words of a message, by the error class its meaning demands; the first category that matches
#: wins (so an auction-window refusal of a market order is the market's state, not the order's).
MEANINGS: list[tuple[tuple[str, ...], type[errors.ExchangeError]]] = [
    (("authority",), errors.PermissionDenied),
    (("signature", "logged in", "timestamp", "api key", "token"), errors.AuthenticationError),
    (("too rapidly",), errors.RateLimitError),
    (("system administrator", "server side"), errors.ServerError),
    (("closed for trading", "not active", "auction window"), errors.MarketUnavailableError),
    (("order not found", "does not match to the given account"), errors.OrderNotFoundError),
    (("sanity bound",), errors.PriceBoundError),
    (("position", "margin", "balance"), errors.InsufficientFundsError),
    (
        (
            "quantity",
            "clientorderid",
            "orderid",
            "marketcode",
            "side",
            "ordertype",
            "timeinforce",
            "price",
            "triggertype",
        ),
        errors.InvalidOrderError,
    ),
    (
        ("json", "unrecognized operation", "request data", "length", "tag"),
        errors.InvalidRequestError,
    ),
]


def meaning(message: str) -> type[errors.ExchangeError]:
    text = message.lower()
    for words, cls in MEANINGS:
        if any(word in text for word in words):
            return cls
    raise AssertionError(f"no category for {message!r}")


@pytest.mark.parametrize("code", list(DOCUMENTED_CODES))
def test_every_documented_code_raises_the_class_its_meaning_demands(code: str) -> None:
    documented = DOCUMENTED_CODES[code]
    exc = errors.exchange_error(code)
    assert type(exc) is meaning(documented)
    # the message is the documents' text (the values they elide are not in the default)
    assert exc.message == documented.replace(" (.....)", "")
    assert exc.code == code and str(exc) == f"[{code}] {exc.message}"


def test_the_code_table_invents_no_code() -> None:
    """Every code the library knows is one the documents use: the WebSocket error table, or the
    REST documents' per-order failures."""
    rest_order_failures = {"40032", "40035"}
    assert set(errors.ERROR_CODES) == set(DOCUMENTED_CODES) | rest_order_failures


def test_validation_error_names_the_field() -> None:
    exc = errors.ValidationError("tag", "at most 32 characters")
    assert exc.field == "tag"
    assert isinstance(exc, errors.LocalProtocolError)
    assert str(exc) == "tag: at most 32 characters"


def test_order_already_closed_is_an_order_not_found_error_with_the_close_reason() -> None:
    from flexconn.models.enums import OrderStatus

    exc = errors.OrderAlreadyClosed(42, OrderStatus.FILLED)
    assert isinstance(exc, errors.OrderNotFoundError)
    assert isinstance(exc, errors.ExchangeError)
    assert (exc.order_id, exc.close_reason, exc.code) == (42, OrderStatus.FILLED, "100004")
    assert str(exc) == "[100004] order 42 was already closed (FILLED)"
    unknown = errors.OrderAlreadyClosed(7, None, "gone", code=None)
    assert unknown.close_reason is None and str(unknown) == "gone"
