"""What both transports share: why a socket ended, and keeping secrets out of their logs.

* :class:`DisconnectReason` names why a socket ended. A transport that knows raises
  :class:`SocketClosed`, a :class:`~flexconn.errors.ConnectionClosed` carrying the reason and the
  close code; the connection reads it (and classifies the errors that are not closes itself).
* :func:`redact` blanks the signature (and most of the API key) of a ``login`` command in any
  text; :class:`RedactingLogger` applies it to every argument of every record a WebSocket library
  logs, before the record is formatted (websockets shows frames shortened in the middle, so
  redacting the formatted line would be too late).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from websockets.frames import Frame

from flexconn.errors import ConnectionClosed

__all__ = ["DisconnectReason", "RedactingLogger", "SocketClosed", "redact"]


class DisconnectReason(StrEnum):
    """Why a socket ended (or never opened); see ``ConnectionEvent.reason``."""

    #: Neither a pong nor any other frame arrived within the heartbeat's timeout (half-open).
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    #: The server closed the socket with a close frame (``close_code`` says which).
    CLOSED_BY_SERVER = "closed_by_server"
    #: The socket ended without a close frame: TCP reset or end of stream (code 1006).
    CONNECTION_LOST = "connection_lost"
    #: A network or TLS error on the open socket.
    TRANSPORT_ERROR = "transport_error"
    #: No socket was opened: refused, unreachable, timed out or the handshake was rejected.
    CONNECT_FAILED = "connect_failed"
    #: An inbound message was larger than ``max_frame_bytes``: flexconn closed with code 1009.
    FRAME_TOO_LARGE = "frame_too_large"
    #: The peer broke the WebSocket protocol (bad framing, invalid UTF-8...).
    PROTOCOL_ERROR = "protocol_error"
    #: The exchange did not answer the login or a subscription in time.
    REPLY_TIMEOUT = "reply_timeout"
    #: The exchange answered the session's own commands with an error that ends the socket.
    EXCHANGE_ERROR = "exchange_error"


class SocketClosed(ConnectionClosed):
    """A :class:`~flexconn.errors.ConnectionClosed` that knows why (raised by the transports).

    Attributes:
        disconnect: the typed reason.
        close_code: the WebSocket close code when a close frame was received (or, for
            ``FRAME_TOO_LARGE`` and protocol errors, sent by us); ``None`` otherwise.
    """

    def __init__(
        self, reason: str, *, disconnect: DisconnectReason, close_code: int | None = None
    ) -> None:
        super().__init__(reason)
        self.disconnect = disconnect
        self.close_code = close_code

    def again(self) -> SocketClosed:
        """A fresh copy, for raising again (re-raising one instance grows its traceback)."""
        return SocketClosed(self.reason, disconnect=self.disconnect, close_code=self.close_code)


_SIGNATURE: Final = re.compile(r'("signature"\s*:\s*")[^"]*(")')
_API_KEY: Final = re.compile(r'("apiKey"\s*:\s*")([^"]{0,4})[^"]*(")')
_REDACTED: Final = "<redacted>"


def redact(text: str) -> str:
    """``text`` with any ``"signature"`` value blanked and any ``"apiKey"`` cut to 4 characters."""
    if "signature" not in text and "apiKey" not in text:
        return text
    text = _SIGNATURE.sub(rf"\g<1>{_REDACTED}\g<2>", text)
    return _API_KEY.sub(r"\g<1>\g<2>…\g<3>", text)


def _redact_arg(arg: object) -> object:
    if isinstance(arg, str):
        return redact(arg)
    if isinstance(arg, bytes | bytearray):
        return redact(bytes(arg).decode("utf-8", "replace"))
    if isinstance(arg, Frame):
        data = bytes(arg.data)
        if b"signature" in data or b"apiKey" in data:
            text = redact(data.decode("utf-8", "replace"))
            return Frame(arg.opcode, text.encode(), arg.fin)
    return arg


class RedactingLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger that redacts login secrets from a record's message and arguments."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        if isinstance(msg, str):
            msg = redact(msg)
        if len(args) == 1 and isinstance(args[0], Mapping):
            args = ({key: _redact_arg(value) for key, value in args[0].items()},)
        else:
            args = tuple(_redact_arg(arg) for arg in args)
        self.logger.log(level, msg, *args, **kwargs)
