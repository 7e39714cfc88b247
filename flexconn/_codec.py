"""The one cattrs converter for the CoinFLEX wire format, used with orjson.

Every model in :mod:`flexconn.models` (WebSocket and REST) goes through :data:`converter`; build
no other. Encoding decisions, cattrs-preconf style:

* **Field names.** attrs fields are snake_case; the wire name is their camelCase form
  (``client_order_id`` <-> ``clientOrderId``). A field whose wire name does not follow the rule
  declares it with ``attrs.field(metadata=wire("instrumentId"))``; :func:`wire_name` reads
  either. ``wire(aliases=("orderID",))`` adds spellings accepted when structuring (the primary
  name wins when both are present); unstructuring always writes the primary name.
* **Decimal** (prices, quantities, fees, balances) structures from ``str``, ``int``, ``float``
  (or a ``Decimal`` from a parser that makes them); a float goes through its shortest ``repr``
  string, never through its binary value, so ``0.1`` is ``Decimal("0.1")``. Non-finite values
  and booleans are refused. Unstructuring writes an exact JSON number in positional notation
  (``orjson.Fragment(format(d, "f"))``), so requests carry numbers, never strings, and never
  lose digits. Unstructured dicts therefore hold orjson
  fragments: serialise them with :func:`dumps` (or ``orjson.dumps``), not the stdlib ``json``.
  Classes marked with :func:`decimals_as_strings` (what the exchange sends: replies, notices,
  channel items) write their Decimals as strings instead, as the exchange does.
* **int** (ids, timestamps, counts) structures from an int or a decimal integer string
  (``"1612249737434"``, read by ``int()``); booleans, floats and anything else are refused.
* **bool** structures from a JSON boolean or the strings ``"true"``/``"false"`` in any case
  (``isTriggered`` arrives as ``"False"``).
* **str** structures from a str or an int (``tag`` and codes arrive both ways); an int becomes its
  decimal string.
* **Enums** structure from their wire string; an unknown spelling is retried case-insensitively
  with spaces read as underscores (``"buy"`` is ``Side.BUY``), then through the enum's own
  ``_missing_`` (``OrderType("STOP_LIMIT")``). They unstructure to their wire string.
* **Parsing** is orjson: a fractional JSON number becomes a float first, and its shortest repr
  reproduces the wire text exactly for up to 15 significant digits (all the exchange sends).
* ``str | int`` unions (a request ``tag``, optional or not) pass a str or an int through unchanged.
* **Constants.** A field declared ``init=False`` with a default (a reply's ``event``, an update's
  ``table``) is written when unstructuring and ignored when structuring, so the unstructured
  form of a message is its complete wire form.
* **Per-field hooks.** ``wire(structure=fn, unstructure=fn)`` gives one field its own hooks
  (``fn(value, type)`` / ``fn(value)``), for shapes like "a string or a list of strings".
* **Missing fields** take the attrs default; a missing field without a default is an error.
  Unknown keys are ignored (the exchange adds fields over time).
* **None** is never written: an optional field (one whose default is ``None``) that holds
  ``None`` is omitted when unstructuring.
* **Timestamps** stay the exchange's millisecond epoch ints; :func:`ms_to_datetime` makes an
  aware UTC datetime when one is wanted.
* **Compact decimal text.** :func:`plain_decimal` writes a Decimal the way the exchange shows it
  in checksums and its own frames: positional, without trailing zeros (``9600.50`` -> ``9600.5``).

This module is the bottom layer: it imports nothing from flexconn but :mod:`flexconn._structgen`.
The models build on it, and :mod:`flexconn.protocol.codec` is its public name.

Structuring attrs classes uses functions generated per class by
:mod:`flexconn._structgen` (same results as cattrs' generator, several times faster);
generic attrs classes use cattrs' own. Structure errors are ValueError/TypeError/KeyError (with a
note naming the attribute) or cattrs exceptions; the decoding boundary
(:mod:`flexconn.protocol.decode`) is the one place that turns them into
:class:`~flexconn.errors.RemoteProtocolError`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum, IntEnum, StrEnum
from types import UnionType
from typing import Any, Final, TypeVar, Union, get_args, get_origin

import attrs
import orjson
from cattrs import Converter
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from flexconn._structgen import make_structure_fn

__all__ = [
    "WIRE_ALIASES",
    "WIRE_NAME",
    "camel",
    "configure_converter",
    "converter",
    "decimals_as_strings",
    "describe_error",
    "dumps",
    "dumps_bytes",
    "loads",
    "make_converter",
    "ms_to_datetime",
    "plain_decimal",
    "structure",
    "structure_bool",
    "structure_decimal",
    "structure_int",
    "structure_str",
    "unstructure",
    "wire",
    "wire_aliases",
    "wire_name",
]

T = TypeVar("T")

#: attrs metadata key holding a field's wire name when camelCase of the attribute is wrong.
WIRE_NAME: Final = "flexconn.wire_name"
#: attrs metadata key holding other spellings of the field accepted when structuring.
WIRE_ALIASES: Final = "flexconn.wire_aliases"
_STRUCTURE: Final = "flexconn.structure"
_UNSTRUCTURE: Final = "flexconn.unstructure"
_DECIMAL_STRINGS: Final = "__flexconn_decimal_strings__"


def wire(
    name: str | None = None,
    *,
    aliases: tuple[str, ...] = (),
    structure: Callable[[Any, Any], Any] | None = None,
    unstructure: Callable[[Any], Any] | None = None,
) -> dict[str, object]:
    """attrs field metadata: the field's wire name, other accepted spellings, own hooks.

    ``field(metadata=wire("instrumentId"))`` renames; ``field(metadata=wire(aliases=("orderID",)))``
    keeps the camelCase name and also accepts ``orderID`` on input.
    """
    meta: dict[str, object] = {}
    if name is not None:
        meta[WIRE_NAME] = name
    if aliases:
        meta[WIRE_ALIASES] = tuple(aliases)
    if structure is not None:
        meta[_STRUCTURE] = structure
    if unstructure is not None:
        meta[_UNSTRUCTURE] = unstructure
    return meta


def wire_aliases(field: attrs.Attribute[Any]) -> tuple[str, ...]:
    """The extra spellings of a field accepted when structuring (may be empty)."""
    found = field.metadata.get(WIRE_ALIASES, ())
    return tuple(found) if isinstance(found, tuple) else ()


def camel(name: str) -> str:
    """The camelCase form of a snake_case attribute name (``market_code`` -> ``marketCode``)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def wire_name(field: attrs.Attribute[Any]) -> str:
    """The name a field has on the wire: its metadata override, else the camelCase form."""
    override_name = field.metadata.get(WIRE_NAME)
    return override_name if isinstance(override_name, str) else camel(field.name)


def decimals_as_strings(cls: type[T]) -> type[T]:
    """Class decorator: unstructure this class's Decimal fields as JSON strings, not numbers.

    For models the exchange sends (it writes ``"price": "9431.48"``); requests keep numbers.
    """
    setattr(cls, _DECIMAL_STRINGS, True)
    return cls


def ms_to_datetime(ms: int) -> datetime:
    """An aware UTC datetime from the exchange's millisecond epoch timestamp."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def plain_decimal(value: Decimal) -> str:
    """A decimal in positional notation without trailing zeros: ``9600.50`` -> ``"9600.5"``."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def structure_decimal(value: object, _: object = Decimal) -> Decimal:
    """A finite Decimal from a wire str, int or float (floats via their shortest repr)."""
    if isinstance(value, str):
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"not a decimal number: {value!r}") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, Decimal):
        result = value
    else:
        raise TypeError(f"expected a decimal number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


def structure_int(value: object, _: object = int) -> int:
    """An int from a wire int or a decimal integer string (ids and timestamps arrive both ways)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return int(value)  # ValueError unless a decimal integer, as the generated path reads it
    raise TypeError(f"expected an integer, got {value!r}")


def structure_bool(value: object, _: object = bool) -> bool:
    """A bool from a JSON boolean or a ``"true"``/``"false"`` string in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        folded = value.strip().casefold()
        if folded == "true":
            return True
        if folded == "false":
            return False
    raise TypeError(f"expected a boolean, got {value!r}")


def structure_str(value: object, _: object = str) -> str:
    """A str from a wire str or int (``tag`` and error codes arrive both ways)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _structure_str_or_int(value: object, tp: object) -> str | int | None:
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if value is None and type(None) in get_args(tp):
        return None
    raise TypeError(f"expected a string or an integer, got {type(value).__name__}")


def _unstructure_decimal(value: Decimal) -> orjson.Fragment:
    if not value.is_finite():
        raise ValueError(f"cannot encode non-finite number {value}")
    return orjson.Fragment(format(value, "f"))


def _fold(text: str) -> str:
    return text.strip().casefold().replace(" ", "_")


class _EnumTable:
    """Per-enum lookup tables: exact wire values first, then a case-insensitive retry."""

    def __init__(self) -> None:
        self._tables: dict[type[Enum], tuple[dict[object, Enum], dict[str, Enum]]] = {}

    def __call__(self, value: object, cls: type[Enum]) -> Enum:
        tables = self._tables.get(cls)
        if tables is None:
            tables = self._tables[cls] = (
                {member.value: member for member in cls},
                {_fold(m.value): m for m in cls if isinstance(m.value, str)},
            )
        exact, folded = tables
        try:
            return exact[value]
        except (KeyError, TypeError):
            pass
        if isinstance(value, str):
            member = folded.get(_fold(value))
            if member is not None:
                return member
            return cls(value)  # the enum's _missing_ may know an alias; ValueError if not
        raise ValueError(f"{value!r} is not a valid {cls.__name__}")


def _attrs_structure_factory(cls: type[Any], conv: Converter) -> Callable[[Any, Any], Any]:
    if getattr(cls, "__parameters__", ()) or get_origin(cls) is not None:
        return _generic_structure_fn(cls, conv)
    return make_structure_fn(
        cls,
        conv,
        wire_name=wire_name,
        wire_aliases=wire_aliases,
        field_hook=lambda f: f.metadata.get(_STRUCTURE),
    )


def _generic_structure_fn(cls: type[Any], conv: Converter) -> Callable[[Any, Any], Any]:
    # Generic attrs classes (type variables to bind) go through cattrs' own generator.
    fields = attrs.fields(get_origin(cls) or cls)
    overrides: dict[str, Any] = {
        f.name: override(rename=wire_name(f), struct_hook=f.metadata.get(_STRUCTURE))
        for f in fields
    }
    structure_fn = make_dict_structure_fn(cls, conv, **overrides)
    aliases = [(wire_name(f), alias) for f in fields for alias in wire_aliases(f)]
    if not aliases:
        return structure_fn

    def structure_with_aliases(data: Any, tp: Any) -> Any:
        if isinstance(data, dict) and any(alias in data for _, alias in aliases):
            data = dict(data)
            for primary, alias in aliases:
                if alias in data:
                    value = data.pop(alias)
                    data.setdefault(primary, value)
        return structure_fn(data, tp)

    return structure_with_aliases


def _decimal_string(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _unstructure_hook_of(cls: type[Any], field: attrs.Attribute[Any]) -> Any:
    own = field.metadata.get(_UNSTRUCTURE)
    if own is not None:
        return own
    if getattr(cls, _DECIMAL_STRINGS, False) and field.type in (Decimal, Decimal | None):
        return _decimal_string
    return None


def _attrs_unstructure_factory(cls: type[Any], conv: Converter) -> Callable[[Any], Any]:
    attrs.resolve_types(cls)
    overrides: dict[str, Any] = {
        f.name: override(
            rename=wire_name(f),
            omit_if_default=f.default is None,
            unstruct_hook=_unstructure_hook_of(cls, f),
        )
        for f in attrs.fields(cls)
    }
    return make_dict_unstructure_fn(cls, conv, _cattrs_include_init_false=True, **overrides)


def _is_str_int_union(tp: object) -> bool:
    args = set(get_args(tp))
    return get_origin(tp) in (UnionType, Union) and {str, int} <= args <= {str, int, type(None)}


def configure_converter(conv: Converter) -> None:
    """Install the wire-format hooks described in the module docstring on ``conv``."""
    conv.register_structure_hook(Decimal, structure_decimal)
    conv.register_unstructure_hook(Decimal, _unstructure_decimal)
    conv.register_structure_hook(int, structure_int)
    conv.register_structure_hook(str, structure_str)
    conv.register_structure_hook(bool, structure_bool)
    conv.register_structure_hook_func(_is_str_int_union, _structure_str_or_int)
    # Primitive hooks live in singledispatch, which would send a StrEnum to the ``str`` hook;
    # hooking the enum bases there too wins, as they precede str/int in an enum's MRO.
    enum_table = _EnumTable()
    for base in (Enum, StrEnum, IntEnum):
        conv.register_structure_hook(base, enum_table)
        conv.register_unstructure_hook(base, lambda member: member.value)
    conv.register_structure_hook_factory(attrs.has, _attrs_structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, _attrs_unstructure_factory)


def make_converter() -> Converter:
    """A fresh converter with the wire-format hooks (for tests; the library uses ``converter``)."""
    conv = Converter(forbid_extra_keys=False)
    configure_converter(conv)
    return conv


#: The one converter for the wire format.
converter: Final[Converter] = make_converter()


def structure(data: Any, cls: type[T]) -> T:
    """Structure already-parsed JSON data into ``cls`` with :data:`converter`."""
    return converter.structure(data, cls)


def unstructure(obj: object) -> Any:
    """Unstructure ``obj`` to JSON-ready data (Decimals become orjson fragments)."""
    return converter.unstructure(obj)


def dumps_bytes(obj: object) -> bytes:
    """Encode a model (or plain data) as compact JSON bytes."""
    return orjson.dumps(converter.unstructure(obj))


def dumps(obj: object) -> str:
    """Encode a model (or plain data) as a compact JSON text frame."""
    return orjson.dumps(converter.unstructure(obj)).decode()


def describe_error(exc: BaseException) -> str:
    """A one-line account of a structuring error, naming the failing attribute when known."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe_error(inner) for inner in exc.exceptions)
    notes = getattr(exc, "__notes__", None)
    where = f" ({notes[-1]})" if notes else ""
    return f"{type(exc).__name__}: {exc}{where}"


def loads(data: str | bytes | bytearray | memoryview) -> Any:
    """Parse JSON text with orjson (fractional numbers become floats; see the module notes)."""
    return orjson.loads(data)
