"""The JSON body parser of every endpoint: bounded nesting, no NUL character.

JSON nested a few hundred levels deep parsed, then made every later step recurse
(validation, the request log's masking and encoding) into a RecursionError, a 500;
a few thousand levels made the parser itself recurse. Bodies nested deeper than
`API_JSON_MAX_DEPTH` (32 by default; real bodies need 4) are a 400 `parse_error`.
A NUL character (U+0000) in any key or string is a 400 naming where: PostgreSQL stores
no NUL in text or jsonb, so such a value could never be saved (a 500 before).
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser


class TooDeep(ValueError):
    """Containers nested deeper than the limit."""


def check_json(data, limit: int) -> tuple | None:
    """Raise TooDeep if containers nest deeper than `limit`; else the path (keys and
    indexes) of the first key or string holding a NUL, or None. Iterative: any depth."""
    stack = [(data, 1, ())]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                raise TooDeep(f"JSON nested deeper than {limit} levels.")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and "\x00" in key:
                    return (*path, key)
                stack.append((item, depth + 1, (*path, key)))
        elif isinstance(value, str) and "\x00" in value:
            return path
    return None


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser (same decoding) with the depth limit and the NUL refusal."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_JSON_MAX_DEPTH
        try:
            data = super().parse(stream, media_type, parser_context)
            nul_at = check_json(data, limit)
        except (RecursionError, TooDeep):
            raise ParseError(f"JSON parse error - nested deeper than {limit} levels.") from None
        if nul_at is not None:
            where = ".".join(str(part) for part in nul_at) or "body"
            field = str(nul_at[0]) if nul_at and isinstance(data, dict) else "non_field_errors"
            raise ValidationError({field: [f"{where}: a NUL character (U+0000) is not allowed."]})
        return data
