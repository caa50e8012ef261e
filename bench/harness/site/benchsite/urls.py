"""The product's URLs plus the benchmark's reference views (only under benchsite.settings)."""

from django.urls import path

from benchsite.views import CeilingView, NaiveListView, served_tree
from datalake.urls import urlpatterns as product_urlpatterns

urlpatterns = [
    path("bench/ceiling/", CeilingView.as_view(), name="bench-ceiling"),
    path("bench/tree/", served_tree, name="bench-tree"),
    path("bench/naive/", NaiveListView.as_view(), name="bench-naive"),
    # The same ceiling where the request-log middleware sees it (/api/): information only.
    path("api/bench/ceiling/", CeilingView.as_view(), name="bench-ceiling-logged"),
    *product_urlpatterns,
]
