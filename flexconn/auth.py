"""API credentials, the WebSocket login signature and REST request signing.

Both signatures are ``Base64(HmacSHA256(key=api_secret, message))``; they differ in the message.

WebSocket login (``op: login``): the message is ``<ms timestamp> + "GET/auth/self/verify"``.

REST: the message is six components joined by ``"\\n"``::

    Timestamp  "YYYY-MM-DDThh:mm:ss" in UTC (the header ``Timestamp`` carries the same string)
    Nonce      the header ``Nonce``; flexconn sends a strictly increasing integer
    Verb       the HTTP method in upper case
    Host       the host the request goes to, without scheme: exactly the ``Host`` header
               (``v2stgapi.coinflex.com``; ``127.0.0.1:8080`` when a port is not the default)
    Path       the URL path without the query string (``/v2/positions``)
    Body       what the request carries, read as follows (the documents show a GET signing its
               urlencoded parameters and POST/DELETE signing the JSON text they send):
               a request with a body (POST, DELETE) signs the body text exactly as sent;
               a request without one (GET) signs the query string exactly as sent, without ``?``;
               when there is neither, Body is the empty string (so the message ends in ``"\\n"``).

Signing the exact bytes on the wire (rather than re-encoding parameters) is what lets the server
verify without knowing how the client ordered or quoted them. The HMAC and the login signature
are the protocol's (:mod:`flexconn.protocol.signing`); the simulator's verifiers are in
:mod:`flexconn.sim.signatures`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import attrs

from flexconn.protocol.signing import WS_LOGIN_SUFFIX, ws_login_signature
from flexconn.protocol.signing import hmac_sha256_b64 as _hmac_b64

__all__ = [
    "WS_LOGIN_SUFFIX",
    "Credentials",
    "NonceGenerator",
    "RestSigner",
    "format_rest_timestamp",
    "parse_rest_timestamp",
    "rest_headers",
    "rest_message",
    "rest_signature",
    "ws_login_data",
    "ws_login_signature",
]

_REST_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"


def _nonempty(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    # The message names the field only: the value may be the secret.
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string")


@attrs.frozen
class Credentials:
    """An API key and its secret; the secret never appears in ``repr``, ``str`` or errors.

    Args:
        api_key: the public API key (sent as ``AccessKey`` / ``apiKey``).
        api_secret: the secret used as the HMAC key; never sent, never shown.
    """

    api_key: str = attrs.field(validator=_nonempty)
    api_secret: str = attrs.field(validator=_nonempty, repr=False)


# --- WebSocket login -------------------------------------------------------------------------


def ws_login_data(
    credentials: Credentials,
    *,
    timestamp_ms: int | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, str]:
    """The ``data`` object of a login request: ``apiKey``, ``timestamp`` and ``signature``.

    Args:
        credentials: the key pair to log in with.
        timestamp_ms: the millisecond timestamp to sign; ``clock()`` is used when omitted.
        clock: wall clock in epoch seconds, for tests.
    """
    ts = str(timestamp_ms if timestamp_ms is not None else int(clock() * 1000))
    return {
        "apiKey": credentials.api_key,
        "timestamp": ts,
        "signature": ws_login_signature(credentials.api_secret, ts),
    }


# --- REST ------------------------------------------------------------------------------------


def format_rest_timestamp(epoch_seconds: float) -> str:
    """Format a wall-clock time as the REST ``Timestamp``: ``YYYY-MM-DDThh:mm:ss`` in UTC."""
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).strftime(_REST_TIMESTAMP_FORMAT)


def parse_rest_timestamp(text: str) -> float:
    """Parse a REST ``Timestamp`` header (UTC) into epoch seconds.

    Accepts the documented ``YYYY-MM-DDThh:mm:ss`` and, because the exchange's own sample code
    sends ``isoformat()``, an optional fractional part.

    Raises:
        ValueError: the text is not such a timestamp.
    """
    head, dot, frac = text.partition(".")
    parsed = datetime.strptime(head, _REST_TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    seconds = parsed.timestamp()
    if dot:
        if not frac.isdigit() or len(frac) > 9:
            raise ValueError(f"bad fractional seconds in timestamp {text!r}")
        seconds += int(frac) / 10 ** len(frac)
    return seconds


def rest_message(
    *, timestamp: str, nonce: str | int, verb: str, host: str, path: str, body: str = ""
) -> str:
    """The REST message string ``Timestamp\\nNonce\\nVerb\\nHost\\nPath\\nBody``."""
    return f"{timestamp}\n{nonce}\n{verb.upper()}\n{host}\n{path}\n{body}"


def rest_signature(
    api_secret: str,
    *,
    timestamp: str,
    nonce: str | int,
    verb: str,
    host: str,
    path: str,
    body: str = "",
) -> str:
    """The REST ``Signature`` header for one request (see the module docstring for ``body``)."""
    message = rest_message(
        timestamp=timestamp, nonce=nonce, verb=verb, host=host, path=path, body=body
    )
    return _hmac_b64(api_secret, message)


def rest_headers(
    credentials: Credentials,
    *,
    timestamp: str,
    nonce: str | int,
    verb: str,
    host: str,
    path: str,
    body: str = "",
) -> dict[str, str]:
    """The five headers of a signed REST request."""
    return {
        "Content-Type": "application/json",
        "AccessKey": credentials.api_key,
        "Timestamp": timestamp,
        "Signature": rest_signature(
            credentials.api_secret,
            timestamp=timestamp,
            nonce=nonce,
            verb=verb,
            host=host,
            path=path,
            body=body,
        ),
        "Nonce": str(nonce),
    }


class NonceGenerator:
    """Strictly increasing REST nonces, seeded from the millisecond clock.

    Starting near the wall clock keeps nonces increasing across process restarts; within a
    process each nonce is one more than the last whenever the clock has not moved past it.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last = 0

    def __call__(self) -> int:
        """Return the next nonce."""
        self._last = max(self._last + 1, int(self._clock() * 1000))
        return self._last


class RestSigner:
    """Signs REST requests for one key: a timestamp from ``clock``, a nonce from ``nonces``.

    Args:
        credentials: the key pair.
        clock: wall clock in epoch seconds.
        nonces: the nonce source; a fresh :class:`NonceGenerator` by default.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        clock: Callable[[], float] = time.time,
        nonces: Callable[[], int] | None = None,
    ) -> None:
        self.credentials = credentials
        self._clock = clock
        self._nonces = nonces if nonces is not None else NonceGenerator(clock=clock)

    def __repr__(self) -> str:
        return f"RestSigner({self.credentials!r})"

    def headers(self, verb: str, host: str, path: str, body: str = "") -> dict[str, str]:
        """The signed headers for a request about to be sent.

        Args:
            verb: the HTTP method.
            host: the ``Host`` header value.
            path: the URL path without query.
            body: the body text when the request has one, else the query string without ``?``.
        """
        return rest_headers(
            self.credentials,
            timestamp=format_rest_timestamp(self._clock()),
            nonce=self._nonces(),
            verb=verb,
            host=host,
            path=path,
            body=body,
        )
