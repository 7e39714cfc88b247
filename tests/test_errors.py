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


def test_every_table_entry_is_an_exchange_error_with_a_message() -> None:
    assert len(errors.ERROR_CODES) == 47
    for code, (message, cls) in errors.ERROR_CODES.items():
        assert code.isdigit() and message
        assert issubclass(cls, errors.ExchangeError)


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
