"""The server's side of the signatures: checking a WebSocket login and a signed REST request.

The client signs (:mod:`flexconn.auth`); only the simulator verifies, so the verifiers live here.
Both compare in constant time.
"""

from __future__ import annotations

import hmac

from flexconn.auth import rest_signature, ws_login_signature

__all__ = ["verify_rest_signature", "verify_ws_login"]


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def verify_ws_login(api_secret: str, timestamp: str, signature: str) -> bool:
    """Whether ``signature`` is the login signature of ``timestamp`` (constant-time compare)."""
    return _same(ws_login_signature(api_secret, timestamp), signature)


def verify_rest_signature(
    api_secret: str,
    signature: str,
    *,
    timestamp: str,
    nonce: str,
    verb: str,
    host: str,
    path: str,
    body: str = "",
) -> bool:
    """Whether ``signature`` signs this request (constant-time compare)."""
    expected = rest_signature(
        api_secret, timestamp=timestamp, nonce=nonce, verb=verb, host=host, path=path, body=body
    )
    return _same(expected, signature)
