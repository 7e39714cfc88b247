"""Generated structure functions for attrs models: the codec's hot path.

cattrs' generated functions are general; decoding an order notice with them costs about ten times
``orjson.loads``. The wire format here needs only a few conversions, so for each attrs class this
module writes (and compiles once) a function that reads every field straight from the dict and
converts it inline: ``int``/``str``/``bool`` values that already have the right type pass through
after one ``type(v) is T`` test (``"True"``/``"False"`` strings are one lookup), decimal strings
go straight to ``Decimal`` through a bounded cache of the strings already seen (prices and
quantities repeat), enums are one dict lookup. Anything else (the other spellings the codec
accepts, nested models, tuples, per-field hooks) calls the converter's own hook, so the result is
exactly what the slow path would give.

Errors keep their original exception with a note naming the attribute (``@ attribute price``),
which :func:`flexconn._codec.describe_error` reports.
"""

from __future__ import annotations

import inspect
import linecache
import types
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

import attrs

if TYPE_CHECKING:
    from cattrs import Converter

__all__ = ["make_structure_fn"]

_MISSING = object()


def _is_optional(tp: Any) -> tuple[bool, Any]:
    if get_origin(tp) in (Union, types.UnionType):
        args = get_args(tp)
        if type(None) in args:
            rest = tuple(arg for arg in args if arg is not type(None))
            if len(rest) == 1:
                return True, rest[0]
            return True, Union[rest]  # noqa: UP007 - building a union from a runtime tuple
    return False, tp


#: Decimals already read from wire strings. The same prices, quantities and fees recur in
#: message after message; a dict lookup is several times cheaper than ``Decimal(text)``, and
#: a Decimal is immutable and exact whatever the context, so sharing one is sound. Bounded:
#: emptied when full.
_DECIMALS: dict[str, Decimal] = {}
_DECIMALS_MAX = 4096


def _decimal_text(value: str) -> Decimal:
    """A finite Decimal from a wire string, remembered for the next time."""
    result = Decimal(value)
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    if len(_DECIMALS) >= _DECIMALS_MAX:
        _DECIMALS.clear()
    _DECIMALS[value] = result
    return result


#: The boolean spellings the exchange sends as strings (``isTriggered: "False"``); any other
#: spelling takes the converter's own hook.
_BOOL_TEXT: dict[str, bool] = {"True": True, "False": False, "true": True, "false": False}


def _setter(cls: type[Any], name: str) -> Callable[[Any, Any], None] | None:
    descriptor = inspect.getattr_static(cls, name, None)
    if isinstance(descriptor, types.MemberDescriptorType):
        setter: Callable[[Any, Any], None] = descriptor.__set__
        return setter
    return None


def _direct_setters(cls: type[Any]) -> list[Callable[[Any, Any], None]] | None:
    """Slot setters for every field, when building without ``__init__`` is equivalent."""
    if hasattr(cls, "__attrs_post_init__") or hasattr(cls, "__attrs_pre_init__"):
        return None
    setters = []
    for field in attrs.fields(cls):
        default = field.default
        if (
            field.validator is not None
            or field.converter is not None
            or (isinstance(default, attrs.Factory) and default.takes_self)  # type: ignore[arg-type]
            or (not field.init and default is attrs.NOTHING)
        ):
            return None
        setter = _setter(cls, field.name)
        if setter is None:
            return None
        setters.append(setter)
    return setters


def make_structure_fn(
    cls: type[Any],
    conv: Converter,
    *,
    wire_name: Callable[[attrs.Attribute[Any]], str],
    wire_aliases: Callable[[attrs.Attribute[Any]], tuple[str, ...]],
    field_hook: Callable[[attrs.Attribute[Any]], Callable[[Any, Any], Any] | None],
) -> Callable[[Any, Any], Any]:
    """Compile the structure function of attrs class ``cls`` (see the module notes).

    A class without validators, converters or init hooks, whose fields are slots, is built by
    setting its slots directly (what its frozen ``__init__`` does, minus the call overhead);
    any other class is called with keyword arguments.
    """
    attrs.resolve_types(cls)
    setters = _direct_setters(cls)
    direct = setters is not None
    env: dict[str, Any] = {
        "_cls": cls,
        "_new": object.__new__,
        "_MISSING": _MISSING,
        "_decimal_get": _DECIMALS.get,
        "_decimal_text": _decimal_text,
        "_bool_text": _BOOL_TEXT,
        "_dict": dict,
        "_type": type,
        "_int": int,
        "_str": str,
        "_bool": bool,
    }
    lines = [
        "def structure(d, _):",
        "    if _type(d) is not _dict:",
        "        raise TypeError(f'expected a JSON object for {_cls.__name__}, got '",
        "                        f'{_type(d).__name__}')",
        "    try:",
        "        o = _new(_cls)" if direct else "        kw = {}",
    ]
    slow_fields: list[_SlowField] = []
    for index, field in enumerate(attrs.fields(cls)):
        if setters is not None:
            env[f"_s{index}"] = setters[index]
        if not field.init:
            if direct:
                env[f"_d{index}"] = field.default
                lines.append(f"        _s{index}(o, _d{index})")
            continue
        names = (wire_name(field), *wire_aliases(field))
        required = field.default is attrs.NOTHING
        none_default = direct and field.default is None and len(names) == 1
        expr = _expression(index, field, conv, env, field_hook, strip_optional=none_default)
        slow_fields.append(
            _SlowField(field.name, names, required, field_hook(field), field.type, conv)
        )
        if required and len(names) == 1:
            # A missing key raises KeyError(<wire name>) by itself.
            lines.append(f"        v = d[{names[0]!r}]")
        elif none_default:
            # Absent and null both mean None here: one lookup, one test.
            lines.append(f"        v = d.get({names[0]!r})")
        else:
            lines.append(f"        v = d.get({names[0]!r}, _MISSING)")
            for alias in names[1:]:
                lines.append("        if v is _MISSING:")
                lines.append(f"            v = d.get({alias!r}, _MISSING)")
            if required:
                lines.append("        if v is _MISSING:")
                lines.append(f"            raise KeyError({names[0]!r})")
        target = f"_s{index}(o, {{}})" if direct else f"kw[{field.alias!r}] = {{}}"
        if required:
            lines.append("        " + target.format(expr))
        elif none_default:
            lines.append("        " + target.format(f"None if v is None else {expr}"))
        elif direct:
            default = field.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                env[f"_d{index}"] = default.factory
                fallback = f"_d{index}()"
            else:
                env[f"_d{index}"] = default
                fallback = f"_d{index}"
            lines.append("        if v is _MISSING:")
            lines.append("            " + target.format(fallback))
            lines.append("        else:")
            lines.append("            " + target.format(expr))
        else:
            lines.append("        if v is not _MISSING:")
            lines.append("            " + target.format(expr))
    env["_locate"] = partial(_locate, cls.__name__, tuple(slow_fields))
    lines += [
        "        return o" if direct else "        return _cls(**kw)",
        "    except Exception as e:",
        "        _locate(d, e)",
        "        raise",
    ]
    source = "\n".join(lines) + "\n"
    filename = f"<flexconn structure {cls.__module__}.{cls.__qualname__}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), env)
    function: Callable[[Any, Any], Any] = env["structure"]
    return function


class _SlowField:
    """One field, structured the slow way: used only to name the field after a failure."""

    def __init__(
        self,
        name: str,
        wire_names: tuple[str, ...],
        required: bool,
        hook: Callable[[Any, Any], Any] | None,
        tp: Any,
        conv: Converter,
    ) -> None:
        self.name = name
        self.wire_names = wire_names
        self.required = required
        self.hook = hook
        self.tp = tp
        self.conv = conv

    def fails(self, data: dict[str, Any]) -> bool:
        for wire in self.wire_names:
            if wire in data:
                value = data[wire]
                break
        else:
            return self.required
        try:
            hook = self.hook or self.conv.get_structure_hook(self.tp)
            hook(value, self.tp)
        except Exception:
            return True
        return False


def _locate(class_name: str, fields: tuple[_SlowField, ...], data: Any, exc: Exception) -> None:
    # The fast path keeps no record of where it was; find the failing field again, slowly.
    for field in fields:
        if field.fails(data):
            exc.add_note(f"Structuring class {class_name} @ attribute {field.name}")
            return


def _expression(
    index: int,
    field: attrs.Attribute[Any],
    conv: Converter,
    env: dict[str, Any],
    field_hook: Callable[[attrs.Attribute[Any]], Callable[[Any, Any], Any] | None],
    *,
    strip_optional: bool = False,
) -> str:
    tp = field.type
    own_hook = field_hook(field)
    if own_hook is not None:
        env[f"_h{index}"] = own_hook
        env[f"_t{index}"] = tp
        return f"_h{index}(v, _t{index})"
    optional, inner = _is_optional(tp)
    body = _inner_expression(index, inner, conv, env)
    if optional and not strip_optional:
        return f"None if v is None else {body}"
    return body


def _inner_expression(index: int, tp: Any, conv: Converter, env: dict[str, Any]) -> str:
    hook = f"_h{index}"
    env[hook] = conv.get_structure_hook(tp)
    env[f"_t{index}"] = tp
    slow = f"{hook}(v, _t{index})"
    if tp is int:
        # Ids and timestamps arrive as digit strings as often as ints; int() reads them.
        return f"_int(v) if _type(v) is _str else v if _type(v) is _int else {slow}"
    if tp is str:
        return f"v if _type(v) is _str else {slow}"
    if tp is bool:
        return (
            f"v if _type(v) is _bool else _bool_text[v] "
            f"if _type(v) is _str and v in _bool_text else {slow}"
        )
    if tp is Decimal:
        # Decimal() also accepts "NaN"/"Infinity": _decimal_text's finiteness test refuses them
        # (only finite values are ever remembered).
        return (
            f"(x if (x := _decimal_get(v)) is not None else _decimal_text(v)) "
            f"if _type(v) is _str else {slow}"
        )
    if isinstance(tp, type) and issubclass(tp, Enum):
        table = f"_e{index}"
        # Lower-case spellings too (trades arrive with ``"side": "buy"``).
        lookup: dict[object, Enum] = {}
        for member in tp:
            if isinstance(member.value, str):
                lookup.setdefault(member.value.lower(), member)
        lookup.update({member.value: member for member in tp})
        env[table] = lookup
        if all(tp):  # every member truthy: one lookup decides
            return f"{table}.get(v) or {slow}"
        return f"{table}[v] if v in {table} else {slow}"
    return slow
