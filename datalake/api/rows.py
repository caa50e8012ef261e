"""One page of rows for the `rows/` endpoints: page numbers or a keyset cursor."""

from __future__ import annotations

from rest_framework.exceptions import NotFound
from rest_framework.utils.urls import remove_query_param, replace_query_param

from .backends import backend_for
from .grammar import RowQuery, encode_cursor
from .keyset import after_condition, leading_bound, typed_cursor


def rows_page(query: RowQuery, request, version: int | None = None) -> dict:
    """The body of a `rows/` response: count, links, next_cursor and the results.

    A cursor page costs one index range scan at any depth; `page=N` is an OFFSET
    (fine for the first thousands of pages). A page past the end is a 404.
    """
    backend = backend_for(query, version)
    names = query.ordering_names
    select = query.fields + [n for n in names if n not in query.fields]
    after = bound = None
    if query.cursor is not None:
        values = typed_cursor(query.entry, query.ordering, query.cursor)
        after = after_condition(query.entry, query.ordering, values)
        bound = leading_bound(query.entry, query.ordering, values)
    offset = 0 if after is not None else (query.page - 1) * query.page_size
    rows = backend.fetch(select, offset, query.page_size + 1, after, bound)
    has_next = len(rows) > query.page_size
    rows = rows[: query.page_size]
    if not rows and query.page > 1:
        raise NotFound(f"Page {query.page} is past the end of the results.")
    next_cursor = encode_cursor([rows[-1][n] for n in names], query.sealed) if has_next else None
    extra = [n for n in select if n not in query.fields]
    for row in rows if extra else ():
        for name in extra:
            del row[name]
    query.restriction.mask_rows(rows)
    count, estimated = backend.count()
    return {
        "count": count,
        "count_is_estimate": estimated,
        "next": _next_link(request, query, next_cursor),
        "previous": _previous_link(request, query),
        "next_cursor": next_cursor,
        "results": rows,
    }


def _next_link(request, query: RowQuery, next_cursor: str | None) -> str | None:
    if next_cursor is None:
        return None
    url = request.build_absolute_uri()
    if query.cursor is not None:
        return replace_query_param(url, "cursor", next_cursor)
    return replace_query_param(url, "page", query.page + 1)


def _previous_link(request, query: RowQuery) -> str | None:
    if query.cursor is not None or query.page <= 1:
        return None
    url = request.build_absolute_uri()
    if query.page == 2:
        return remove_query_param(url, "page")
    return replace_query_param(url, "page", query.page - 1)
