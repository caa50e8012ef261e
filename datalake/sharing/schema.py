"""Arrow and Spark types of a resource as one recipient sees it.

One mapping from the catalog's column types, used by the files (their Arrow schema)
and by the protocol's `metaData` (its Spark `schemaString`), so the two always agree.
A masked column is a string (its pseudonym); a hidden column is absent.
"""

from __future__ import annotations

import json

import pyarrow as pa

from accounts.access import Restriction
from datalake.catalog import Entry
from datalake.catalog.rawfiles import ARROW_TYPES

UTC_MICROS = pa.timestamp("us", tz="UTC")
CHANGE_TYPE = "_change_type"


def _table_type(entry: Entry, name: str, col_type: str) -> pa.DataType:
    if col_type == "decimal":
        field = entry.model._meta.get_field(name)
        return pa.decimal128(field.max_digits, field.decimal_places)
    return {
        "string": pa.string(),
        "integer": pa.int64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "timestamp": UTC_MICROS,
        "array": pa.list_(pa.string()),
    }[col_type]


def base_schema(entry: Entry) -> pa.Schema:
    """Every column of the resource, unrestricted (the base snapshot's schema)."""
    fields = []
    for column in entry.columns:
        if entry.model is not None:
            arrow = _table_type(entry, column.name, column.type)
        elif column.name == "_line":
            arrow = pa.int64()
        elif column.type == "timestamp":  # UTC, as the rows endpoint (its pseudonyms too)
            arrow = UTC_MICROS
        else:
            arrow = ARROW_TYPES.get(column.type, pa.string())
        fields.append(pa.field(column.name, arrow, nullable=True))
    return pa.schema(fields)


def shared_schema(entry: Entry, restriction: Restriction) -> pa.Schema:
    """The columns `restriction` shows, masked ones as strings."""
    base = base_schema(entry)
    return pa.schema(
        [
            pa.field(f.name, pa.string()) if f.name in restriction.masked else f
            for f in base
            if not restriction.hides(f.name)
        ]
    )


def spark_type(arrow: pa.DataType):
    """The Spark SQL type (Delta's schema JSON) of an Arrow type."""
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return "string"
    if pa.types.is_boolean(arrow):
        return "boolean"
    if pa.types.is_int64(arrow):
        return "long"
    if pa.types.is_integer(arrow):
        return "integer"
    if pa.types.is_floating(arrow):
        return "double"
    if pa.types.is_decimal(arrow):
        return f"decimal({arrow.precision},{arrow.scale})"
    if pa.types.is_date(arrow):
        return "date"
    if pa.types.is_timestamp(arrow):
        return "timestamp"
    if pa.types.is_list(arrow):
        return {"type": "array", "elementType": spark_type(arrow.value_type), "containsNull": True}
    raise ValueError(f"No Spark type for {arrow}")


def schema_string(schema: pa.Schema, descriptions: dict[str, str] | None = None) -> str:
    """Delta's `schemaString`: a Spark StructType as JSON."""
    descriptions = descriptions or {}
    fields = [
        {
            "name": f.name,
            "type": spark_type(f.type),
            "nullable": True,
            "metadata": {"comment": descriptions[f.name]} if descriptions.get(f.name) else {},
        }
        for f in schema
    ]
    return json.dumps({"type": "struct", "fields": fields}, separators=(",", ":"))
