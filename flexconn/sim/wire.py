"""Outbound WebSocket frames encoded once and shared by every connection that sends them.

A server frame is never masked and the simulator negotiates no extensions, so the bytes of a
frame are the same on every connection: a :class:`Frame` builds them once, on first use, and each
subscriber writes that same ``bytes`` object. This is what lets one depth snapshot go to a
thousand sockets for the cost of one JSON encoding and one header.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["OP_BINARY", "OP_TEXT", "Frame", "frame_header"]

OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2

_FIN: Final = 0x80


def frame_header(opcode: int, length: int) -> bytes:
    """The header of an unmasked, final (FIN) server frame carrying ``length`` payload bytes."""
    first = _FIN | opcode
    if length < 126:
        return bytes((first, length))
    if length < 0x10000:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


class Frame:
    """One outbound data frame: JSON (or raw) payload bytes and their wire encoding.

    Attributes:
        payload: the message bytes (UTF-8 JSON for text frames).
        push: True for pushed channel data, which keeps a connection alive under the idle rule;
            False for command replies.
        conflate_key: frames with the same key are full snapshots of one channel, so a queued,
            unsent one may be replaced by a newer one (see the WebSocket server's slow-client
            policy); ``None`` for frames that must all be delivered.
    """

    __slots__ = ("_wire", "conflate_key", "opcode", "payload", "push")

    def __init__(
        self,
        payload: bytes,
        *,
        push: bool = True,
        conflate_key: str | None = None,
        opcode: int = OP_TEXT,
    ) -> None:
        self.payload = payload
        self.push = push
        self.conflate_key = conflate_key
        self.opcode = opcode
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        """Header and payload, built on first use and then shared."""
        wire = self._wire
        if wire is None:
            wire = self._wire = frame_header(self.opcode, len(self.payload)) + self.payload
        return wire

    def __repr__(self) -> str:
        return f"Frame({self.payload[:60]!r}{'...' if len(self.payload) > 60 else ''})"
