"""The data-path walk: no view or task can serve lake data without asking the access layer.

Every route of the URL resolver (the API and the HTML pages) and every Celery task of
ours is declared: a data path (`accounts.access.data_path`, saying which resources it
reads) or a view/task that serves no lake data (`serves_no_data`, with the reason;
third-party views by module in `accounts.access.paths.THIRD_PARTY`). Then each data
route is called, and each data task run, for a user without any grant, while
`accounts.access.observe` records the questions asked: each must ask, and answer with
a refusal or nothing.

How forgetting fails: a view added to a urls.py without a declaration makes
`test_every_route_and_task_is_declared` fail with its route and class
(`test_an_undeclared_view_is_caught` shows it on a made-up view). Checked by hand too:
removing `@data_path` from `SearchView` made it fail naming `api/v1/search/
datalake.search.views.SearchView`; removing it from `run_report` named `reports.run`.
A data path declared but not asking (a view reading the lake with no `Access` call)
fails `test_each_data_route_asks_and_gives_nothing` with its path.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, path, reverse
from rest_framework.views import APIView

from accounts.access import observe
from accounts.access.paths import DataPath, declaration_of, declaration_of_route
from datalake.celery import app as celery_app
from datalake.sharing import links
from tests.support.factories import client_for, make_user
from tests.support.routes import concrete as route_path
from tests.support.world import MARK

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def _walk(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern).lstrip("^").rstrip("$")
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route, pattern.callback


def endpoints(patterns=None) -> list[tuple[str, str, str | None, object]]:
    """(route, HTTP method, viewset action or None, view) for every route and method."""
    found = []
    for route, callback in _walk(get_resolver().url_patterns if patterns is None else patterns):
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        actions = getattr(callback, "actions", None)
        if actions:
            # DRF adds `head` (as `get`) to a viewset's actions on its first request.
            found += [(route, m, action, view) for m, action in actions.items() if m != "head"]
        elif view is not None:
            methods = [m for m in HTTP_METHODS if hasattr(view, m)] or ["get"]
            found += [(route, method, None, view) for method in methods]
        else:
            found.append((route, "get", None, callback))
    return found


def name_of(view) -> str:
    return f"{view.__module__}.{view.__qualname__}"


def undeclared_routes(patterns=None) -> list[str]:
    return sorted(
        f"{route} {name_of(view)}" + (f".{action}" if action else "")
        for route, _method, action, view in endpoints(patterns)
        if declaration_of_route(route, view, action) is None
    )


def our_tasks() -> dict:
    celery_app.loader.import_default_modules()
    return {n: t for n, t in celery_app.tasks.items() if not n.startswith("celery.")}


def test_every_route_and_task_is_declared():
    assert not undeclared_routes(), (
        "Declare each view with @data_path(...) or @serves_no_data(...) "
        "(accounts.access.paths):\n" + "\n".join(undeclared_routes())
    )
    tasks = our_tasks()
    missing = sorted(n for n, task in tasks.items() if declaration_of(task) is None)
    assert not missing, f"Declare these Celery tasks (accounts.access.paths): {missing}"
    assert {"reports.run", "ml.train", "ingestion.run"} <= set(tasks)


class Undeclared(APIView):
    def get(self, request):
        return None


def test_an_undeclared_view_is_caught():
    """What a forgotten declaration looks like: the walk names the route and the view."""
    patterns = [path("api/v1/new-data/", Undeclared.as_view()), *get_resolver().url_patterns]
    assert undeclared_routes(patterns) == [
        "api/v1/new-data/ tests.security.test_data_paths.Undeclared"
    ]


def data_routes() -> list[tuple[str, str, str | None]]:
    return sorted(
        (route, method, action)
        for route, method, action, view in endpoints()
        if isinstance(declaration_of_route(route, view, action), DataPath)
    )


def concrete(route: str) -> str:
    path_ = route_path(route)
    if "/ml/models/x/" in path_:
        return path_.replace("/x/", "/product-demand/")
    return path_.replace("/resources/x/", "/resources/transactions/")


# Valid bodies, so that a refusal comes from the access layer, not from validation.
BODIES = {
    "/api/v1/ingestion/runs/": {
        "source": "transactions",
        "path": "landing/transactions/2026-11-20.jsonl",
    },
    "/api/v1/reports/": {"report_name": "top-products", "params": {}},
    "/api/v1/ml/trainings/": {"model": "product-demand", "params": {}},
    "/api/v1/ml/models/product-demand/promote/": {"version": 1},
    "/api/v1/grants/": {"resource": "transactions", "user": "nobody", "privilege": "read"},
    "/api/v1/pipeline/repush-all/": {"resource": "transactions"},
}
DEFAULT_BODY = {"resource": "transactions", "transaction_id": f"{MARK}-TX-1", "customer_id": "9"}


def gives_nothing(path_: str, response) -> bool:
    if response.status_code in (403, 404):
        return True
    if response.status_code != 200 or "json" not in response.get("Content-Type", ""):
        return False
    body = response.json()
    if path_ == "/api/v1/search/":  # the answer repeats `q`, the marker
        return body["total"] == 0 and body["resources"] == []
    if MARK.encode() in response.content:
        return False
    if path_.startswith("/api/v1/resources/"):  # the catalog: names, with no privilege
        entries = body.get("results", [body])
        return all(entry["access"] == [] for entry in entries)
    if isinstance(body, dict) and "items" in body:  # Delta Sharing's listings
        return body["items"] == []
    if isinstance(body, dict) and "count" in body:
        return body["count"] == 0 and body["results"] == []
    return body == []


@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_each_data_route_asks_and_gives_nothing(world):
    nobody = make_user("nobody")
    api = client_for(nobody)
    pages = Client()
    pages.force_login(nobody)
    questions: list[tuple] = []
    undo = observe(lambda user, privilege, resource: questions.append((user, privilege, resource)))
    failures = []
    try:
        routes = data_routes()
        for route, method, _action in routes:
            path_ = concrete(route)
            if path_.startswith("/api/v1/delta-sharing/files/"):
                # a file URL signed for nobody: the signature holds, the grant does not
                token, _ = links.sign(nobody.pk, "transactions/v1/all/part-00000.parquet")
                path_ = reverse("sharing-file", args=[token])
            client = api if path_.startswith("/api/") else pages
            questions.clear()
            if method in ("get", "delete"):
                params = {"q": MARK, "since": "2000-01-01"} if "/search/" in path_ else {}
                response = getattr(client, method)(path_, params)
            else:
                body = BODIES.get(path_, DEFAULT_BODY)
                response = getattr(client, method)(path_, body, content_type="application/json")
            asked = [q for q in questions if q[0] == nobody]
            if not asked:
                failures.append(f"{method.upper()} {path_}: the access layer was not asked")
            elif not gives_nothing(path_, response):
                failures.append(
                    f"{method.upper()} {path_}: {response.status_code} gave data: "
                    f"{response.content[:300]!r}"
                )
    finally:
        undo()
    assert not failures, "\n".join(failures)
    assert len(routes) > 30


def _report(user):
    from metrics.models import Report

    return Report.objects.create(
        report_name="top-products", params={}, requested_by=user, status="running"
    )


def _report_computed_nothing(report) -> bool:
    from metrics.models import ReportRow

    report.refresh_from_db()
    return report.status == "failed" and not ReportRow.objects.filter(report=report).exists()


def _training(user):
    from metrics.ml.models import Training

    return Training.objects.create(model_name="product-demand", params={}, requested_by=user)


def _training_computed_nothing(training) -> bool:
    from metrics.ml.models import ModelVersion

    training.refresh_from_db()
    return training.status == "failed" and not ModelVersion.objects.exists()


# Each data task: the object it runs for (requested by a user without grants), and
# whether it computed nothing. A data task missing here fails the walk below.
TASK_RUNS = {
    "reports.run": (_report, _report_computed_nothing),
    "ml.train": (_training, _training_computed_nothing),
}


@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_each_data_task_asks_and_computes_nothing(world):
    tasks = our_tasks()
    data_tasks = sorted(n for n, t in tasks.items() if isinstance(declaration_of(t), DataPath))
    assert sorted(TASK_RUNS) == data_tasks, "Add each data task to TASK_RUNS"
    nobody = make_user("nobody")
    questions: list[tuple] = []
    undo = observe(lambda user, privilege, resource: questions.append((user, privilege, resource)))
    try:
        for name in data_tasks:
            make, computed_nothing = TASK_RUNS[name]
            target = make(nobody)
            questions.clear()
            tasks[name].apply(args=[target.pk])  # eagerly, in this process: the real service
            assert any(q[0] == nobody for q in questions), f"{name} did not ask the access layer"
            assert computed_nothing(target), f"{name} computed data for a user without grants"
    finally:
        undo()
