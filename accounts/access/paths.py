"""The registry of data paths: every view and Celery task says whether it serves lake data.

A view or task that returns or computes data of the lake declares itself with
`@data_path("how it finds the resources it reads")`: it asks `Access` about them
before it answers. Every other one says why it serves no lake data with
`@serves_no_data("reason")`. A viewset whose actions differ declares the class a data
path and lists its other actions with `no_data={"action": "reason"}`.

`tests/security/test_data_paths.py` walks the URL resolver and the Celery task
registry: a route or task of ours with neither declaration fails the suite with its
name, and each data path is called (a route) or run (a task) for a user without grants
while `observe` records the questions: it must ask, and give nothing.

Third-party views (the admin, the schema and docs pages, DRF's login) are listed in
`THIRD_PARTY` by module, with the reason they serve no data a grant governs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Modules of views we do not write, and why they are outside the walk.
THIRD_PARTY = {
    "django.contrib.admin": "the Django admin: staff only, who may see everything by contract",
    "django.contrib.auth.views": "the browsable API's login and logout pages",
    "drf_spectacular.views": "the OpenAPI schema and its docs pages: code, no data",
}
# Routes (by prefix) served by a third-party site whose views come from many modules.
THIRD_PARTY_ROUTES = {
    "admin/": "the Django admin: staff only, who may see everything by contract",
}


@dataclass(frozen=True)
class DataPath:
    reads: str  # which resources it reads, and how it finds them
    no_data: dict[str, str] = field(default_factory=dict)  # action -> why it serves none

    def serves_data(self, action: str | None) -> bool:
        return action not in self.no_data


def data_path(reads: str, *, no_data: dict[str, str] | None = None):
    """Declare a view class, view function or task function a data path."""

    def mark(target):
        target.data_path = DataPath(reads, dict(no_data or {}))
        return target

    return mark


def serves_no_data(reason: str):
    """Declare a view or task that serves no lake data, and why."""

    def mark(target):
        target.serves_no_data = reason
        return target

    return mark


def declaration_of(target, action: str | None = None) -> DataPath | str | None:
    """The target's declaration for `action`: its DataPath, the reason it serves no
    data, or None (undeclared). `target`: a view class or function, or a Celery task."""
    module = ""
    while target is not None:  # a decorated view or a Celery task: down to the function
        found = getattr(target, "data_path", None)
        if isinstance(found, DataPath):
            return found.no_data.get(action, found) if action else found
        reason = getattr(target, "serves_no_data", None)
        if isinstance(reason, str) and reason:
            return reason
        module = getattr(target, "__module__", "") or ""
        target = getattr(target, "__wrapped__", None)
    return next((why for prefix, why in THIRD_PARTY.items() if module.startswith(prefix)), None)


def declaration_of_route(route: str, target, action: str | None = None) -> DataPath | str | None:
    """`declaration_of` for a URL route (the third-party sites listed by prefix)."""
    for prefix, why in THIRD_PARTY_ROUTES.items():
        if route.startswith(prefix):
            return why
    return declaration_of(target, action)
