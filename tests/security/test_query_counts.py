"""SQL queries per request on every list endpoint of /api/v1/: pinned, and the same for a
page of 1 object and a full page of 10, for a staff user and for a grant holder.

An N+1 (a query per listed object: a grant check, a serializer's foreign key, a count)
makes the full page cost more than the page of one and fails here. The routes are walked
from the URL resolver: a new GET route must be pinned in PINS or named in NOT_LISTS
(details, non-list answers), or `test_every_list_route_is_pinned` fails.

Updating a pin: a pin is the most queries one request may make (the counts measured
when it was set); a change that adds or removes a query per request (not per object)
moves them. Run this file: a failure prints `<route> <who>: A queries for 1, B for 10
(pin P)` and the SQL of the full page. If B == A (the count does not grow with the page)
and the extra queries are intended, set the pin to A in PINS, in the same commit, saying
why; when a change saves queries, lower the pin to the new count so that it stays tight.
A count that grows with the page is an N+1: fix the code (`select_related`,
`prefetch_related`, one query for the page's grants or counts...), never the pin.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from datalake.catalog.sync import sync_resources
from datalake.models import (
    ProductDailySales,
    Resource,
    RetailCustomer,
    RetailInvoice,
    RetailInvoiceItem,
)
from ingestion.models import IngestionRun, Reject
from lineage import writer as request_log_writer
from metrics.ml.models import MLModel, ModelVersion, Training
from metrics.models import Report, ReportRow
from tests.support.factories import client_for, give, make_user
from tests.support.lake import merge, pipeline_batch, row, tx, write_lines
from tests.support.routes import api_patterns

pytestmark = pytest.mark.django_db(transaction=True)

FULL = 10  # API.md: page_size is at most 10


def results(body) -> int:
    return len(body["results"])


@dataclass
class Pin:
    """How to ask a list for 1 object and for FULL objects, and the pinned counts."""

    path: str
    one: dict  # query parameters giving a page of 1 object
    full: dict  # ... and a full page
    staff: int  # the most queries a request of a staff user makes
    holder: int | None  # ... of a grant holder; None: staff only (403 for others)
    size: object = results  # the number of objects in an answer's body
    params: dict = field(default_factory=dict)  # parameters of both requests
    shrink: object = None  # between the full page and the page of one: leave one object
    per_object: int = 0  # queries allowed per listed object (a known cost, said where set)


def _versions(body) -> int:
    return sum(len(model["versions"]) for model in body["results"])


def paged(path, staff, holder, per_object=0, **params) -> Pin:
    return Pin(
        path, {"page_size": 1}, {"page_size": FULL}, staff, holder, params=params,
        per_object=per_object,
    )  # fmt: skip


# route (as the walk names it) -> the pin. Counts measured on this branch; see the
# docstring for how to update one.
PINS: dict[str, Pin] = {
    # Each resource's `row_count` counts its own table: 2 queries per resource (the
    # planner's estimate, then an exact count of a small table), LAKE_COUNT_CACHE_SECONDS
    # off in tests. Known cost, allowed here; one query per page would be better.
    "/api/v1/resources/": paged("/api/v1/resources/", 7, 7),
    # rows/ and versions/ read their data state (the ETag, X-Data-Version) before the page;
    # rows/ checks after it that no version committed meanwhile (datalake/query/rows.py).
    # A table's current version rides on the token lookup (datalake.platform.piggyback).
    "/api/v1/resources/x/rows/": paged("/api/v1/resources/transactions/rows/", 7, 7),
    "/api/v1/resources/x/rows/ (raw)": paged("/api/v1/resources/raw_transactions/rows/", 4, 4),
    "/api/v1/resources/x/versions/": paged("/api/v1/resources/transactions/versions/", 5, 5),
    "/api/v1/resources/x/versions/1/rows/": paged(
        "/api/v1/resources/transactions/versions/15/rows/", 7, 7
    ),
    "/api/v1/resources/x/access-log/": paged("/api/v1/resources/transactions/access-log/", 5, 5),
    "/api/v1/grants/": paged("/api/v1/grants/", 5, 6, resource="transactions"),
    "/api/v1/auth/tokens/": paged("/api/v1/auth/tokens/", 5, 5),
    "/api/v1/audit/requests/": paged("/api/v1/audit/requests/", 5, None),
    "/api/v1/reports/": paged("/api/v1/reports/", 6, 6),
    "/api/v1/reports/1/result/": paged("/api/v1/reports/{report}/result/", 6, 6),
    "/api/v1/reports/types/": Pin("/api/v1/reports/types/", {}, {}, 3, 3, size=None),
    "/api/v1/ingestion/runs/": paged("/api/v1/ingestion/runs/", 5, 6),
    "/api/v1/ingestion/runs/1/rejects/": paged("/api/v1/ingestion/runs/{run}/rejects/", 6, 7),
    "/api/v1/ml/models/": Pin(
        "/api/v1/ml/models/",
        {},
        {},
        6,
        7,
        size=_versions,
        shrink=lambda: ModelVersion.objects.filter(version__gt=1).delete(),
    ),
    "/api/v1/ml/models/x/versions/": paged("/api/v1/ml/models/product-demand/versions/", 5, 5),
    "/api/v1/ml/trainings/": paged("/api/v1/ml/trainings/", 5, 6),
    "/api/v1/search/": Pin(
        "/api/v1/search/",
        {"q": "TX-0003"},
        {"q": "Belgium"},
        16,
        17,
        size=lambda body: sum(len(r["results"]) for r in body["resources"]),
        params={"since": "2026-01-01"},
    ),
    # Metrics: one query more per resource read, its data state (the ETag, issue 21).
    "/api/v1/metrics/spent-per-user-type/": paged("/api/v1/metrics/spent-per-user-type/", 7, 7),
    "/api/v1/metrics/top-products/": Pin(
        "/api/v1/metrics/top-products/", {"x": 1}, {"x": FULL}, 5, 5
    ),
    "/api/v1/metrics/products/x/sales/": Pin(
        "/api/v1/metrics/products/P1/sales/",
        {"days": 1},
        {"days": FULL},
        6,
        6,
        size=lambda body: len(body["per_day"]),
        params={"until": "2026-11-30"},
    ),
    "/api/v1/customers/": paged("/api/v1/customers/", 5, 5),
    "/api/v1/customers/x/invoices/": paged("/api/v1/customers/C1/invoices/", 6, 6),
    "/api/v1/invoices/x/items/": paged("/api/v1/invoices/I1/items/", 6, 6),
    "/api/v1/delta-sharing/shares/lake/all-tables": Pin(
        "/api/v1/delta-sharing/shares/lake/all-tables",
        {"maxResults": 1},
        {"maxResults": FULL},
        9,
        9,
        size=lambda body: len(body["items"]),
    ),
    "/api/v1/invoices/x/": Pin(
        "/api/v1/invoices/{invoice}/",
        {"invoice": "I2"},
        {"invoice": "I1"},
        4,
        4,
        size=lambda body: len(body["items"]),
    ),
}

# GET routes that answer one object (or a fixed shape), with no list that grows.
NOT_LISTS = {
    "/api/v1/": "the API root: links",
    "/api/v1/audit/requests/1/": "one request",
    "/api/v1/audit/verify/": "a walk of the chain: a fixed number of statements, one cursor",
    "/api/v1/customers/x/": "one customer",
    "/api/v1/grants/1/": "one grant",
    "/api/v1/ingestion/runs/1/": "one run",
    "/api/v1/invoices/x/items/x/": "one item",
    "/api/v1/metrics/spent-last-minutes/": "one sum",
    "/api/v1/ml/models/x/": "one model (its versions as in the list, pinned there)",
    "/api/v1/ml/trainings/1/": "one training",
    "/api/v1/pipeline/jobs/1/": "one re-push job",
    "/api/v1/pipeline/repush/1/": "one re-push",
    "/api/v1/reports/1/": "one report",
    "/api/v1/reports/1/result.csv": "a stream of the whole result (no page)",
    "/api/v1/resources/x/": "one resource",
    "/api/v1/stock-codes/x/": "one stock code",
    "/api/v1/delta-sharing/shares": "the one share",
    "/api/v1/delta-sharing/shares/lake": "the one share",
    "/api/v1/delta-sharing/shares/lake/schemas": "the two schemas (resource kinds)",
    "/api/v1/delta-sharing/shares/lake/schemas/tables/tables/transactions/metadata": "one "
    "table's schema",
    "/api/v1/delta-sharing/shares/lake/schemas/tables/tables/transactions/version": "one number",
    "/api/v1/delta-sharing/shares/lake/schemas/tables/tables/transactions/changes": "one query "
    "for the versions, then files on disk (a version's are written once, by its first reader)",
    "/api/v1/delta-sharing/profile/": "the caller's profile",
    "/api/v1/delta-sharing/shares/lake/schemas/tables/tables": "all-tables' query (pinned "
    "there) for one resource kind, of which there are fewer than a full page",
}


def _get_routes() -> set[str]:
    """The routes of the walk that answer GET (a view with a get handler or action)."""
    found = set()
    for path, pattern in api_patterns().items():
        callback = pattern.callback
        actions = getattr(callback, "actions", None)
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if ("get" in actions) if actions is not None else (view is None or hasattr(view, "get")):
            found.add(path)
    return found


def test_every_list_route_is_pinned():
    pinned = {route.split(" ")[0] for route in PINS}
    missing = _get_routes() - pinned - set(NOT_LISTS)
    assert not missing, f"GET routes with neither a pin (PINS) nor a reason (NOT_LISTS): {missing}"
    assert not pinned - _get_routes(), "pins of routes that are gone"
    assert not set(NOT_LISTS) - _get_routes(), "NOT_LISTS names routes that are gone"


@pytest.fixture
def world(lake, staff):
    """More than FULL objects in every list, visible to staff and to `holder`: `read` on
    every resource and `grant` on transactions (for its grants and its access log)."""
    records = [tx(i, country="BE" if i < 12 else "FR") for i in range(30)]
    for i in range(0, 30, 2):  # 15 versions of transactions
        pipeline_batch(*records[i : i + 2])
    write_lines(lake / "landing/transactions/2026-11-20.jsonl", records)
    sync_resources()
    merge([row(i, user_id=f"U{i}", product_id=f"P{i % 12}") for i in range(100, 130)])
    for day in range(1, 31):
        ProductDailySales.objects.create(
            product_id="P1", date=dt.date(2026, 11, day), times_sold=day
        )
    holder = make_user("holder")
    for resource in Resource.objects.all():
        give(holder, resource.name, "read")
    give(holder, "transactions", "grant")
    for i in range(12):  # grants on transactions that the holder sees
        give(make_user(f"other{i}"), "transactions", "read")
    ids = {}
    for user in (staff, holder):
        for _ in range(12):
            client_for(user)  # a token each
        report = None
        for _ in range(12):
            report = Report.objects.create(
                report_name="top-products", status="succeeded", requested_by=user,
                columns=["product_id", "units"], row_count=12,
            )  # fmt: skip
        ReportRow.objects.bulk_create(
            ReportRow(report=report, n=n, data={"product_id": f"P{n}", "units": n})
            for n in range(1, 13)
        )
        ids[user.username] = {"report": report.pk}
        run = None
        for i in range(12):
            run = IngestionRun.objects.create(
                source="transactions", path=f"landing/transactions/{i}.jsonl", requested_by=user
            )
        Reject.objects.bulk_create(
            Reject(run=run, line=n, raw="{}", reason="missing_field: amount") for n in range(12)
        )
        ids[user.username]["run"] = run.pk
        Training.objects.bulk_create(
            Training(model_name="product-demand", requested_by=user) for _ in range(12)
        )
    model, now = MLModel.objects.get_or_create(name="product-demand")[0], timezone.now()
    ModelVersion.objects.bulk_create(
        ModelVersion(model=model, version=v, path=f"ml/product-demand/{v}", trained_at=now)
        for v in range(1, 13)
    )
    model.current_version = 12
    model.save()
    for i in range(12):
        RetailCustomer.objects.create(customer_id=f"C{i + 1}", country="France")
    for i in range(12):
        RetailInvoice.objects.create(
            invoice_no=f"I{i + 1}", invoice_date=dt.datetime(2011, 12, 1, tzinfo=dt.UTC),
            customer_id="C1", country="France",
        )  # fmt: skip
    for line in range(1, FULL + 1):  # the invoice's detail lists all its items
        RetailInvoiceItem.objects.create(
            invoice_no="I1", line=line, stock_code="S1", quantity=1, unit_price=Decimal(2)
        )
    RetailInvoiceItem.objects.create(
        invoice_no="I2", line=1, stock_code="S1", quantity=1, unit_price=Decimal(2)
    )
    for _ in range(12):  # entries in the request log (audit, access log)
        client_for(staff).get("/api/v1/resources/transactions/rows/", {"country": "FR"})
    assert request_log_writer.flush()
    return {"staff": staff, "holder": holder, "ids": ids}


def _count(client, path, params) -> tuple[int, object, list[str]]:
    client.get(path, params)  # warm: tokens' last use, caches of the first request
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, params)
    assert response.status_code == 200, (path, params, response.content[:500])
    return len(queries), response.json(), [str(q["sql"])[:200] for q in queries]


@pytest.mark.parametrize("route", sorted(PINS))
def test_queries_per_list_request_are_pinned_and_do_not_grow_with_the_page(world, route):
    pin = PINS[route]
    users = [who for who in ("staff", "holder") if getattr(pin, who) is not None]
    counts: dict[tuple[str, str], tuple[int, list[str]]] = {}
    for size, extra in (("full", pin.full), ("one", pin.one)):
        if size == "one" and pin.shrink is not None:
            pin.shrink()
        for who in users:
            ids = world["ids"][world[who].username]
            path = pin.path.format(**ids, **extra)
            params = {
                **pin.params,
                **{k: v for k, v in extra.items() if f"{{{k}}}" not in pin.path},
            }
            n, body, sql = _count(client_for(world[who]), path, params)
            if pin.size is not None:
                assert pin.size(body) == (1 if size == "one" else FULL), (who, size, body)
            counts[size, who] = (n, sql)
    failures = []
    for who in users:
        limit = getattr(pin, who)
        (one, _), (full, sql) = counts["one", who], counts["full", who]
        grows = full > one + pin.per_object * (FULL - 1)
        if grows or one > limit:
            failures.append(f"{route} {who}: {one} queries for 1, {full} for {FULL} (pin {limit})")
            failures += sql
    assert not failures, "\n".join(failures)
