"""The error envelope holds everywhere: per-field messages (never a Python repr), unknown
body keys refused, a malformed `ordering` refused, and one `code` for every 404."""

from __future__ import annotations

import pytest

from tests.support.factories import client_for, give, make_user


@pytest.fixture
def api(alice):
    give(alice, "transactions", "read")
    give(alice, "transactions", "write")
    return client_for(alice)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "whenever"}, "params.since"),
        ({"limit": 0}, "params.limit"),
        ({"since": "2026-11-01", "until": "soon"}, "params.until"),
    ],
)
def test_report_parameter_errors_are_per_field_messages(api, params, field):
    response = api.post(
        "/api/v1/reports/", {"report_name": "top-products", "params": params}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert list(body["errors"]) == [field]
    message = body["errors"][field][0]
    assert "ErrorDetail" not in message and "{" not in message and message
    assert "ErrorDetail" not in body["detail"] and "{'" not in body["detail"]


def test_nested_validation_errors_of_any_view_are_flattened():
    """The class: a ValidationError with nested fields, wherever it is raised."""
    from rest_framework.exceptions import ValidationError

    from datalake.api.errors import exception_handler

    exc = ValidationError({"params": {"since": ["Bad date."], "rows": [{"x": ["No."]}]}})
    body = exception_handler(exc, {}).data
    assert body["errors"] == {"params.since": ["Bad date."], "params.rows.0.x": ["No."]}
    assert body["detail"] == "Invalid params.since, params.rows.0.x: Bad date."


@pytest.mark.parametrize("detail", [{}, [], [{}, {}]])
def test_a_validation_error_without_messages_still_has_one(detail):
    from rest_framework.exceptions import ValidationError

    from datalake.api.errors import exception_handler

    body = exception_handler(ValidationError(detail), {}).data
    assert body["detail"] and body["errors"] == {"non_field_errors": [body["detail"]]}


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/v1/reports/", {"report_name": "top-products", "params": {}, "colour": "red"}),
        ("/api/v1/auth/token/", {"username": "alice", "password": "alice-pw-123", "x": 1}),
        (
            "/api/v1/grants/",
            {"user": "alice", "resource": "transactions", "privilege": "read", "colour": "red"},
        ),
        ("/api/v1/ingestion/runs/", {"source": "transactions", "path": "x.json", "colour": 1}),
        (
            "/api/v1/pipeline/repush/",
            {"resource": "transactions", "transaction_id": "TX-1", "colour": 1},
        ),
        ("/api/v1/pipeline/repush-all/", {"resource": "transactions", "colour": 1}),
    ],
)
def test_unknown_top_level_body_keys_are_a_400_naming_them(api, staff, url, body):
    client = client_for(staff) if "grants" in url or "repush-all" in url else api
    response = client.post(url, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"].get("colour" if "colour" in body else "x") == [
        "Unknown field."
    ]


@pytest.mark.parametrize("ordering", ["--amount", "---amount", "-", "--", "- amount"])
def test_a_malformed_ordering_is_a_400(api, db, ordering):
    response = api.get("/api/v1/resources/transactions/rows/", {"ordering": ordering})
    assert response.status_code == 400, response.content
    assert "ordering" in response.json()["errors"]


def test_a_single_minus_still_orders_descending(api, db):
    assert api.get("/api/v1/resources/transactions/rows/?ordering=-amount").status_code == 200


LOOKUPS = [
    "/api/v1/resources/nope/",
    "/api/v1/resources/nope/rows/",
    "/api/v1/reports/999999/",
    "/api/v1/ml/trainings/999999/",
    "/api/v1/ml/models/nope/",
    "/api/v1/audit/requests/999999/",
    "/api/v1/ingestion/runs/999999/",
    "/api/v1/ingestion/runs/999999/rejects/",
    "/api/v1/pipeline/repush/999999/",
    "/api/v1/pipeline/jobs/999999/",
    "/api/v1/grants/999999/",
    "/api/v1/customers/99999/",
    "/api/v1/invoices/X1/",
    "/api/v1/stock-codes/XX/",
    "/api/v1/no-such-path/",
]


@pytest.mark.parametrize("url", LOOKUPS)
def test_every_404_has_the_code_not_found(staff, url):
    response = client_for(staff).get(url)
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"


def test_a_django_permission_denied_has_the_code_permission_denied():
    """The other Django exception DRF converts: its code comes from DRF's class too."""
    from django.core.exceptions import PermissionDenied

    from datalake.api.errors import exception_handler

    body = exception_handler(PermissionDenied("No."), {}).data
    assert body == {"detail": "No.", "code": "permission_denied"}


def test_a_revoked_token_delete_of_another_user_is_not_found(api, db):
    other = make_user("carol")
    from accounts.models import ApiToken

    token, _key = ApiToken.issue(other)
    response = api.delete(f"/api/v1/auth/tokens/{token.pk}/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
