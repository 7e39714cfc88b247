"""The one cattrs converter for the CoinFLEX wire format (public name of :mod:`flexconn._codec`).

The converter sits below the models (they are built with its field metadata and hooks), so it
lives in :mod:`flexconn._codec`, which imports nothing from the models or the protocol; this
module gives it its public place in the protocol layer. See :mod:`flexconn._codec` for the
encoding rules.
"""

from flexconn._codec import (
    WIRE_ALIASES,
    WIRE_NAME,
    camel,
    configure_converter,
    converter,
    decimals_as_strings,
    describe_error,
    dumps,
    dumps_bytes,
    loads,
    make_converter,
    ms_to_datetime,
    plain_decimal,
    structure,
    structure_bool,
    structure_decimal,
    structure_int,
    structure_str,
    unstructure,
    wire,
    wire_aliases,
    wire_name,
)

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
