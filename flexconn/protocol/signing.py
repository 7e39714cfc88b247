"""The exchange's signatures as pure functions: ``Base64(HmacSHA256(key=api_secret, message))``.

The WebSocket login signs ``<ms timestamp> + "GET/auth/self/verify"``; the REST message and how
credentials, nonces and timestamps are managed live in :mod:`flexconn.auth`, which builds on this.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

__all__ = ["WS_LOGIN_SUFFIX", "hmac_sha256_b64", "ws_login_signature"]

#: What the WebSocket login signs after the millisecond timestamp.
WS_LOGIN_SUFFIX: Final = "GET/auth/self/verify"


def hmac_sha256_b64(secret: str, message: str) -> str:
    """Base64 of HMAC-SHA256 over ``message`` keyed with ``secret`` (both UTF-8)."""
    digest = hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def ws_login_signature(api_secret: str, timestamp_ms: int | str) -> str:
    """The login ``signature``: Base64 of HMAC-SHA256 over ``timestamp + WS_LOGIN_SUFFIX``."""
    return hmac_sha256_b64(api_secret, f"{timestamp_ms}{WS_LOGIN_SUFFIX}")
