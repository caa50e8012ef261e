"""The project's URLs plus views that fail outside DRF's handling, under /api/ and not."""

from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import Http404
from django.urls import path

from datalake.urls import urlpatterns as project_urlpatterns


def _recurse(n: int) -> int:
    return _recurse(n + 1)


def recursion(request):
    return _recurse(0)


def plain_boom(request):
    raise RuntimeError("boom")


def plain_404(request):
    raise Http404("no such thing")


def plain_403(request):
    raise PermissionDenied


def plain_suspicious(request):
    raise SuspiciousOperation("odd")


VIEWS = {
    "recursion": recursion,
    "plain-boom": plain_boom,
    "plain-404": plain_404,
    "plain-403": plain_403,
    "plain-suspicious": plain_suspicious,
}

urlpatterns = [
    *[path(f"api/v1/edge/{name}/", view) for name, view in VIEWS.items()],
    *[path(f"edge-page/{name}/", view) for name, view in VIEWS.items()],
    *project_urlpatterns,
]
