"""Template tags of the portal's look: the one navigation bar of every page, and the
query form and table of rows that the browsable API shows above its JSON.

The bar reads the user from Django's request, not DRF's: the docs pages authenticate
nobody (they are public), yet a logged-in visitor should still see their name there.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from django import template
from django.conf import settings

from accounts.access import Access
from datalake.catalog import get_entry

register = template.Library()

PRODUCT = "Data-lake portal"
NAV = (
    ("Resources", "/api/v1/resources/"),
    ("Search", "/api/v1/search/"),
    ("Reports", "/api/v1/reports/"),
    ("Tokens", "/portal/tokens/"),
    ("API docs", "/api/v1/docs/"),
)
ADMIN = ("Admin", "/admin/")
ALSO_UNDER = {"/api/v1/reports/": ("/reports/",), "/api/v1/docs/": ("/api/v1/redoc/",)}
ROWS_VIEWS = ("resource-rows", "resource-version-rows")
RESET_PARAMS = ("page", "cursor")  # a new query starts from its first page
# The Search form's `since` (required by the API) starts this many days back: a month of
# records, enough to find a recent id without searching the whole history by default.
SEARCH_SINCE_DAYS = 30


def _http_request(request):
    """Django's HttpRequest behind DRF's Request (or the request itself)."""
    return getattr(request, "_request", request)


def _current_user(context):
    request = context.get("request")
    user = getattr(_http_request(request), "user", None) if request is not None else None
    return user if user is not None and user.is_authenticated else None


@register.simple_tag
def portal_name() -> str:
    return PRODUCT


@register.inclusion_tag("portal/nav.html", takes_context=True)
def portal_nav(context):
    request = context.get("request")
    http = _http_request(request) if request is not None else None
    path = http.path if http is not None else "/"
    user = _current_user(context)
    links = list(NAV) + ([ADMIN] if user is not None and user.is_staff else [])
    return {
        "product": PRODUCT,
        "links": [
            {"label": label, "url": url, "active": path.startswith((url, *ALSO_UNDER.get(url, ())))}
            for label, url in links
        ],
        "user": user,
        "login_url": f"{settings.LOGIN_URL}?{urlencode({'next': http.get_full_path()})}"
        if http is not None
        else settings.LOGIN_URL,
        "csrf_token": context.get("csrf_token"),
    }


def _answer(context):
    """(url name, URL kwargs, status, query params) of a browsable API page, or None."""
    request, response = context.get("request"), context.get("response")
    match = getattr(_http_request(request), "resolver_match", None)
    if match is None or response is None:
        return None
    params = getattr(request, "query_params", request.GET)
    return match.url_name, match.kwargs, response.status_code, params


def _row_fields(request, name: str, params) -> list[dict] | None:
    entry = get_entry(name)
    if entry is None:
        return None
    shown = Access.of(request).restriction(name)
    return [
        {"name": c.name, "value": params.get(c.name, ""), "hint": c.type}
        for c in entry.columns
        if c.filters and not shown.hides(c.name)
    ]


def _search_fields(params) -> list[dict]:
    """`q` and `since`, both required by the API: `since` is a date picker that starts
    SEARCH_SINCE_DAYS back (UTC), so that the form as shown is a valid search."""
    default = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=SEARCH_SINCE_DAYS)
    return [
        {"name": "q", "value": params.get("q", ""), "hint": "words", "input": "search"},
        {"name": "since", "value": params.get("since", default.isoformat()), "input": "date"},
    ]


@register.inclusion_tag("portal/query_form.html", takes_context=True)
def portal_query_form(context):
    """A form for the page's query: a search box, or one field per filterable column."""
    answer = _answer(context)
    if answer is None or answer[2] not in (200, 400):  # no form on pages one may not read
        return {}
    url_name, kwargs, _status, params = answer
    if url_name == "search":
        fields = _search_fields(params)
    elif url_name in ROWS_VIEWS:
        fields = _row_fields(context["request"], kwargs.get("name", ""), params)
        if fields is None:
            return {}
        fields += [
            {"name": "fields", "value": params.get("fields", ""), "hint": "a,b,c"},
            {"name": "ordering", "value": params.get("ordering", ""), "hint": "-column"},
        ]
    else:
        return {}
    named = {f["name"] for f in fields}
    kept = [
        (key, value)
        for key in params
        if key not in named and key not in RESET_PARAMS
        for value in params.getlist(key)
    ]
    return {"fields": fields, "kept": kept, "rows": url_name in ROWS_VIEWS}


@register.inclusion_tag("portal/rows_table.html", takes_context=True)
def portal_rows_table(context):
    """The page of rows as a table (the JSON stays below it)."""
    answer = _answer(context)
    if answer is None or answer[0] not in ROWS_VIEWS or answer[2] != 200:
        return {}
    data = context["response"].data
    rows = data.get("results") if isinstance(data, dict) else None
    if not rows or not isinstance(rows[0], dict):
        return {"empty": rows == []}
    columns = list(rows[0])
    return {
        "columns": columns,
        "rows": [[row.get(c) for c in columns] for row in rows],
        "count": data.get("count"),
        "estimate": data.get("count_is_estimate"),
    }
