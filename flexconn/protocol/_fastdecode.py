"""Typed decoding of the commonest frames straight from the text with msgspec (the hot path).

For a table whose item models qualify, this module derives from the attrs models themselves
(so the two can never drift apart) a private msgspec ``Struct`` per model, with the same wire
names, types and defaults, tagged by the model's constant (``notice`` for order notices), and a
compiled function that moves a decoded Struct into the public frozen attrs model by setting its
slots directly. msgspec parses the frame into those Structs in C, Decimals and enums included;
only the move into the attrs instances runs in Python.

The fast path is *exact*: it accepts a frame only when the result is the one the general path
(orjson + :mod:`flexconn._structgen`) would give; anything else raises, and the caller
falls back to the general path, which decodes it or explains what is wrong with it. So msgspec
runs in strict mode (no lax coercions such as ``"1e3"`` or ``3.0`` for an int, ``"1"`` for a
bool): an int field is declared ``int | str`` and a digit string goes through ``int()`` as the
codec reads it; a bool field ``bool | str`` with the ``"True"``/``"False"`` spellings looked up;
an enum field accepts its exact wire values only (other spellings fall back); a Decimal must be
finite. Other spellings of a field name (``clientOrderID``) are declared too, and the primary name
wins when both are there, as in the codec. Unknown fields are ignored, as everywhere.

One difference, in the fast path's favour: a money field sent as a JSON *number* keeps every digit
of its text (msgspec reads numbers into Decimal exactly), where the general path reads it through
a float's shortest repr; the two are equal for up to 15 significant digits, which is all the
exchange sends (and it sends money as strings anyway).
"""

from __future__ import annotations

import linecache
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from typing import Any, Final, Union

import attrs
import msgspec

from flexconn._codec import wire_aliases, wire_name
from flexconn._structgen import _BOOL_TEXT, _direct_setters, _is_optional

__all__ = ["FastTable", "fast_table"]

_UNSET: Final = msgspec.UNSET


def _not_finite(value: Decimal) -> Decimal:
    raise ValueError(f"not a finite number: {value}")


def _wire_type(tp: Any) -> tuple[Any, str] | None:
    """The msgspec type to declare for an attrs field type, and the conversion kind."""
    optional, inner = _is_optional(tp)
    declared: Any
    if inner is int:
        declared, kind = int | str, "int"
    elif inner is bool:
        declared, kind = bool | str, "bool"
    elif inner is str:
        declared, kind = str, "plain"
    elif inner is Decimal:
        declared, kind = Decimal, "decimal"
    elif isinstance(inner, type) and issubclass(inner, Enum):
        declared, kind = inner, "plain"
    else:
        return None
    if optional:
        declared = Union[declared, None]  # noqa: UP007 - built from runtime types
    return declared, kind


def _convert_expression(kind: str) -> str:
    if kind == "int":
        return "v if _type(v) is _int else _int(v)"
    if kind == "bool":
        return "v if _type(v) is _bool else _bool_text[v]"
    if kind == "decimal":
        return "v if v.is_finite() else _not_finite(v)"
    return "v"


class FastTable:
    """The fast decoder of one table: ``decode(frame)`` returns the update or raises."""

    def __init__(
        self,
        update_cls: type[Any],
        struct_type: Any,
        converters: dict[type[Any], Callable[[Any], Any]],
    ) -> None:
        self._decoder = msgspec.json.Decoder(struct_type)
        self._converters = converters
        self._new = object.__new__
        self._update_cls = update_cls
        self._set_data: Callable[[Any, Any], None] = update_cls.data.__set__
        self._set_table: Callable[[Any, Any], None] = update_cls.table.__set__
        self._table = attrs.fields(update_cls).table.default

    def decode(self, frame: str | bytes) -> Any:
        """The update for ``frame``; raises (anything) when the general path must decide."""
        data = self._decoder.decode(frame).data
        converters = self._converters
        update = self._new(self._update_cls)
        if len(data) == 1:
            item = data[0]
            self._set_data(update, (converters[type(item)](item),))
        else:
            self._set_data(update, tuple([converters[type(item)](item) for item in data]))
        self._set_table(update, self._table)
        return update


def _struct_and_converter(
    cls: type[Any], tag_field: str
) -> tuple[type[Any], Callable[[Any], Any]] | None:
    """A tagged Struct mirroring attrs class ``cls`` and its Struct -> ``cls`` function."""
    attrs.resolve_types(cls)
    setters = _direct_setters(cls)
    if setters is None:
        return None
    struct_fields: list[tuple[str, Any, Any]] = []
    renames: dict[str, str] = {}
    env: dict[str, Any] = {
        "_cls": cls,
        "_new": object.__new__,
        "_astuple": msgspec.structs.astuple,
        "_UNSET": _UNSET,
        "_type": type,
        "_int": int,
        "_bool": bool,
        "_bool_text": _BOOL_TEXT,
        "_not_finite": _not_finite,
    }
    body: list[str] = []
    tag: Any = None
    for index, field in enumerate(attrs.fields(cls)):
        env[f"_s{index}"] = setters[index]
        if not field.init:
            if field.name == tag_field:
                tag = field.default
            env[f"_d{index}"] = field.default
            body.append(f"    _s{index}(o, _d{index})")
            continue
        if field.metadata.get("flexconn.structure") is not None:
            return None  # a field with its own hook: the general path only
        found = _wire_type(field.type)
        if found is None:
            return None
        declared, kind = found
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            return None
        required = default is attrs.NOTHING
        names = (wire_name(field), *wire_aliases(field))
        attributes = [field.name] + [f"{field.name}__{n}" for n in range(1, len(names))]
        for attribute, name in zip(attributes, names, strict=True):
            if len(names) == 1:
                struct_default = msgspec.NODEFAULT if required else default
            else:
                struct_default = _UNSET
            struct_fields.append((attribute, declared, struct_default))
            renames[attribute] = name
        body.append(f"    v = {field.name}")
        for alias_attribute in attributes[1:]:
            body.append("    if v is _UNSET:")
            body.append(f"        v = {alias_attribute}")
        if len(names) > 1:
            env[f"_d{index}"] = default
            body.append("    if v is _UNSET:")
            if required:
                body.append(f"        raise KeyError({names[0]!r})")
            else:
                body.append(f"        v = _d{index}")
        expression = _convert_expression(kind)
        optional = _is_optional(field.type)[0] or default is None
        if expression != "v" and optional:
            expression = f"None if v is None else {expression}"
        body.append(f"    _s{index}(o, {expression})")
    if tag is None:
        return None
    # Required fields first (msgspec wants no required field after an optional one); the
    # converter unpacks the Struct's fields in this order in one call.
    struct_fields.sort(key=lambda f: f[2] is not msgspec.NODEFAULT)
    unpack = ", ".join(name for name, _, _ in struct_fields)
    lines = ["def convert(m):", f"    ({unpack},) = _astuple(m)", "    o = _new(_cls)", *body]
    lines.append("    return o")
    source = "\n".join(lines) + "\n"
    filename = f"<flexconn fast convert {cls.__module__}.{cls.__qualname__}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), env)
    struct = msgspec.defstruct(
        f"_Wire{cls.__name__}",
        [
            (name, tp) if default is msgspec.NODEFAULT else (name, tp, default)
            for name, tp, default in struct_fields
        ],
        tag_field=tag_field,
        tag=tag,
        rename=renames,
        kw_only=True,
    )
    convert: Callable[[Any], Any] = env["convert"]
    return struct, convert


def fast_table(
    update_cls: type[Any], item_classes: tuple[type[Any], ...], tag_field: str
) -> FastTable | None:
    """The fast decoder of ``{"table": ..., "data": [items]}`` frames for ``update_cls``,
    whose items are ``item_classes`` told apart by ``tag_field``; ``None`` when a model does
    not qualify (validators, converters, init hooks, nested models, own field hooks)."""
    converters: dict[type[Any], Callable[[Any], Any]] = {}
    for cls in item_classes:
        built = _struct_and_converter(cls, tag_field)
        if built is None:
            return None
        struct, convert = built
        converters[struct] = convert
    members = tuple(converters)
    item_type: Any = members[0] if len(members) == 1 else Union[members]  # noqa: UP007
    frame_type = msgspec.defstruct(
        f"_Wire{update_cls.__name__}", [("table", str), ("data", list.__class_getitem__(item_type))]
    )
    return FastTable(update_cls, frame_type, converters)
