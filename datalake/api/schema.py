"""OpenAPI post-processing: one `rows/` path per built-in table, with its own filters.

The generic `/resources/{name}/rows/` operation cannot list per-table filters;
this hook copies it for each table of the catalog and adds every filter the
catalog accepts there, typed, so that clients and the docs see them.
"""

from __future__ import annotations

import copy

from datalake.api.bounds import MAX_WHOLE
from datalake.catalog.entries import list_table_entries
from datalake.query.filters import param_name

PLAIN_SEGMENT = r"^[^\u0000-\u001f\u007f]+$"  # else 400 `invalid_path` (api/middleware.py)
INSIDE_CALENDAR = r"^(?!0001-|9999-)"  # bounds.FIRST_DAY..LAST_DAY, with room for time zones

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


ERROR_COMPONENT = {
    "type": "object",
    "description": "Every error: a sentence to act on and a stable code; a 400 also has "
    "`errors`, the messages per field or parameter.",
    "properties": {
        "detail": {"type": "string", "description": "A sentence a person can act on."},
        "code": {
            "type": "string",
            "description": "A stable machine string: `invalid`, `not_found`, "
            "`permission_denied`, `throttled`, ...",
        },
        "errors": {
            "type": "object",
            "description": "400 only: the messages per field or parameter (a nested field as "
            "`outer.inner`).",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["detail", "code"],
}
ERRORS = {
    "400": "Invalid parameters or body; `errors` names each.",
    "401": "No token, or a bad or expired one.",
    "403": "Authenticated, but without the privilege this needs.",
    "404": "No such resource or object (or not one you may see).",
    "405": "Method not allowed on this path.",
    "409": "Conflicts with the state of the resource (`code` says which).",
    "429": "Too many attempts, or too many jobs running; retry later (`code` says which).",
}

_INTEGER = {"type": "integer", "minimum": 0}
QUOTA_HEADERS = {
    "RateLimit-Limit": ("Requests this token may make per minute.", _INTEGER, 600),
    "RateLimit-Remaining": ("Requests left in this minute.", _INTEGER, 598),
    "RateLimit-Reset": ("Seconds until the minute's count starts again.", _INTEGER, 42),
    "RateLimit-Policy": (
        "The request quota as the IETF draft writes it: `<limit>;w=<window seconds>`.",
        {"type": "string"},
        "600;w=60",
    ),
    "X-RateLimit-Rows-Limit": ("Rows of `rows/` pages this token may read per UTC day.",
                               _INTEGER, 1000000),
    "X-RateLimit-Rows-Remaining": ("Rows left today.", _INTEGER, 999990),
    "X-RateLimit-Rows-Reset": ("Seconds until the UTC day ends.", _INTEGER, 36000),
}  # fmt: skip
RETRY_AFTER = ("Seconds to wait before the quota allows this request.", _INTEGER, 42)
QUOTA_429 = (
    'Quota spent, `code: "quota_exceeded"`: the token\'s requests a minute, or on `rows/` '
    "its rows a day; retry after `Retry-After` seconds. (Also `throttled`: too many failed "
    "logins; `too_many_jobs` and the like: too many jobs running.)"
)
QUOTA_EXAMPLE = {
    "detail": "Request quota spent: 600 requests a minute for these credentials; retry in 42 s.",
    "code": "quota_exceeded",
}


def add_error_responses(result, generator, request, public):
    """Every operation documents the error envelope of every error the API can answer."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_COMPONENT
    ref = {"$ref": "#/components/schemas/Error"}
    for methods in result.get("paths", {}).values():
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                responses.setdefault(
                    status,
                    {"description": description, "content": {"application/json": {"schema": ref}}},
                )
    return result


def bound_paging_parameters(result, generator, request, public):
    """The limits of bounds.py, documented: `page` and `page_size` are whole numbers
    1..MAX_WHOLE everywhere; a path segment holds no control character; `since` and
    `until` stay a day inside the calendar (the schema says: not in years 1 or 9999)."""
    for methods in result.get("paths", {}).values():
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.setdefault("schema", {"type": "string"})
                name, where = parameter.get("name"), parameter.get("in")
                if name in ("page", "page_size"):
                    schema.update(type="integer", minimum=1, maximum=MAX_WHOLE)
                elif where == "path" and schema.get("type") == "string":
                    schema["pattern"] = PLAIN_SEGMENT
                elif where == "query" and name in ("since", "until"):
                    schema["pattern"] = INSIDE_CALENDAR
    return result


CONDITIONAL_PREFIXES = ("/api/v1/resources/", "/api/v1/metrics/")
HEADER = {"schema": {"type": "string"}}
CONDITIONAL_HEADERS = {
    "ETag": {
        **HEADER,
        "description": "Weak tag of this answer: the data versions it read, "
        "the request and your restriction. Send it back in `If-None-Match`.",
    },
    "Cache-Control": {
        **HEADER,
        "description": "`private, no-cache`; rows of a version named "
        "or pinned by a walk: `private, max-age=..., immutable`.",
    },
    "X-Data-Version": {
        **HEADER,
        "description": "The state of the data read: a version "
        "number, `stamp:<n>` or `files:<digest>` (rows, versions, metrics).",
    },
}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "An `ETag` of an earlier answer (or several): 304 with no body "
    "if the answer would be the same, without running its query.",
}


def add_conditional_reads(result, generator, request, public):
    """The data answers' ETag, Cache-Control and X-Data-Version headers, `If-None-Match`,
    the 304, and the rows' 410 `snapshot_expired` (datalake/api/conditional.py)."""
    for path, methods in result.get("paths", {}).items():
        operation = methods.get("get")
        if operation is None or not path.startswith(CONDITIONAL_PREFIXES):
            continue
        if path.endswith("/access-log/"):
            continue
        operation.setdefault("parameters", []).append(IF_NONE_MATCH)
        responses = operation.setdefault("responses", {})
        if "200" in responses:
            responses["200"].setdefault("headers", {}).update(CONDITIONAL_HEADERS)
        responses["304"] = {
            "description": "Not modified: your `If-None-Match` names this answer.",
            "headers": CONDITIONAL_HEADERS,
        }
        if path.endswith("/rows/"):
            responses["410"] = {
                "description": "`snapshot_expired`: the data this cursor's walk reads is no "
                "longer kept; start the walk again from its first page.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
    return result


def _header(name: str) -> dict:
    description, schema, example = RETRY_AFTER if name == "Retry-After" else QUOTA_HEADERS[name]
    return {"description": description, "schema": {**schema, "example": example}}


def add_quota_headers(result, generator, request, public):
    """Operations that need credentials are counted against the caller's quotas
    (accounts/quotas/): their answers carry the RateLimit headers (a quota without a
    limit has none), and their 429 is `quota_exceeded` with `Retry-After`."""
    headers = result.setdefault("components", {}).setdefault("headers", {})
    for name in (*QUOTA_HEADERS, "Retry-After"):
        headers[name] = _header(name)
    refs = {name: {"$ref": f"#/components/headers/{name}"} for name in QUOTA_HEADERS}
    for methods in result.get("paths", {}).values():
        for operation in methods.values():
            if not any(operation.get("security") or [{}]):
                continue  # no credentials needed: not counted
            for status, response in operation.get("responses", {}).items():
                if status.startswith("2"):
                    response.setdefault("headers", {}).update(refs)
            ref = {"$ref": "#/components/schemas/Error"}
            operation.setdefault("responses", {})["429"] = {
                "description": QUOTA_429,
                "headers": {"Retry-After": {"$ref": "#/components/headers/Retry-After"}, **refs},
                "content": {"application/json": {"schema": ref, "example": QUOTA_EXAMPLE}},
            }
    return result


FRESHNESS_PATHS = ("/api/v1/metrics/spent-", "/api/v1/metrics/top-products/", "/api/v1/search/")
LAG_HEADER = {
    "description": "Seconds since the oldest version not yet derived for this answer was "
    "made (0: up to date); `X-Data-Version` is the version it includes.",
    "schema": {"type": "number", "minimum": 0, "example": 0.4},
}


def add_freshness(result, generator, request, public):
    """Answers derived by a follower (datalake.lake.followers): `X-Lag-Seconds`, and the
    503 `not_derived_yet` of a `min_version` not derived within the wait."""
    ref = {"$ref": "#/components/schemas/Error"}
    for path, methods in result.get("paths", {}).items():
        operation = methods.get("get")
        if operation is None or not path.startswith(FRESHNESS_PATHS):
            continue
        responses = operation.setdefault("responses", {})
        for status in ("200", "304"):
            if status in responses:
                responses[status].setdefault("headers", {})["X-Lag-Seconds"] = LAG_HEADER
        responses["503"] = {
            "description": "`not_derived_yet`: the version `min_version` names is committed "
            "but not derived yet after the wait (FOLLOWER_WAIT_SECONDS); retry after "
            "`Retry-After` seconds. (Also `query_timeout`.) A `min_version` above the current "
            "version is a 409 `version_ahead` at once.",
            "headers": {"Retry-After": {"$ref": "#/components/headers/Retry-After"}},
            "content": {"application/json": {"schema": ref}},
        }
    return result
