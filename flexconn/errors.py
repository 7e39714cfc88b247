"""The flexconn exception tree.

Every exception flexconn raises on purpose derives from :class:`FlexconnError`::

    FlexconnError
    ├── ProtocolError                 a frame or message broke the protocol
    │   ├── LocalProtocolError        we were asked to send something invalid (nothing was sent)
    │   │   └── ValidationError       one request field broke a documented rule (``.field``)
    │   └── RemoteProtocolError       the peer sent something malformed (``.raw`` keeps it)
    ├── TransportError                the socket or HTTP connection failed
    │   ├── ConnectTimeout            connecting or the handshake took too long
    │   ├── ConnectionClosed          the connection is closed (``.reason``)
    │   ├── HeartbeatTimeout          no traffic and no pong within the liveness window
    │   └── ReplyTimeout              the exchange did not answer a command in time
    ├── OrderOutcomeUnknown           a request was sent but its outcome could not be learned
    ├── OrderNotApplied               the exchange did not act on an order request (safe to resend)
    ├── FeedOverflow                  a feed with the ``error`` policy fell too far behind
    └── ExchangeError                 the exchange answered with an error (``.code``, ``.message``)
        ├── AuthenticationError       bad key, signature or timestamp; login state errors
        │   └── PermissionDenied      the key may not do this (read-only key trading)
        ├── RateLimitError            too many requests
        ├── InvalidRequestError       malformed or unknown command, over-long message
        │   └── SubscriptionError     a subscribe/unsubscribe was refused
        ├── InvalidOrderError         an order parameter was refused
        │   └── PriceBoundError       price outside the market's sanity bounds
        ├── InsufficientFundsError    balance, margin or position checks failed
        ├── OrderNotFoundError        no such open order (for this account)
        │   └── OrderAlreadyClosed    the order had closed before the cancel/modify reached it
        ├── MarketUnavailableError    the market is closed or not active
        └── ServerError               the exchange failed internally or timed out

:func:`exchange_error` turns an exchange ``code``/``message`` pair into the right class using
:data:`ERROR_CODES`, the exchange's full error-code table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from flexconn.models.enums import OrderStatus

__all__ = [
    "ERROR_CODES",
    "AuthenticationError",
    "ConnectTimeout",
    "ConnectionClosed",
    "ExchangeError",
    "FeedOverflow",
    "FlexconnError",
    "HeartbeatTimeout",
    "InsufficientFundsError",
    "InvalidOrderError",
    "InvalidRequestError",
    "LocalProtocolError",
    "MarketUnavailableError",
    "OrderAlreadyClosed",
    "OrderNotApplied",
    "OrderNotFoundError",
    "OrderOutcomeUnknown",
    "PermissionDenied",
    "PriceBoundError",
    "ProtocolError",
    "RateLimitError",
    "RemoteProtocolError",
    "ReplyTimeout",
    "ServerError",
    "SubscriptionError",
    "TransportError",
    "ValidationError",
    "exchange_error",
]


class FlexconnError(Exception):
    """Root of every error flexconn raises on purpose."""


class ProtocolError(FlexconnError):
    """A frame or message broke the CoinFLEX protocol."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something the protocol does not allow; nothing was sent."""


class ValidationError(LocalProtocolError):
    """A request field broke one of the documented rules.

    Attributes:
        field: the wire name of the offending field (``"tag"``, ``"dataArray[3].price"``...).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class RemoteProtocolError(ProtocolError):
    """The peer sent a frame we cannot make sense of.

    Attributes:
        raw: the frame exactly as received, so nothing is lost.
    """

    def __init__(self, message: str, raw: str | bytes) -> None:
        super().__init__(message)
        self.raw = raw


class TransportError(FlexconnError):
    """The underlying connection failed."""


class ConnectTimeout(TransportError):
    """Connecting (TCP, TLS or the WebSocket handshake) took longer than allowed."""


class ConnectionClosed(TransportError):
    """The connection is closed; ``reason`` says why when known."""

    def __init__(self, reason: str = "connection closed") -> None:
        super().__init__(reason)
        self.reason = reason


class HeartbeatTimeout(TransportError):
    """Nothing arrived, not even a pong, within the liveness window (a half-open socket)."""


class ReplyTimeout(TransportError):
    """The exchange did not answer a command (login, subscribe, ...) within its timeout."""


class OrderOutcomeUnknown(FlexconnError):
    """An order request left the client but its outcome could not be established."""


class OrderNotApplied(FlexconnError):
    """An order request that the exchange did not act on, so sending it again cannot duplicate.

    Either it was never written to a socket (``sent`` false: no connection within the caller's
    deadline, or the connection ended), or it was written when the connection dropped and
    reconciliation found no effect at the exchange (``sent`` true: no such order was placed, or
    the order to cancel or modify is unchanged).
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class FeedOverflow(FlexconnError):
    """A consumer on a feed with the ``error`` backpressure policy fell behind its buffer."""


class ExchangeError(FlexconnError):
    """The exchange refused a request.

    Attributes:
        code: the exchange's error code as a string (``"20007"``), or ``None`` if it gave none.
        message: the exchange's message.
        http_status: the HTTP status for REST replies, else ``None``.
    """

    def __init__(self, code: str | None, message: str, *, http_status: int | None = None) -> None:
        parts = [f"[{code}]" if code else "", message]
        if http_status is not None:
            parts.append(f"(HTTP {http_status})")
        super().__init__(" ".join(p for p in parts if p))
        self.code = code
        self.message = message
        self.http_status = http_status


class AuthenticationError(ExchangeError):
    """The API key, signature or timestamp was refused, or the login state is wrong."""


class PermissionDenied(AuthenticationError):
    """The key lacks the authority for this operation (e.g. trading with a read-only key)."""


class RateLimitError(ExchangeError):
    """The exchange says we are sending too fast."""


class InvalidRequestError(ExchangeError):
    """The command itself was malformed, unknown or too long."""


class SubscriptionError(InvalidRequestError):
    """A subscribe or unsubscribe request was refused."""


class InvalidOrderError(ExchangeError):
    """An order's parameters were refused."""


class PriceBoundError(InvalidOrderError):
    """The order price lies outside the market's sanity bounds."""


class InsufficientFundsError(ExchangeError):
    """The account's balance, margin or position limits do not allow the order."""


class OrderNotFoundError(ExchangeError):
    """No open order with that id exists for this account."""


class OrderAlreadyClosed(OrderNotFoundError):
    """A cancel or modify found its order already closed, so it did nothing.

    The exchange accepts the command (reply ``submitted: true``) and then pushes a ``CANCEL`` or
    ``AMEND`` failure notice (code ``100004``) on the order channel; or a REST lookup showed the
    order closed before the request could act on it.

    Attributes:
        order_id: the order the request named.
        close_reason: the last close status known for the order (``FILLED``,
            ``CANCELED_BY_USER`` when cancelled twice, ``CANCELED_BY_AMEND`` when a modify
            replaced it, ...), ``None`` when the close was not seen.
    """

    def __init__(
        self,
        order_id: int,
        close_reason: OrderStatus | None,
        message: str | None = None,
        *,
        code: str | None = "100004",
    ) -> None:
        reason = f" ({close_reason})" if close_reason is not None else ""
        text = message or f"order {order_id} was already closed{reason}"
        super().__init__(code, text)
        self.order_id = order_id
        self.close_reason = close_reason


class MarketUnavailableError(ExchangeError):
    """The market is closed, inactive or in an auction window."""


class ServerError(ExchangeError):
    """The exchange failed internally or timed out."""


#: The exchange's documented error codes: code -> (default message, exception class).
ERROR_CODES: Final[dict[str, tuple[str, type[ExchangeError]]]] = {
    "05001": ("Your operation authority is invalid", PermissionDenied),
    "20000": ("Signature is invalid", AuthenticationError),
    "20001": ("Operation failed, please contact system administrator", ServerError),
    "20002": (
        "Unexpected error, please check if your request data complies with the specification.",
        InvalidRequestError,
    ),
    "20003": ("Unrecognized operation", InvalidRequestError),
    "20005": ("Already logged in", AuthenticationError),
    "20006": ("Quantity must be greater than zero", InvalidOrderError),
    "20007": ("You are accessing server too rapidly", RateLimitError),
    "20008": ("clientOrderId must be greater than zero if provided", InvalidOrderError),
    "20009": ("JSON data format is invalid", InvalidRequestError),
    "20010": ("Either clientOrderId or orderId is required", InvalidOrderError),
    "20011": ("marketCode is required", InvalidOrderError),
    "20012": ("side is required", InvalidOrderError),
    "20013": ("orderType is required", InvalidOrderError),
    "20014": ("clientOrderId is not long type", InvalidOrderError),
    "20015": ("marketCode is invalid", InvalidOrderError),
    "20016": ("side is invalid", InvalidOrderError),
    "20017": ("orderType is invalid", InvalidOrderError),
    "20018": ("timeInForce is invalid", InvalidOrderError),
    "20019": ("orderId is invalid", InvalidOrderError),
    "20020": ("stopPrice or limitPrice is invalid", InvalidOrderError),
    "20021": ("price is invalid", InvalidOrderError),
    "20022": ("price is required for LIMIT order", InvalidOrderError),
    "20023": ("timestamp is required", AuthenticationError),
    "20024": ("timestamp exceeds the threshold", AuthenticationError),
    "20025": ("API key is invalid", AuthenticationError),
    "20026": ("Token is invalid or expired", AuthenticationError),
    "20027": ("The length of the message exceeds the maximum length", InvalidRequestError),
    "20028": ("price or stopPrice or limitPrice must be greater than zero", InvalidOrderError),
    "20029": ("stopPrice must be less than limitPrice for Buy Stop Order", InvalidOrderError),
    "20030": ("limitPrice must be less than stopPrice for Sell Stop Order", InvalidOrderError),
    "20031": ("The marketCode is closed for trading temporarily", MarketUnavailableError),
    "20032": ("Failed to submit due to timeout in server side", ServerError),
    "20033": ("triggerType is invalid", InvalidOrderError),
    "20034": ("The size of tag must be less than 32", InvalidRequestError),
    "300011": (
        "Repo market orders are not allowed during the auction window",
        MarketUnavailableError,
    ),
    "300012": (
        "Repo bids above 0 and offers below 0 are not allowed during the auction window",
        MarketUnavailableError,
    ),
    # The REST documents' own codes for per-order failures.
    "40032": ("Invalid request data", InvalidRequestError),
    "40035": ("Open order not found with id", OrderNotFoundError),
    "100005": ("Open order not found with id", OrderNotFoundError),
    "100006": ("Open order does not match to the given account", OrderNotFoundError),
    "200050": ("The market is not active", MarketUnavailableError),
    "710002": ("FAILED sanity bound check as price < lower bound", PriceBoundError),
    "710003": ("FAILED sanity bound check as price > upper bound", PriceBoundError),
    "710004": ("FAILED net position check as position > threshold", InsufficientFundsError),
    "710005": ("FAILED margin check as collateral < var", InsufficientFundsError),
    "710006": ("FAILED balance check as balance < value", InsufficientFundsError),
}


def exchange_error(
    code: str | int | None,
    message: str | None = None,
    *,
    http_status: int | None = None,
    default: type[ExchangeError] = ExchangeError,
) -> ExchangeError:
    """Build the exception for an exchange error reply.

    Args:
        code: the reply's ``code``; ints are accepted (``5001`` means ``"05001"``).
        message: the reply's ``message``; the table's text when missing.
        http_status: the HTTP status of a REST reply.
        default: the class for codes missing from :data:`ERROR_CODES`.
    """
    key = None if code is None else str(code).strip()
    if key is not None and key not in ERROR_CODES and key.isdigit():
        key = key.zfill(5)
    known = ERROR_CODES.get(key) if key is not None else None
    cls = known[1] if known else default
    text = message or (known[0] if known else "exchange error")
    return cls(key, text, http_status=http_status)
