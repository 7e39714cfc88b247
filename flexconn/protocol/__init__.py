"""The sans-IO protocol core: the wire codec, request encoding and frame decoding.

Nothing here awaits or does I/O: text in, typed messages out; typed requests in, text out.

Import order: the models import :mod:`flexconn.protocol.codec` and the encoder and decoder import
the models, so :mod:`flexconn.models` imports this package before its own submodules; the
package then loads completely whichever of the two is imported first.
"""

from flexconn.protocol import codec
from flexconn.protocol.decode import PONG_FRAME, ChannelMessage, Message, decode, encode_message
from flexconn.protocol.encode import (
    MAX_BATCH_SIZE,
    MAX_CLIENT_ORDER_ID,
    MAX_MESSAGE_LENGTH,
    MAX_TAG_LENGTH,
    PING_FRAME,
    decode_request,
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
    "decode_request",
    "encode",
    "encode_message",
    "message_length",
    "validate",
    "validate_order",
]
