"""The sans-IO protocol core: the wire codec, request encoding and frame decoding.

Nothing here awaits or does I/O: text in, typed messages out; typed requests in, text out. The
reverse directions (reading requests, writing messages) are the server's:
:mod:`flexconn.sim.server_codec`.

Layers: this package imports the models (:mod:`flexconn.models`) and the converter below them
(:mod:`flexconn._codec`, public here as :mod:`flexconn.protocol.codec`), and nothing above it: no
trio, no connection, no channels or credentials (``tests/test_layers.py`` enforces it).
"""

from flexconn.protocol import codec
from flexconn.protocol.decode import PONG_FRAME, ChannelMessage, Message, decode
from flexconn.protocol.encode import (
    MAX_BATCH_SIZE,
    MAX_CLIENT_ORDER_ID,
    MAX_MESSAGE_LENGTH,
    MAX_TAG_LENGTH,
    PING_FRAME,
    encode,
    message_length,
    validate,
    validate_order,
)

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_CLIENT_ORDER_ID",
    "MAX_MESSAGE_LENGTH",
    "MAX_TAG_LENGTH",
    "PING_FRAME",
    "PONG_FRAME",
    "ChannelMessage",
    "Message",
    "codec",
    "decode",
    "encode",
    "message_length",
    "validate",
    "validate_order",
]
