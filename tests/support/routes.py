"""The /api/v1/ routes, walked from the URL resolver: a route added later is in every walk
(the 401 walk, the leak walks, the query-count pins) without anyone listing it."""

from __future__ import annotations

import re
from collections.abc import Iterator

from django.urls import URLPattern, URLResolver, get_resolver

# Open by contract (API.md): the token endpoint and the pages that hold no data.
PUBLIC = {"api/v1/auth/token/", "api/v1/schema/", "api/v1/docs/", "api/v1/redoc/"}
# Authorised by a signature in the URL, not a token (the connectors send none):
# tests/security/test_auth_walk.py refuses them without a valid one.
SIGNED = {"api/v1/delta-sharing/files/x"}


def walk(patterns=None, prefix="") -> Iterator[tuple[str, URLPattern]]:
    """(route regex/path text, pattern) of every URL pattern under `patterns`."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern).lstrip("^").rstrip("$")
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route, pattern


# Delta Sharing's path names a share, a schema and a table that exist.
NAMED = {"share": "lake", "schema": "tables", "table": "transactions"}


def _value(match) -> str:
    name = match.group(1)
    return "1" if name in ("pk", "id", "n") else NAMED.get(name, "x")


def concrete(route: str) -> str:
    """A path matching the pattern, with a plausible value for each parameter."""
    route = route.replace("\\.", ".")
    route = re.sub(r"\(\?P<format>[^)]*\)\??", "", route)
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", _value, route)
    route = re.sub(r"<(?:\w+:)?(\w+)>", _value, route)
    route = route.replace("[^/.]+", "x")
    return "/" + route.replace("\\", "")


def api_patterns() -> dict[str, URLPattern]:
    """Concrete path -> pattern of every non-public /api/v1/ route."""
    found = {}
    for route, pattern in walk():
        path = concrete(route)
        if path.startswith("/api/v1/") and path[1:] not in PUBLIC | SIGNED:
            found.setdefault(path, pattern)
    return dict(sorted(found.items()))


def api_routes() -> list[str]:
    return list(api_patterns())
