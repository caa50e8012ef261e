"""Without a grant, a user gets nothing of the data from any endpoint.

Every /api/v1/ route is walked from the URL resolver. Routes that serve no
resource data are listed here with what a user without grants must get; every
other route must answer 403 to alice, who holds no grant. An endpoint added later
without the grant check fails this test until it is either checked or listed.
"""

from __future__ import annotations

import pytest

from lineage.models import RequestLog
from tests.support.factories import client_for
from tests.support.routes import api_routes

# route -> status for a user with no grant (GET, or POST where GET is not allowed)
NO_RESOURCE_DATA = {
    "/api/v1/": 200,
    "/api/v1/resources/": 200,  # the catalog lists every resource to every user
    "/api/v1/resources/x/": 404,  # (x is unknown; a real name is tested below)
    "/api/v1/grants/": 200,  # the caller's own grants only
    "/api/v1/grants/1/": 404,
    "/api/v1/auth/tokens/": 200,  # the caller's own tokens only
    "/api/v1/auth/tokens/1/": 405,  # DELETE only
    "/api/v1/auth/tokens/rotate/": 405,  # POST only; rotating one's own token
    "/api/v1/reports/": 200,  # the caller's own reports only (POST needs read: test_reports)
    "/api/v1/reports/types/": 200,  # the registry, no data
    "/api/v1/ml/trainings/": 200,  # the caller's own trainings only (POST needs read: test_ml)
    "/api/v1/search/": 400,  # q and since required; searches readable resources only
    "/api/v1/audit/requests/": 403,  # staff only
    "/api/v1/audit/requests/1/": 403,
    # Delta Sharing: the share and its schemas are names; the table lists hold only the
    # readable tables (empty here; tests/datalake/test_sharing_protocol.py); the
    # profile is the caller's own token.
    "/api/v1/delta-sharing/shares": 200,
    "/api/v1/delta-sharing/shares/lake": 200,
    "/api/v1/delta-sharing/shares/lake/schemas": 200,
    "/api/v1/delta-sharing/shares/lake/all-tables": 200,
    "/api/v1/delta-sharing/shares/lake/schemas/tables/tables": 200,
    "/api/v1/delta-sharing/profile/": 200,
}


# Lists of data about resources, filtered to what the caller may read: a user without
# grants gets 200 and an empty list although such data exists (see the test below).
FILTERED_LISTS = {"/api/v1/ingestion/runs/", "/api/v1/ml/models/"}
# Detail routes of objects that belong to a resource: a user who may not read the
# resource gets 404 (tested with real objects where each feature is tested):
# ingestion runs (tests/ingestion/test_ingestion_runs.py).
OBJECT_ROUTES = {
    "/api/v1/ingestion/runs/1/",
    "/api/v1/ingestion/runs/1/rejects/",
    "/api/v1/pipeline/repush/1/",  # only the requester and staff (test_restricted_paths.py)
    "/api/v1/pipeline/jobs/1/",
    "/api/v1/reports/1/",  # only the requester and staff see a report (test_reports.py)
    "/api/v1/reports/1/result/",
    "/api/v1/reports/1/result.csv",
    "/api/v1/ml/trainings/1/",  # only the requester and staff see a training (test_ml.py)
    # a model: 404 if unknown, 403 without read on the resource it learns from (test_ml.py)
    "/api/v1/ml/models/x/",
    "/api/v1/ml/models/x/versions/",
    "/api/v1/ml/models/x/predict/",
    "/api/v1/ml/models/x/promote/",  # 403 without read and write on it (test_ml.py)
}


def data_routes() -> list[str]:
    listed = set(NO_RESOURCE_DATA) | FILTERED_LISTS | OBJECT_ROUTES
    return [r for r in api_routes() if r not in listed]


def test_filtered_lists_show_a_user_without_grants_nothing(alice, staff):
    from ingestion.models import IngestionRun

    IngestionRun.objects.create(source="transactions", path="landing/transactions/x.jsonl")
    for route in FILTERED_LISTS:
        assert client_for(staff).get(route).json()["count"] >= 1
        body = client_for(alice).get(route).json()
        assert (body["count"], body["results"]) == (0, [])


def test_object_routes_are_routes():
    assert set(api_routes()) >= OBJECT_ROUTES


def test_routes_serving_no_data_are_still_routes():
    assert set(api_routes()) >= set(NO_RESOURCE_DATA) | FILTERED_LISTS


@pytest.mark.parametrize("route", sorted(NO_RESOURCE_DATA))
def test_routes_serving_no_resource_data(alice, route):
    assert client_for(alice).get(route).status_code == NO_RESOURCE_DATA[route]


@pytest.mark.parametrize("route", data_routes())
@pytest.mark.parametrize("resource", ["transactions", "sales"])
def test_every_data_endpoint_refuses_a_user_without_grant(alice, route, resource):
    path = route.replace("/x/", f"/{resource}/")
    client = client_for(alice)
    response = client.get(path)
    if response.status_code == 405:
        response = client.post(path, {"resource": resource}, format="json")
    assert response.status_code == 403, (path, response.status_code, response.content[:300])
    body = response.json()
    # nothing of the data, no counts (Delta Sharing repeats them as errorCode/message)
    assert set(body) - {"errorCode", "message"} == {"detail", "code"}
    entry = RequestLog.objects.order_by("-id").first()
    assert (entry.username, entry.path, entry.status_code) == ("alice", path, 403)


def test_the_catalog_entry_of_a_real_resource_shows_no_data(alice):
    body = client_for(alice).get("/api/v1/resources/transactions/").json()
    assert body["access"] == []
