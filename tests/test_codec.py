"""The wire conventions of the one converter (flexconn.protocol.codec)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

import attrs
import cattrs
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexconn.models.enums import OrderType, Side, TimeInForce
from flexconn.protocol.codec import (
    camel,
    converter,
    decimals_as_strings,
    describe_error,
    dumps,
    loads,
    make_converter,
    ms_to_datetime,
    structure,
    structure_decimal,
    structure_int,
    unstructure,
    wire,
)

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class Sample:
    market_code: str
    order_id: int = attrs.field(metadata=wire(aliases=("orderID",)))
    instrument: str = attrs.field(default="USD", metadata=wire("instrumentId"))
    side: Side = Side.BUY
    price: Decimal | None = None
    quantity: Decimal = Decimal(1)
    tag: str | int | None = None
    flag: bool = False
    time_in_force: TimeInForce | None = None
    kind: str = attrs.field(default="sample", init=False)


@decimals_as_strings
@attrs.frozen(kw_only=True)
class Priced:
    price: Decimal
    fee: Decimal | None = None


@attrs.frozen(kw_only=True)
class Checked:
    quantity: int = attrs.field(validator=attrs.validators.gt(0))


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next_id: int | None = None


@attrs.frozen(kw_only=True)
class Nested:
    sample: Sample
    samples: tuple[Sample, ...] = ()


def test_camel_case() -> None:
    assert camel("market_code") == "marketCode"
    assert camel("client_order_id") == "clientOrderId"
    assert camel("open_24h") == "open24h"
    assert camel("side") == "side"


def test_structure_maps_camel_case_and_overrides() -> None:
    sample = structure({"marketCode": "BTC-USD", "orderId": 7, "instrumentId": "FLEX"}, Sample)
    assert sample == Sample(market_code="BTC-USD", order_id=7, instrument="FLEX")


def test_alias_accepted_primary_wins() -> None:
    assert structure({"marketCode": "X", "orderID": "8"}, Sample).order_id == 8
    assert structure({"marketCode": "X", "orderID": 8, "orderId": 9}, Sample).order_id == 9


def test_missing_optional_fields_take_defaults_and_unknown_keys_are_ignored() -> None:
    sample = structure({"marketCode": "X", "orderId": 1, "somethingNew": [1, 2]}, Sample)
    assert sample.price is None
    assert sample.quantity == Decimal(1)
    assert sample.kind == "sample"


def test_missing_required_field_names_it() -> None:
    with pytest.raises(KeyError, match="orderId"):
        structure({"marketCode": "X"}, Sample)


@pytest.mark.parametrize(
    ("wire_value", "expected"),
    [("9431.48", "9431.48"), (9431.48, "9431.48"), (0.1, "0.1"), (5, "5"), ("1E+2", "100")],
)
def test_decimal_from_str_int_float_without_binary_noise(wire_value: Any, expected: str) -> None:
    value = structure({"marketCode": "X", "orderId": 1, "price": wire_value}, Sample).price
    assert value == Decimal(expected)
    assert str(value) != "0.1000000000000000055511151231257827021181583404541015625"


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-inf", "abc", True, None, [1]])
def test_decimal_refuses_non_numbers(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError, ArithmeticError)):
        structure({"marketCode": "X", "orderId": 1, "quantity": bad}, Sample)
    with pytest.raises((ValueError, TypeError, ArithmeticError)):
        structure_decimal(bad)


@pytest.mark.parametrize(
    ("wire_value", "expected"), [(12, 12), ("12", 12), ("304304315061932310", 304304315061932310)]
)
def test_int_from_int_or_digit_string(wire_value: Any, expected: int) -> None:
    assert structure({"marketCode": "X", "orderId": wire_value}, Sample).order_id == expected
    assert structure_int(wire_value) == expected


@pytest.mark.parametrize("bad", [True, 1.5, "1.5", "twelve", None, ""])
def test_int_refuses_the_rest(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        structure({"marketCode": "X", "orderId": bad}, Sample)


def test_str_from_int_and_tag_union_keeps_type() -> None:
    sample = structure({"marketCode": 123, "orderId": 1, "tag": 5}, Sample)
    assert sample.market_code == "123"
    assert sample.tag == 5
    assert structure({"marketCode": "X", "orderId": 1, "tag": "5"}, Sample).tag == "5"
    with pytest.raises(TypeError):
        structure({"marketCode": "X", "orderId": 1, "tag": 1.5}, Sample)


@pytest.mark.parametrize(
    ("wire_value", "expected"),
    [("BUY", Side.BUY), ("buy", Side.BUY), ("Sell", Side.SELL)],
)
def test_enum_from_wire_string_any_case(wire_value: str, expected: Side) -> None:
    assert structure({"marketCode": "X", "orderId": 1, "side": wire_value}, Sample).side is expected


def test_enum_spaces_read_as_underscores_and_missing_hook() -> None:
    assert converter.structure("maker only", TimeInForce) is TimeInForce.MAKER_ONLY
    assert converter.structure("STOP_LIMIT", OrderType) is OrderType.STOP
    with pytest.raises(ValueError, match="not a valid Side"):
        converter.structure("HOLD", Side)


@pytest.mark.parametrize(
    ("wire_value", "expected"), [(True, True), ("False", False), ("TRUE", True)]
)
def test_bool_from_bool_or_string(wire_value: Any, expected: bool) -> None:
    assert structure({"marketCode": "X", "orderId": 1, "flag": wire_value}, Sample).flag is expected


def test_bool_refuses_numbers() -> None:
    with pytest.raises(TypeError):
        structure({"marketCode": "X", "orderId": 1, "flag": 1}, Sample)


def test_unstructure_omits_none_writes_constants_and_exact_numbers() -> None:
    sample = Sample(market_code="X", order_id=1, quantity=Decimal("0.10"), price=Decimal("1E+3"))
    assert orjson.loads(dumps(sample)) == {
        "marketCode": "X",
        "orderId": 1,
        "instrumentId": "USD",
        "side": "BUY",
        "price": 1000,
        "quantity": 0.1,
        "flag": False,
        "kind": "sample",
    }
    assert '"quantity":0.10' in dumps(sample)
    assert '"price":1000' in dumps(sample)


def test_unstructure_keeps_every_digit() -> None:
    text = dumps(Sample(market_code="X", order_id=1, quantity=Decimal("12345678901234567890.123")))
    assert '"quantity":12345678901234567890.123' in text


def test_decimals_as_strings_marker() -> None:
    assert unstructure(Priced(price=Decimal("9431.48"))) == {"price": "9431.48"}
    assert orjson.loads(dumps(Priced(price=Decimal("1E+2"), fee=Decimal("0.5")))) == {
        "price": "100",
        "fee": "0.5",
    }


def test_validators_still_run_when_structuring() -> None:
    assert structure({"quantity": "3"}, Checked) == Checked(quantity=3)
    with pytest.raises(ValueError):
        structure({"quantity": 0}, Checked)


def test_generic_classes_use_cattrs_with_the_same_conventions() -> None:
    page = structure({"items": [{"marketCode": "X", "orderID": "3"}], "nextId": "9"}, Page[Sample])
    assert page == Page(items=(Sample(market_code="X", order_id=3),), next_id=9)


def test_nested_models_and_tuples() -> None:
    nested = structure(
        {
            "sample": {"marketCode": "X", "orderId": 1},
            "samples": [{"marketCode": "Y", "orderId": 2}],
        },
        Nested,
    )
    assert nested.samples[0].market_code == "Y"
    assert structure(orjson.loads(dumps(nested)), Nested) == nested


def test_error_names_the_attribute() -> None:
    with pytest.raises(Exception) as info:
        structure({"marketCode": "X", "orderId": 1, "price": "abc"}, Sample)
    assert "@ attribute price" in describe_error(info.value)


def test_not_an_object() -> None:
    with pytest.raises(TypeError, match="JSON object"):
        structure(["marketCode"], Sample)


def test_make_converter_is_independent() -> None:
    other = make_converter()
    assert isinstance(other, cattrs.Converter)
    assert other is not converter
    assert other.structure({"marketCode": "X", "orderId": "4"}, Sample).order_id == 4


def test_loads_and_ms_to_datetime() -> None:
    assert loads(b'{"a": 1}') == {"a": 1}
    assert ms_to_datetime(1592491803978) == datetime(2020, 6, 18, 14, 50, 3, 978000, tzinfo=UTC)


# JSON numbers are parsed by orjson as floats: exact up to 15 significant digits (module notes).
_decimals = st.decimals(
    allow_nan=False, allow_infinity=False, places=6, min_value=-(10**8), max_value=10**8
)


@given(
    market_code=st.text(min_size=1, max_size=20),
    order_id=st.integers(min_value=0, max_value=2**63 - 1),
    price=st.none() | _decimals,
    quantity=_decimals,
    tag=st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text(max_size=32),
    side=st.sampled_from(Side),
    time_in_force=st.none() | st.sampled_from(TimeInForce),
    flag=st.booleans(),
)
def test_round_trip_through_json(**fields: Any) -> None:
    sample = Sample(**fields)
    assert structure(loads(dumps(sample)), Sample) == sample


@given(st.from_regex(r"-?[0-9]{1,30}(\.[0-9]{1,20})?", fullmatch=True))
def test_decimal_strings_are_exact(text: str) -> None:
    assert structure({"price": text}, Priced).price == Decimal(text)
    assert structure(loads(dumps(Priced(price=Decimal(text)))), Priced).price == Decimal(text)
