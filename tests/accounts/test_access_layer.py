"""The access layer (accounts/access/): one definition of a live grant, the listing
rules, and the lint that keeps Grant reads inside it.

- The SQL fast path (the caller's live grants read by the token lookup, then used by
  every privilege question of the request) and the ORM path answer the same on
  generated cases, and both answer what the rules say (an oracle written from API.md).
- No module outside the layer reads Grant rows.
- `Model.objects.readable_by(user)` has a rule for every model that lists.
- Validating a grant writes nothing.
"""

from __future__ import annotations

import ast
import datetime as dt
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.access import Access, ReadableQuerySet
from accounts.access.grants import grant_cache_scope, live_grants_of
from accounts.access.restrictions import combine
from accounts.models import Grant, Privilege
from datalake.models import Resource
from tests.support.factories import client_for, give, make_user

ROOT = Path(__file__).resolve().parents[2]
PRIVILEGES = [p.value for p in Privilege]
RESOURCES = ("transactions", "products", "retail_customers")
RESTRICTIONS = {
    "transactions": (
        {"columns": ["country", "quantity", "user_id"]},
        {"row_filter": {"country": ["FR"]}},
        {"masked": ["user_id"]},
        {"columns": ["country", "user_id"], "masked": ["user_id"],
         "row_filter": {"country": ["FR", "DE"]}},
        {"row_filter": {"quantity": [1, 2]}},
    ),
    "products": (
        {"columns": ["title", "category"]},
        {"row_filter": {"category": ["books"]}},
        {"masked": ["title"]},
    ),
    "retail_customers": ({"masked": ["customer_id"]}, {"row_filter": {"country": ["FR"]}}),
}  # fmt: skip


# --- 1. the SQL fast path and the ORM path agree ------------------------------------
@dataclass(frozen=True)
class G:
    """One grant of a case. holder: "user", "a"/"b" (groups the user is in) or "other"
    (a group it is not in); expiry: "none", "past" or "future"."""

    resource: str
    privilege: str = "read"
    holder: str = "user"
    expiry: str = "none"
    revoked: bool = False
    restriction: dict = field(default_factory=dict, hash=False)

    @property
    def live_for_user(self) -> bool:
        return not self.revoked and self.expiry != "past" and self.holder != "other"


@dataclass
class Case:
    name: str
    grants: list[G]
    staff: bool = False


def named_cases() -> list[Case]:
    t, p = "transactions", "products"
    return [
        Case("no grant", []),
        Case("direct", [G(t)]),
        Case("via a group", [G(t, holder="a")]),
        Case("via a group it is not in", [G(t, holder="other")]),
        Case("in two groups",
             [G(t, holder="a"), G(p, "write", holder="b"), G(t, "grant", holder="b")]),
        Case("expired", [G(t, expiry="past"), G(p, "write", holder="a", expiry="past")]),
        Case("expiring in the future",
             [G(t, expiry="future"), G(p, "grant", holder="a", expiry="future")]),
        Case("revoked", [G(t, revoked=True), G(p, holder="a", revoked=True), G(p, "write")]),
        Case("restricted columns", [G(t, restriction=RESTRICTIONS[t][0])]),
        Case("restricted rows", [G(t, restriction=RESTRICTIONS[t][1])]),
        Case("masked", [G(t, holder="a", restriction=RESTRICTIONS[t][2])]),
        Case("several combine", [G(t, restriction=r) for r in RESTRICTIONS[t][1:4]]),
        Case("restricted and whole", [G(t, restriction=RESTRICTIONS[t][3]), G(t, holder="b")]),
        Case("a restricted grant expired",
             [G(t), G(t, expiry="past", restriction=RESTRICTIONS[t][1])]),
        Case("staff", [G(t, restriction=RESTRICTIONS[t][1])], staff=True),
        Case("staff without grants", [], staff=True),
    ]  # fmt: skip


def random_cases(count: int, seed: int = 18) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for index in range(count):
        grants = []
        for _ in range(rng.randint(1, 6)):
            resource = rng.choice(RESOURCES)
            privilege = rng.choice(PRIVILEGES)
            restricted = privilege == "read" and rng.random() < 0.5
            grants.append(
                G(
                    resource,
                    privilege,
                    holder=rng.choice(["user", "user", "a", "b", "other"]),
                    expiry=rng.choice(["none", "none", "past", "future"]),
                    revoked=rng.random() < 0.15,
                    restriction=rng.choice(RESTRICTIONS[resource]) if restricted else {},
                )
            )
        cases.append(Case(f"random {index}", grants, staff=rng.random() < 0.05))
    return cases


def make_case(index: int, case: Case):
    user = make_user(f"case{index}", is_staff=case.staff)
    groups = {k: Group.objects.create(name=f"case{index}-{k}") for k in ("a", "b", "other")}
    user.groups.add(groups["a"], groups["b"])
    now = timezone.now()
    day, minute = dt.timedelta(days=1), dt.timedelta(minutes=1)
    expiries = {"none": None, "past": now - minute, "future": now + day}
    for spec in case.grants:
        grant = give(
            user if spec.holder == "user" else groups[spec.holder],
            spec.resource,
            spec.privilege,
            expires_at=expiries[spec.expiry],
            **spec.restriction,
        )
        if spec.revoked:
            grant.delete()
    return user


def normal(restriction) -> dict | None:
    """A restriction's description (as the catalog gives it), None if unrestricted."""
    return restriction.describe() if restriction.restricted else None


def expected(case: Case) -> dict:
    """The oracle: {resource: (privileges, restriction)} from the case's specification."""
    answer = {}
    for resource in RESOURCES:
        if case.staff:
            answer[resource] = (PRIVILEGES, None)
            continue
        live = [g for g in case.grants if g.live_for_user and g.resource == resource]
        held = [p for p in PRIVILEGES if any(g.privilege == p for g in live)]
        reads = [Grant(**{"masked": [], **g.restriction}) for g in live if g.privilege == "read"]
        answer[resource] = (held, normal(combine(reads)) if reads else None)
    return answer


class Statements:
    """The SQL text of every statement run inside (prepared ones too)."""

    def __enter__(self):
        self.sql: list[str] = []
        self._wrapper = connection.execute_wrapper(self)
        self._wrapper.__enter__()
        return self

    def __exit__(self, *exc):
        self._wrapper.__exit__(*exc)

    def __call__(self, execute, sql, params, many, context):
        self.sql.append(sql)
        return execute(sql, params, many, context)


def through_token(user) -> dict:
    """The SQL fast path: a real token request per resource (the catalog entry names the
    caller's privileges and restriction); the token lookup is its only grant query."""
    client = client_for(user)
    answer = {}
    for resource in RESOURCES:
        with Statements() as statements:
            response = client.get(f"/api/v1/resources/{resource}/")
        assert response.status_code == 200, response.content
        grant_reads = [sql for sql in statements.sql if "accounts_grant" in sql]
        assert len(grant_reads) == 1 and "key_hash" in grant_reads[0], grant_reads
        body = response.json()
        answer[resource] = (body["access"], body["restrictions"])
    return answer


def through_orm(user) -> dict:
    """The ORM path (`live_grants_of`), and the policy object outside a request."""
    grants = list(live_grants_of(user).select_related("resource").order_by("id"))
    held = Access(user).privileges_on(list(RESOURCES))  # ORM outside a request
    with grant_cache_scope():  # as a request without a token: several resources at once
        Access(user).prefetch(RESOURCES)
        many = {r: normal(Access(user).restriction(r)) for r in RESOURCES}
    answer = {}
    for resource in RESOURCES:
        mine = [g for g in grants if g.resource.name == resource]
        reads = [g for g in mine if g.privilege == "read"]
        orm = (
            [p for p in PRIVILEGES if any(g.privilege == p for g in mine)],
            normal(combine(reads)) if reads else None,
        )
        if user.is_staff:
            orm = (PRIVILEGES, None)  # staff hold everything, grants or not
        policy = (held[resource], normal(Access(user).restriction(resource)))
        assert orm == policy, (resource, orm, policy)  # READ_GRANTS_SQL
        assert orm[1] == many[resource], (resource, orm, many)  # READ_GRANTS_MANY_SQL
        answer[resource] = orm
    return answer


def test_sql_fast_path_and_orm_path_agree_on_generated_cases(db):
    cases = named_cases() + random_cases(30)
    for index, case in enumerate(cases):
        user = make_case(index, case)
        want = expected(case)
        assert through_token(user) == want, (case.name, case.grants)
        assert through_orm(user) == want, (case.name, case.grants)


# --- 2. nothing outside the layer reads Grant rows -----------------------------------
APPS = ("accounts", "datalake", "ingestion", "metrics", "lineage")
ALLOWED = ("accounts/access/", "accounts/models.py")
GRANT_READS = [
    (
        re.compile(
            r"\bGrant\.(objects|_default_manager|_base_manager)\b(?!\.(create|none|readable_by)\()"
        ),
        "Grant manager",
    ),
    (re.compile(r"\bgrants__"), "a `grants__` lookup"),
    (re.compile(r"(?<!access)\.grants(_given)?\b"), "a `.grants` related manager"),
    (re.compile(r"accounts_grant"), "SQL naming accounts_grant"),
    (re.compile(r"\bGrantQuerySet\b|\.held_by\("), "the grant queryset"),
]


def grant_reads(path: str, source: str) -> list[str]:
    """`path:line: what` for each read of Grant rows in `source` (code, not comments or
    docstrings: a module may say that it does not read grants)."""
    prose = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                prose.update(range(body[0].lineno, body[0].end_lineno + 1))
    found = []
    for number, line in enumerate(source.splitlines(), 1):
        code = line.split("#", 1)[0]
        if number in prose:
            continue
        for pattern, what in GRANT_READS:
            if pattern.search(code):
                found.append(f"{path}:{number}: {what}: {line.strip()}")
    return found


def app_modules():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" in relative or relative.startswith(ALLOWED):
                continue
            yield relative, path.read_text()


def test_the_lint_finds_each_kind_of_grant_read():
    sample = '''"""Grant.objects in a docstring is prose."""
x = Grant.objects.filter(user=u)
y = Resource.objects.filter(grants__user=u)
z = user.grants.all()
from accounts.access.grants import live_grants_of  # the layer's own module: fine
cursor.execute("SELECT * FROM accounts_grant")
w = Grant._default_manager.all()
Grant.objects.create(user=u)  # a write: allowed
Grant.objects.readable_by(user)  # the layer's rule: allowed
'''
    found = grant_reads("app/x.py", sample)
    assert [f.split(":")[1] for f in found] == ["2", "3", "4", "6", "7"], found


def test_only_the_access_layer_reads_grant_rows():
    found = [hit for path, source in app_modules() for hit in grant_reads(path, source)]
    why = "Grant rows read outside accounts/access/ (ask the access layer instead):"
    assert not found, "\n".join([why, *found])


# --- 3. readable_by: a rule for every model that lists -------------------------------
def test_every_readable_model_has_its_rule(db):
    from accounts.access.rules import _rules

    readable = [
        m for m in apps.get_models() if isinstance(m._default_manager.all(), ReadableQuerySet)
    ]
    labels = {m._meta.label for m in readable}
    assert labels >= {
        "datalake.Resource", "accounts.Grant", "metrics.Report", "metrics.Training",
        "ingestion.IngestionRun", "ingestion.RepushRequest", "ingestion.RepushJob",
        "lineage.RequestLog",
    }  # fmt: skip
    assert labels == {label for label, _action in _rules}


def test_readable_by_resources_and_request_log(db, alice, staff):
    from django.contrib.auth.models import AnonymousUser

    from lineage.models import RequestLog

    give(alice, "transactions")
    give(alice, "products", "grant")
    give(alice, "retail_customers", "grant")
    give(alice, "retail_customers", row_filter={"country": ["FR"]})
    for name in RESOURCES:
        RequestLog.objects.create(
            at=timezone.now(), method="GET", path=f"/{name}/", status_code=200,
            duration_ms=1.0, resource=name,
        )  # fmt: skip
    assert set(Resource.objects.readable_by(alice).values_list("name", flat=True)) == {
        "transactions",
        "retail_customers",
    }
    # The log of what it holds `grant` on, but not where its read is restricted.
    assert list(RequestLog.objects.readable_by(alice).values_list("resource", flat=True)) == [
        "products"
    ]
    assert RequestLog.objects.readable_by(staff).count() == 3
    assert Resource.objects.readable_by(staff).count() == Resource.objects.count()
    assert not Resource.objects.readable_by(AnonymousUser()).exists()


# --- 4. validating a grant writes nothing ---------------------------------------------
def test_validating_a_grant_writes_nothing(lake, alice):
    for folder in ("transactions", "sales"):
        (lake / "landing" / folder).mkdir()
    raw, _ = Resource.objects.get_or_create(
        name="raw_transactions", defaults={"kind": "files", "source": "transactions"}
    )
    Resource.objects.filter(name="raw_sales").delete()  # what a catalog sync would add
    grants = [
        Grant(
            user=alice,
            resource=raw,
            privilege="read",
            row_filter={"country": ["FR"]},
            granted_by=alice,
        ),
        Grant(
            user=alice,
            resource=Resource.objects.get(name="transactions"),
            privilege="read",
            columns=["country", "user_id"],
            masked=["user_id"],
            granted_by=alice,
        ),
    ]
    with CaptureQueriesContext(connection) as queries:
        for grant in grants:
            grant.full_clean()
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if re.match(r"\s*(INSERT|UPDATE|DELETE)", q["sql"])
    ]
    assert not writes, writes
    assert not Resource.objects.filter(name="raw_sales").exists()
    bad = Grant(user=alice, resource=raw, privilege="read", columns=["nope"], granted_by=alice)
    with pytest.raises(ValidationError, match="Unknown column"):
        bad.full_clean()


# --- 5. listings through readable_by: as many queries for 1 row as for 4 -------------
LISTINGS = (
    "/api/v1/grants/",
    "/api/v1/ingestion/runs/",
    "/api/v1/reports/",
    "/api/v1/ml/trainings/",
    "/api/v1/audit/requests/",
    "/api/v1/ml/models/",
)


def add_rows(user, staff, count: int) -> None:
    from ingestion.models import IngestionRun
    from lineage.models import RequestLog
    from metrics.ml.models import Training
    from metrics.models import Report

    for _ in range(count):
        other = make_user(f"other{Grant.objects.count()}")
        give(other, "transactions", granted_by=staff)
        IngestionRun.objects.create(source="transactions", path="landing/transactions/x.jsonl")
        Report.objects.create(report_name="spend-per-country", requested_by=user)
        Training.objects.create(model_name="product-demand", requested_by=user)
        RequestLog.objects.create(
            at=timezone.now(), method="GET", path="/", status_code=200, duration_ms=1.0
        )


def statements_of(client, url: str) -> int:
    with Statements() as statements:
        response = client.get(url)
    assert response.status_code == 200, (url, response.content)
    assert response.json()["count"] >= 1, url  # the rows are there: not a list of nothing
    return len(statements.sql)


def test_listings_ask_as_many_queries_for_one_row_as_for_several(db, staff):
    lina = make_user("lina")
    give(lina, "transactions", "grant")
    give(lina, "transactions")
    give(lina, "products", row_filter={"category": ["books"]})
    clients = {url: client_for(staff if "audit" in url else lina) for url in LISTINGS}
    for url, client in clients.items():  # the token's first use stamps it: not counted
        client.get(url)
    add_rows(lina, staff, 1)
    few = {url: statements_of(client, url) for url, client in clients.items()}
    add_rows(lina, staff, 4)
    many = {url: statements_of(client, url) for url, client in clients.items()}
    assert many == few
