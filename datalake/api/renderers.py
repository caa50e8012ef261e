"""JSON rendering with orjson: the serialisation of rows is the cost of a page."""

from decimal import Decimal

import orjson
from rest_framework.renderers import JSONRenderer

OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def _default(value):
    if isinstance(value, Decimal):
        return str(value)
    return str(value)  # lazy translations, ErrorDetail subclasses and the like


def dumps(data, indent: bool = False) -> bytes:
    return orjson.dumps(data, default=_default, option=OPTIONS | (orjson.OPT_INDENT_2 * indent))


class FastJSONRenderer(JSONRenderer):
    """DRF's JSON renderer, through orjson (timestamps as `...Z`, decimals as strings)."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        indent = bool(self.get_indent(accepted_media_type, renderer_context or {}))
        return dumps(data, indent)
