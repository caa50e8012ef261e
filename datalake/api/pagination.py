"""The one page-number pagination of every list that can grow: at most 10 a page."""

from rest_framework.pagination import PageNumberPagination


class PagePagination(PageNumberPagination):
    """`?page=N&page_size=M`; M defaults to 10 and a larger value is served as 10."""

    page_size = 10
    page_size_query_param = "page_size"
    max_page_size = 10
