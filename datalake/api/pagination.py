"""The one page-number pagination of every list that can grow: at most 10 a page."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination

from datalake.api.bounds import whole_number


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
