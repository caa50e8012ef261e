"""What the request log stores of a request: masked, truncated, JSON-friendly."""

from __future__ import annotations

import re

import orjson
from django.conf import settings
from django.core.exceptions import SuspiciousOperation

from datalake.api.parsers import TooDeep, check_json
from datalake.platform.logging import redact_secret_paths

SECRET_KEYS = re.compile(r"pass|token|secret|key|authorization|credential|cookie", re.I)
MASK = "***"
MAX_BODY = 16_384  # bytes kept of a body before it is truncated
MAX_VALUE = 2_000  # characters kept of any one string value


def note_resource(request, name: str) -> None:
    """Record on the request which resource it touched (read by the middleware)."""
    getattr(request, "_request", request).audit_resource = name


def note_restriction(request, resource: str, restriction: dict) -> None:
    """Record on the request the restriction of a grant that applied to `resource`."""
    target = getattr(request, "_request", request)
    applied = getattr(target, "audit_restrictions", None) or {}
    applied[resource] = restriction
    target.audit_restrictions = applied


def mask(value):
    """Replace the values of secret-looking keys by "***", recursively."""
    if isinstance(value, dict):
        return {k: MASK if SECRET_KEYS.search(str(k)) else mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    if isinstance(value, str) and len(value) > MAX_VALUE:
        return value[:MAX_VALUE] + "…[truncated]"
    return value


def path_of(request) -> str:
    """The request's path, with any credential in it replaced by a digest of it."""
    return redact_secret_paths(request.path)[:2000]


def query_of(request) -> dict:
    try:
        return mask({k: v[0] if len(v) == 1 else v for k, v in request.GET.lists()})
    except SuspiciousOperation:  # over DATA_UPLOAD_MAX_NUMBER_FIELDS: the request is logged
        return {"_unreadable": True, "_head": _mask_text(request.META.get("QUERY_STRING", ""))}


def body_of(request):
    """The request body as JSON: parsed and masked, or a truncated marker when large."""
    try:
        raw = request.body
    except Exception:  # an unreadable body (e.g. over DATA_UPLOAD_MAX_MEMORY_SIZE)
        return {"_unreadable": True}
    if not raw:
        return None
    if len(raw) > MAX_BODY:
        head = raw[:2000].decode("utf-8", "replace")
        return {"_truncated": True, "_size": len(raw), "_head": _mask_text(head)}
    content_type = request.content_type or ""
    if "json" in content_type or raw[:1] in (b"{", b"["):
        return _json_body(raw)
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = {k: v[0] if len(v) == 1 else v for k, v in request.POST.lists()}
            form.update({k: f"<file {f.name}>" for k, f in request.FILES.items()})
        except Exception:  # a malformed form: keep a masked trace, never fail the request
            return {"_malformed_form": True}
        return mask(form)
    return {"_text": _mask_text(raw.decode("utf-8", "replace"))}


def _json_body(raw: bytes):
    """Parsed and masked; nested deeper than API_JSON_MAX_DEPTH (the parser refuses those
    too), a marker with the masked head, so that masking and encoding never recurse deep."""
    text = raw.decode("utf-8", "replace")
    try:
        data = orjson.loads(raw)
        check_json(data, settings.API_JSON_MAX_DEPTH)
    except TooDeep:
        return {"_too_deep": True, "_size": len(raw), "_head": _mask_text(text[:2000])}
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson's own limit (1024 levels)
            return {"_too_deep": True, "_size": len(raw), "_head": _mask_text(text[:2000])}
        return {"_invalid_json": _mask_text(text)}
    return mask(data)


def _mask_text(text: str) -> str:
    """Best effort on text that is not JSON: hide `secret=value` and `"secret": "value"`."""
    text = re.sub(
        r'(?i)("?[\w-]*(?:pass|token|secret|key|authorization)[\w-]*"?\s*[:=]\s*)("[^"]*"|[^&\s,}]*)',
        rf'\1"{MASK}"',
        text,
    )
    return text[:MAX_VALUE]
