"""Every example message of the spec documents decodes to the right class with the right values.

The fixtures in ``tests/frames/*.json`` (one file per message kind) were written from the
documents' facts, slips included. Each case names the expected class and a set of attribute
paths (``data.0.price``) with their expected values; decimals are compared by value.
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import orjson
import pytest

import flexconn.errors
import flexconn.models
from flexconn.errors import RemoteProtocolError
from flexconn.protocol import decode
from flexconn.protocol.routing import reply_keys, route

FRAMES = Path(__file__).parent / "frames"
FILES = sorted(FRAMES.glob("*.json"))


def _cases() -> list[Any]:
    params = []
    for path in FILES:
        spec = orjson.loads(path.read_bytes())
        for case in spec["cases"]:
            params.append(pytest.param(spec["class"], case, id=f"{path.stem}: {case['name']}"))
    return params


def _malformed() -> list[Any]:
    params = []
    for path in FILES:
        for case in orjson.loads(path.read_bytes()).get("malformed", []):
            params.append(pytest.param(case["text"], id=f"{path.stem}: {case['name']}"))
    return params


def _resolve(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, Decimal):
        return isinstance(expected, str | int) and actual == Decimal(str(expected))
    if isinstance(actual, Enum):
        return bool(actual.value == expected)
    if isinstance(actual, tuple) and isinstance(expected, list):
        return len(actual) == len(expected) and all(map(_same, actual, expected))
    return type(actual) is type(expected) and bool(actual == expected)


def test_every_fixture_file_has_cases() -> None:
    assert len(FILES) >= 20
    for path in FILES:
        assert orjson.loads(path.read_bytes())["cases"], path.name


@pytest.mark.parametrize(("class_name", "case"), _cases())
def test_fixture_decodes(class_name: str, case: dict[str, Any]) -> None:
    text = orjson.dumps(case["frame"]).decode()
    message = decode(text)
    assert type(message) is getattr(flexconn.models, class_name)
    for path, expected in case["expect"].items():
        actual = _resolve(message, path)
        assert _same(actual, expected), f"{path}: {actual!r} != {expected!r}"
    if "item_class" in case:
        item_class = getattr(flexconn.models, case["item_class"])
        assert all(type(item) is item_class for item in message.data)  # type: ignore[union-attr]
    if "error" in case:
        error = message.error()  # type: ignore[union-attr]
        assert type(error) is getattr(flexconn.errors, case["error"])
    if "reply_keys" in case:
        assert [key for key, _ in reply_keys(message)] == case["reply_keys"]
    if "routes" in case:
        routed = route(message)
        assert routed is not None
        assert [key for key, _ in routed] == case["routes"]


@pytest.mark.parametrize(("class_name", "case"), _cases())
def test_fixture_decodes_the_same_from_bytes(class_name: str, case: dict[str, Any]) -> None:
    raw = orjson.dumps(case["frame"])
    assert decode(raw) == decode(raw.decode())


@pytest.mark.parametrize("text", _malformed())
def test_documented_slip_that_is_not_json_is_a_remote_protocol_error(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode(text)
    assert info.value.raw == text
