"""The portal in a real browser: headless Chromium (Debian's) driven by Playwright.

Walks what people do against pytest-django's live server: log in, the resources
list, a resource's rows through the filter form, the token page, a report's chart,
the docs (Swagger UI and Redoc, offline), and an administrator giving then revoking
a grant in the Django admin, checked in the database. Every page must carry the
portal's bar and fetch nothing from outside the server. A screenshot of each step is
kept in `artifacts/screenshots/`.

Needs /usr/bin/chromium (`apt-get install chromium chromium-driver`, which
scripts/bootstrap.sh does as root); without it the tests skip, except on CI (`CI`
set), where they fail.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from accounts.access import Access
from accounts.models import ApiToken, Grant, hash_key
from datalake.celery import app as celery_app
from datalake.models import Resource
from tests.support.factories import give, make_user
from tests.support.lake import merge, row

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PRODUCT = "Data-lake portal"
COUNTRIES = ["FR", "DE", "ES", "US"]


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is missing (pip install -r requirements-dev.txt)"
    if not os.access(CHROMIUM, os.X_OK):
        return (
            f"no Chromium at {CHROMIUM}: apt-get install chromium chromium-driver "
            "(scripts/bootstrap.sh does it when run as root)"
        )
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"The browser tests must run on CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread, and Django refuses ORM
    # calls from a thread with a running loop unless told it is safe: here it is (one
    # thread, each call waits for the browser), and only for this module.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context (no cookies) on the live server; it must stay offline."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    outside = []

    def refuse(route):  # nothing may come from elsewhere: no CDN, no fonts, no images
        outside.append(route.request.url)
        route.abort()

    context.route(lambda url: not url.startswith((live_server.url, "data:", "blob:")), refuse)
    page = context.new_page()
    yield page
    context.close()
    assert not outside, f"pages fetched from outside the server: {outside}"


def shot(page, name: str, *, full_page: bool = True) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def has_the_portal_bar(page, user: str | None = None) -> None:
    from playwright.sync_api import expect

    expect(page.locator(".portal-brand")).to_have_text(PRODUCT)
    nav = page.locator(".portal-nav")
    for label in ("Resources", "Search", "Reports", "Tokens", "API docs"):
        expect(nav.get_by_role("link", name=label, exact=True)).to_be_visible()
    if user:
        expect(page.locator(".portal-username")).to_have_text(user)


def log_in(page, username: str) -> None:
    """Through the login page the browser was sent to, or the bar's `Log in` link."""
    if "/login/" not in page.url:
        page.locator(".portal-user").get_by_role("link", name="Log in").click()
    page.fill("#id_username", username)
    page.fill("#id_password", f"{username}-pw-123")
    page.get_by_role("button", name="Log in").click()


@pytest.fixture
def analyst(lake):
    """dana, who reads `transactions`, with 40 rows in it (10 per country)."""
    merge([row(i, country=COUNTRIES[i % 4]) for i in range(40)])
    dana = make_user("dana")
    give(dana, "transactions", "read")
    return dana


def test_log_in_and_see_the_resources(page, analyst):
    from playwright.sync_api import expect

    page.goto("/")  # outside /api/: anonymous visitors are sent to the login page
    expect(page).to_have_url(re.compile(r"/api-auth/login/\?next=/$"))
    has_the_portal_bar(page)
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.fill("#id_username", "dana")
    page.fill("#id_password", "wrong-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    shot(page, "01-login")

    log_in(page, "dana")
    expect(page).to_have_url(re.compile(r"/api/v1/resources/$"))
    has_the_portal_bar(page, "dana")
    expect(page.locator(".portal-nav a.active")).to_have_text("Resources")
    expect(page.get_by_role("heading", name="Resource List")).to_be_visible()
    expect(page.locator(".response-info")).to_contain_text('"name": "transactions"')
    expect(page.locator(".portal-nav").get_by_role("link", name="Admin")).to_have_count(0)
    shot(page, "02-resources")


def test_rows_of_a_resource_through_the_filter_form(page, analyst):
    from playwright.sync_api import expect

    page.goto("/api/v1/resources/transactions/rows/?fields=transaction_id,country,amount")
    log_in(page, "dana")
    expect(page).to_have_url(re.compile(r"/rows/\?fields="))
    table = page.get_by_role("table", name="rows")
    expect(table.locator("tbody tr")).to_have_count(10)  # the first page of 40
    page.get_by_label("country").fill("DE")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"country=DE"))
    assert "fields=transaction_id" in page.url  # kept from the URL
    expect(table).to_be_visible()
    headers = table.locator("thead th").all_inner_texts()
    assert headers == ["transaction_id", "country", "amount"]
    countries = table.locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert countries == ["DE"] * 10
    expect(page.locator(".response-info")).to_contain_text('"count": 10')
    expect(page.get_by_label("country")).to_have_value("DE")
    shot(page, "03-rows-filtered")


def test_the_token_page_creates_a_token_shown_once(page, analyst):
    from playwright.sync_api import expect

    page.goto("/portal/tokens/")
    expect(page).to_have_url(re.compile(r"/api-auth/login/\?next=/portal/tokens/$"))
    log_in(page, "dana")
    expect(page).to_have_url(re.compile(r"/portal/tokens/$"))
    has_the_portal_bar(page, "dana")
    expect(page.get_by_text("No tokens yet.")).to_be_visible()
    page.get_by_role("button", name="Create a token").click()
    key = page.locator("#token-key").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{40}", key)
    token = ApiToken.objects.get(user=analyst)
    assert token.key_hash == hash_key(key) and key.startswith(token.prefix)
    expect(page.locator("#tokens tbody tr")).to_have_count(1)
    shot(page, "04-token-created")

    answer = page.request.get(
        "/api/v1/resources/transactions/rows/?country=FR",
        headers={"Authorization": f"Token {key}"},
    )
    assert answer.status == 200 and answer.json()["count"] == 10
    page.goto("/portal/tokens/")
    expect(page.locator("#token-key")).to_have_count(0)  # shown once only
    assert key not in page.content()


def test_a_report_result_shows_its_chart(page, analyst):
    from playwright.sync_api import expect

    from datalake.runs.models import RunStatus
    from metrics.reports.services import report_start

    celery_app.conf.task_always_eager = True  # the queued task runs here, at commit
    try:
        report = report_start(report_name="spend-per-country", params={}, requested_by=analyst)
    finally:
        celery_app.conf.task_always_eager = False
    report.refresh_from_db()
    assert report.status == RunStatus.SUCCEEDED, report.error

    page.goto(f"/reports/{report.pk}/")
    log_in(page, "dana")
    heading = f"Report {report.pk}: spend-per-country"
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    has_the_portal_bar(page, "dana")
    chart = page.get_by_role("img", name="bar chart")
    expect(chart.locator("rect")).to_have_count(report.row_count)
    for country in COUNTRIES:
        expect(chart).to_contain_text(country)
    shot(page, "05-report-chart")


def test_the_docs_render_offline(page, analyst):
    from playwright.sync_api import expect

    page.goto("/api/v1/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Data-lake portal API")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=30_000)
    has_the_portal_bar(page)
    expect(page.locator(".portal-nav a.active")).to_have_text("API docs")
    shot(page, "06-docs-swagger", full_page=False)  # the page is ~10,000 px long

    page.goto("/api/v1/redoc/")
    expect(page.locator("h1", has_text="Data-lake portal API")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("/api/v1/resources/{name}/rows/").first).to_be_attached()
    has_the_portal_bar(page)
    shot(page, "07-docs-redoc", full_page=False)


def _pick(page, field: str, text: str) -> None:
    """Choose the option whose whole text is `text` in one of the admin's autocomplete
    (select2) fields (`transactions` must not pick `raw_transactions`)."""
    page.locator(f"#id_{field} + .select2 .select2-selection").click()
    page.locator(".select2-container--open .select2-search__field").fill(text)
    exact = re.compile(rf"^\s*{re.escape(text)}\s*$")
    page.locator(".select2-results__option").filter(has_text=exact).click()


def test_an_administrator_gives_and_revokes_a_grant(page, analyst):
    from playwright.sync_api import expect

    make_user("root", is_staff=True, is_superuser=True)
    carol = make_user("carol")
    assert not Access(carol).holds("read", "transactions")
    # A machine with landing files has `raw_transactions` too, which also matches the text.
    Resource.objects.get_or_create(
        name="raw_transactions", defaults={"kind": "files", "source": "transactions"}
    )

    page.goto("/admin/accounts/grant/add/")
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    has_the_portal_bar(page)
    log_in(page, "root")
    expect(page).to_have_url(re.compile(r"/admin/accounts/grant/add/$"))
    has_the_portal_bar(page, "root")
    expect(page.locator(".portal-nav a.active")).to_have_text("Admin")
    _pick(page, "user", "carol")
    _pick(page, "resource", "transactions")
    page.select_option("#id_privilege", "read")
    shot(page, "08-admin-grant-add")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    grant = Grant.objects.get(user=carol)
    assert (grant.resource.name, grant.privilege, grant.granted_by.username) == (
        "transactions",
        "read",
        "root",
    )
    assert Access(carol).holds("read", "transactions")
    shot(page, "09-admin-grant-given")

    page.goto(f"/admin/accounts/grant/{grant.pk}/delete/")
    expect(page.locator("#content")).to_contain_text("Are you sure you want to delete")
    shot(page, "10-admin-grant-revoke-confirm")
    page.get_by_role("button", name=re.compile("Yes, I.m sure")).click()
    expect(page.locator(".messagelist")).to_contain_text("was deleted successfully")
    assert not Grant.objects.filter(user=carol).exists()
    assert not Access(carol).holds("read", "transactions")
    shot(page, "11-admin-grant-revoked")
