"""The one page-number pagination of every list that can grow: at most 10 a page; and
the links of a `rows/` page."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.utils.urls import remove_query_param, replace_query_param

from datalake.api.bounds import whole_number
from datalake.query.grammar import RowQuery
from datalake.query.rows import RowsPage


class PagePagination(PageNumberPagination):
    """`?page=N&page_size=M`; M defaults to 10 and a larger value is served as 10.

    A `page_size` that is not a whole number of 1 or more is a 400, not ignored.
    """

    page_size = 10
    page_size_query_param = "page_size"
    max_page_size = 10

    def get_page_size(self, request):
        values = request.query_params.getlist(self.page_size_query_param)
        if len(values) > 1:
            raise ValidationError({"page_size": ["Must be one whole number of 1 or more."]})
        if values:
            whole_number(values[0], "page_size")
        return super().get_page_size(request)

    def get_paginated_response_schema(self, schema):
        page = super().get_paginated_response_schema(schema)
        descriptions = {
            "count": "How many objects match, over every page.",
            "next": "The URL of the next page; null on the last page.",
            "previous": "The URL of the previous page; null on the first page.",
            "results": "This page's objects, at most `page_size` (10).",
        }
        for name, text in descriptions.items():
            field = page["properties"][name]
            if isinstance(field, dict):  # drf-spectacular also passes a marker object
                page["properties"][name] = {**field, "description": text}
        return page


def rows_body(request, query: RowQuery, page: RowsPage) -> dict:
    """The body of a `rows/` response: count, links, next_cursor, the data version read
    and the results."""
    return {
        "count": page.count,
        "count_is_estimate": page.count_is_estimate,
        "next": _next_link(request, query, page.next_cursor),
        "previous": _previous_link(request, query),
        "next_cursor": page.next_cursor,
        "data_version": page.state.label,
        "results": page.results,
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
