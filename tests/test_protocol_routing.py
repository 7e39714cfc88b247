"""The route table: one look-up per message type gives its reply keys or its subscription keys."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from flexconn.models import ChannelUpdate, Greeting, Pong, UnknownMessage
from flexconn.models.replies import ErrorReply, LoginReply, OrderReply
from flexconn.protocol import decode
from flexconn.protocol.routing import handlers_of, reply_keys, route

FRAMES = sorted((Path(__file__).parent / "frames").glob("*.json"))
MESSAGES = [
    decode(orjson.dumps(case["frame"]).decode())
    for path in FRAMES
    for case in orjson.loads(path.read_bytes())["cases"]
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_decoded_message_has_at_most_one_handler(message: object) -> None:
    handlers = handlers_of(type(message))
    assert handlers.reply is None or handlers.route is None
    assert bool(reply_keys(message)) == (handlers.reply is not None)
    assert (route(message) is not None) == (handlers.route is not None)
    if isinstance(message, ChannelUpdate):
        assert route(message) == message.split()
    if isinstance(message, LoginReply | ErrorReply | OrderReply | Pong):
        assert handlers.reply is not None


def test_connection_messages_have_no_handlers() -> None:
    for message in (Greeting(nonce="n"), UnknownMessage(raw="{}", payload={})):
        assert handlers_of(type(message)) == handlers_of(object)
        assert reply_keys(message) == () and route(message) is None


def test_a_subclass_resolves_along_its_mro_once() -> None:
    update_type = type(next(m for m in MESSAGES if isinstance(m, ChannelUpdate)))
    sub = type("Sub", (update_type,), {"__slots__": ()})
    assert handlers_of(sub) is handlers_of(update_type)
    assert handlers_of(sub) is handlers_of(sub)
