"""The OpenAPI schema renders, validates, documents every operation, and the docs work offline."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command


@pytest.fixture(scope="module")
def schema(tmp_path_factory, django_db_blocker):
    path = tmp_path_factory.mktemp("schema") / "schema.yml"
    with django_db_blocker.unblock():
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_operation_has_a_description_and_an_example(schema):
    for path, method, operation in operations(schema):
        assert operation.get("description"), (path, method)
        responses = operation["responses"]
        ok = next(v for k, v in responses.items() if k.startswith("2"))
        content = next(iter(ok.get("content", {}).values()), {})
        if method != "delete":
            assert content.get("examples") or content.get("example"), (path, method)


def test_every_parameter_is_described(schema):
    for path, method, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), (path, method, parameter["name"])


def undescribed_fields(name: str, component: dict, path: str = ""):
    """`Component.field` for each property (nested ones too) without a description."""
    for field, prop in (component.get("properties") or {}).items():
        if not prop.get("description"):
            yield f"{name}.{path}{field}"
        inner = prop.get("items") if prop.get("type") == "array" else prop
        if isinstance(inner, dict) and inner.get("properties"):
            yield from undescribed_fields(name, inner, f"{path}{field}.")
    for key in ("allOf", "oneOf", "anyOf"):
        for part in component.get(key) or []:
            yield from undescribed_fields(name, part, path)


def test_every_field_of_every_component_is_described(schema):
    missing = [
        field
        for name, component in schema["components"]["schemas"].items()
        for field in undescribed_fields(name, component)
    ]
    assert not missing, f"{len(missing)} fields without a description: {missing}"


def test_per_table_filters_appear(schema):
    params = {
        p["name"]
        for p in schema["paths"]["/api/v1/resources/transactions/rows/"]["get"]["parameters"]
    }
    for name in ("payment_method", "country__in", "amount__gt", "customer_rating__lte", "status"):
        assert name in params
    assert "/api/v1/resources/retail_invoices/rows/" in schema["paths"]


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/v1/docs/", "/api/v1/redoc/"])
def test_docs_pages_use_local_assets(client, url):
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html


def test_quota_headers_and_429_are_documented_on_counted_operations(schema):
    rows = schema["paths"]["/api/v1/resources/transactions/rows/"]["get"]["responses"]
    headers = schema["components"]["headers"]
    for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy"):
        assert rows["200"]["headers"][name]["$ref"] == f"#/components/headers/{name}"
        assert headers[name]["description"] and "example" in headers[name]["schema"]
    assert "X-RateLimit-Rows-Remaining" in rows["200"]["headers"]
    assert "Retry-After" in rows["429"]["headers"]
    assert "quota_exceeded" in rows["429"]["description"]
    example = rows["429"]["content"]["application/json"]["example"]
    assert example["code"] == "quota_exceeded"
    token = schema["paths"]["/api/v1/auth/token/"]["post"]["responses"]
    assert "headers" not in token.get("200", {}) and "quota" not in token["429"]["description"]
