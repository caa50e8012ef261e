"""OpenAPI post-processing: one `rows/` path per built-in table, with its own filters.

The generic `/resources/{name}/rows/` operation cannot list per-table filters;
this hook copies it for each table of the catalog and adds every filter the
catalog accepts there, typed, so that clients and the docs see them.
"""

from __future__ import annotations

import copy

from datalake.catalog.entries import list_table_entries

from .filters import param_name

SCHEMA_TYPES = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "decimal": {"type": "string", "format": "decimal", "pattern": r"^-?\d+(\.\d+)?$"},
    "date": {"type": "string", "format": "date"},
    "timestamp": {"type": "string", "format": "date-time"},
    "boolean": {"type": "boolean"},
}
GENERIC = "/api/v1/resources/{name}/rows/"


def _filter_parameters(entry) -> list[dict]:
    params = []
    for column in entry.columns:
        for op in column.filters:
            schema = SCHEMA_TYPES[column.type]
            if op == "in":
                schema = {"type": "string", "description": "comma-separated values"}
            params.append(
                {
                    "in": "query",
                    "name": param_name(column.name, op),
                    "required": False,
                    "schema": schema,
                    "description": f"`{column.name}` {op} ({column.type}). {column.description}",
                }
            )
    return params


def add_table_rows_paths(result, generator, request, public):
    generic = result.get("paths", {}).get(GENERIC, {}).get("get")
    if generic is None:
        return result
    for entry in list_table_entries():
        operation = copy.deepcopy(generic)
        operation["operationId"] = f"resources_{entry.name}_rows"
        operation["summary"] = f"Rows of `{entry.name}`"
        operation["parameters"] = [
            p for p in operation.get("parameters", []) if p.get("name") != "name"
        ] + _filter_parameters(entry)
        result["paths"][f"/api/v1/resources/{entry.name}/rows/"] = {"get": operation}
    return result
