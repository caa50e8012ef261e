"""The HTTP source kind against a real HTTP server started here, and the ECB command.

The server (http.server in a thread) serves a catalogue of 230 products, 50 a page,
behind a login; it expires its token once, answers 429 once (Retry-After: 1) and
500 once. The pull goes through the real path: the landed file, spark-submit, the
versioned merge; the USD rates come from the ECB command, served by the same kind
of server and ingested for real.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
import time
import zipfile
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from datalake.models import ExchangeRate, Resource
from ingestion.daily.services import ingestion_run_execute
from ingestion.models import HttpPull, HttpSource, IngestionRun, Product, RunStatus
from ingestion.pull.http import http_pull_execute
from ingestion.rates import RateTable
from ingestion.sources import Context, parse_product
from ingestion.validation import Rejected
from tests.support.factories import client_for
from tests.support.net import free_port

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
SDMX_SAMPLE = SHARED / "ecb" / "EXR_D.USD.EUR.SP00.A_csvdata_2023-01-04_2025-10-28.csv"
WIDE_SAMPLE = SHARED / "ecb" / "eurofxref-hist_2010-11_2011-12.csv"
TODAY = dt.datetime.now(dt.UTC).date()


def catalogue(n: int = 230) -> list[dict]:
    """Products shaped like the fake e-commerce API's (nested category, int ids)."""
    return [
        {
            "id": i,
            "title": f"Shoe {i}",
            "price": [19.99, 100, 7.5, "42.125"][i % 4] if i % 7 else i * 3,
            "description": f"A product, number {i}, with a comma",
            "category": {"id": i % 5, "name": ["Shoes", "Clothes", "Misc", "Toys", "Books"][i % 5]},
            "images": [f"https://img.example/{i}.jpg"],
        }
        for i in range(1, n + 1)
    ]


class Shop:
    """The fake API's state: its catalogue, tokens, one-off faults and the request log."""

    def __init__(self, products: list[dict], page_size: int = 50):
        self.products, self.page_size = products, page_size
        self.lock = threading.Lock()
        self.log: list[tuple[float, str, str, int]] = []  # (time, method, path, status)
        self.valid: set[str] = set()
        self.refresh: dict[str, str] = {}
        self.issued = 0
        self.faults = {"expire_after": 2, "429_at": 100, "500_at": 150}
        self.product_gets = 0

    def token(self) -> dict:
        self.issued += 1
        access, refresh = f"access-{self.issued}", f"refresh-{self.issued}"
        self.valid.add(access)
        self.refresh[refresh] = access
        return {"access_token": access, "refresh_token": refresh}


def handler_for(shop: Shop):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def answer(self, status: int, body, headers: dict | None = None):
            data = orjson.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            shop.log.append((time.monotonic(), self.command, self.path, status))

        def do_POST(self):
            body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with shop.lock:
                if self.path == "/auth/login":
                    good = body == {"email": "buyer@example.com", "password": "s3cret"}
                    return self.answer(201, shop.token()) if good else self.answer(401, {})
                if self.path == "/auth/refresh-token":
                    old = shop.refresh.pop(body.get("refreshToken"), None)
                    if old is None:
                        return self.answer(401, {"message": "bad refresh token"})
                    shop.valid.discard(old)
                    return self.answer(201, shop.token())
            self.answer(404, {})

        def do_GET(self):
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            with shop.lock:
                if parts.path == "/products":
                    return self.products(query)
                if parts.path == "/catalogue":  # next links, no authentication
                    return self.catalogue(query)
                if parts.path == "/elsewhere":  # a redirect, to `query["to"]`
                    return self.answer(302, {}, {"Location": query["to"]})
                if parts.path == "/away":  # a next link to `shop.next_elsewhere`
                    return self.answer(200, {"items": [], "next": shop.next_elsewhere})
            self.answer(404, {})

        def products(self, query):
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if token not in shop.valid:
                return self.answer(401, {"message": "Unauthorized"})
            shop.product_gets += 1
            offset, limit = int(query["offset"]), int(query["limit"])
            if shop.product_gets > shop.faults["expire_after"] and token == "access-1":
                shop.valid.discard(token)  # the first token expires once, mid-walk
                return self.answer(401, {"message": "token expired"})
            if offset == shop.faults["429_at"]:
                shop.faults["429_at"] = None
                return self.answer(429, {"message": "slow down"}, {"Retry-After": "1"})
            if offset == shop.faults["500_at"]:
                shop.faults["500_at"] = None
                return self.answer(500, {"message": "oops"})
            self.answer(200, shop.products[offset : offset + limit])

        def catalogue(self, query):
            page = int(query.get("page", "1"))
            start = (page - 1) * shop.page_size
            body = {"data": {"items": shop.products[start : start + shop.page_size]}}
            headers = {}
            if start + shop.page_size < len(shop.products):
                if page % 2:  # the next page in the body, or in the Link header
                    body["next"] = f"/catalogue?page={page + 1}"
                else:
                    headers["Link"] = f'</catalogue?page={page + 1}>; rel="next"'
            self.answer(200, body, headers)

    return Handler


class Server:
    def __init__(self, handler):
        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def _local_servers_allowed(settings):
    """The test servers listen on 127.0.0.1: allowed here explicitly (refused by default,
    see test_private_addresses_are_refused_unless_allowed); the tests' secret is named."""
    settings.HTTP_SOURCE_ALLOW_PRIVATE = True
    settings.HTTP_SOURCE_SECRET_NAMES = ["SHOP_TEST_PASSWORD"]


@pytest.fixture
def shop():
    state = Shop(catalogue())
    with Server(handler_for(state)) as server:
        state.url = server.url
        yield state


def files_handler(files: dict[str, bytes]):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            data = files.get(urlsplit(self.path).path)
            self.send_response(200 if data else 404)
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

    return Handler


def sdmx_rates(rates: dict[dt.date, str]) -> bytes:
    """An SDMX CSV export like the ECB's (the real sample's header and first row), with
    the given USD rates."""
    lines = SDMX_SAMPLE.read_bytes().decode().split("\r\n")
    header = next(csv.reader([lines[0]]))
    template = next(csv.reader([lines[1]]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for day, rate in sorted(rates.items()):
        row = dict(zip(header, template, strict=True))
        row.update(TIME_PERIOD=day.isoformat(), OBS_VALUE=rate)
        writer.writerow([row[h] for h in header])
    return out.getvalue().encode()


def products_source(url: str, **changes) -> HttpSource:
    fields = {
        "base_url": url,
        "path": "/products",
        "pagination": "offset",
        "page_size": 50,
        "items_key": "",
        "token_url": "/auth/login",
        "refresh_url": "/auth/refresh-token",
        "username_field": "email",
        "refresh_field": "refreshToken",
        "username": "buyer@example.com",
        "password": "env:SHOP_TEST_PASSWORD",
        "backoff_seconds": 0.05,
        "field_map": {},
        **changes,
    }
    source, _ = HttpSource.objects.update_or_create(name="products", defaults=fields)
    return source


def eur(price, rate: str) -> Decimal:
    usd = Decimal(str(price)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return (usd / Decimal(rate)).quantize(Decimal("0.01"), ROUND_HALF_UP)


# -- the whole path, with Spark ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_pull_lands_every_page_and_stores_every_product_once(lake, shop, monkeypatch, staff):
    monkeypatch.setenv("SHOP_TEST_PASSWORD", "s3cret")
    # The rates, through the ECB command and the real ingestion: today has none, so
    # the latest earlier one (3 days ago) applies, never tomorrow's.
    rates = {
        TODAY - dt.timedelta(days=10): "1.2000",
        TODAY - dt.timedelta(days=3): "1.0875",
        TODAY + dt.timedelta(days=1): "1.5000",
    }
    with Server(files_handler({"/rates.csv": sdmx_rates(rates)})) as ecb:
        call_command(
            "fetch_ecb_rates", url=f"{ecb.url}/rates.csv", ingest=True, stdout=io.StringIO()
        )
    assert ExchangeRate.objects.filter(currency="USD").count() == 3

    source = products_source(shop.url)
    pull = http_pull_execute(HttpPull.objects.create(source=source).pk)

    assert pull.status == RunStatus.SUCCEEDED, pull.error
    assert (pull.pages, pull.records) == (5, 230)  # 4 full pages, then 30 < 50: the end
    assert pull.retries == 2  # the 429 and the 500
    assert pull.token_requests == 2  # the login, then one refresh after the expiry
    statuses = [status for _, method, path, status in shop.log if path.startswith("/products")]
    assert statuses.count(401) == 1 and statuses.count(429) == 1 and statuses.count(500) == 1
    after_429 = next(i for i, e in enumerate(shop.log) if e[3] == 429)
    assert shop.log[after_429 + 1][0] - shop.log[after_429][0] >= 0.95  # Retry-After: 1

    # The raw pages, in page order, each record exactly as served.
    landed = lake / pull.path
    assert landed.parent == lake / "landing" / "products" and landed.name.startswith(str(TODAY))
    lines = landed.read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == shop.products
    assert [p["first_line"] for p in pull.pages_info] == [1, 51, 101, 151, 201]
    assert not list(landed.parent.glob("*.part"))

    run = pull.run
    assert (run.status, run.rows_read, run.rows_loaded, run.rows_rejected) == (
        RunStatus.SUCCEEDED, 230, 230, 0,
    )  # fmt: skip
    stored = {p.product_id: p for p in Product.objects.filter(valid_to__isnull=True)}
    assert sorted(stored, key=int) == [str(p["id"]) for p in shop.products]
    assert Product.objects.count() == 230  # each once
    for served in shop.products:
        product = stored[str(served["id"])]
        usd = Decimal(str(served["price"])).quantize(Decimal("0.01"), ROUND_HALF_UP)
        assert (product.price_usd, product.price_eur) == (usd, eur(served["price"], "1.0875"))
        assert product.rate_date == TODAY - dt.timedelta(days=3)
        assert product.category == served["category"]["name"]
    assert Resource.objects.get(name="products").current_version == 1

    # The raw resource serves the landed records; a replay of the file adds nothing.
    api = client_for(staff)
    raw = api.get("/api/v1/resources/raw_products/rows/?id=42").json()
    assert raw["count"] == 1 and raw["results"][0]["title"] == "Shoe 42"
    table = api.get("/api/v1/resources/products/rows/?product_id=7").json()["results"][0]
    assert table["price_usd"] == "21.00" and table["rate_date"] == str(TODAY - dt.timedelta(3))
    replay = IngestionRun.objects.create(source="products", path=pull.path)
    assert ingestion_run_execute(replay.pk).status == RunStatus.SKIPPED
    assert Product.objects.count() == 230


# -- paging, failures, parsing: no Spark -------------------------------------------------


@pytest.mark.django_db
def test_next_links_in_the_body_or_the_link_header(lake, shop):
    source = products_source(
        shop.url, path="/catalogue", pagination="next", items_key="data.items", token_url=""
    )
    pull = http_pull_execute(HttpPull.objects.create(source=source, ingest=False).pk)
    assert pull.status == RunStatus.SUCCEEDED and pull.run is None
    assert pull.pages == 5 and pull.token_requests == 0
    assert [p["url"].split("?")[-1] for p in pull.pages_info[1:]] == [
        f"page={n}" for n in range(2, 6)
    ]
    landed = (lake / pull.path).read_bytes().splitlines()
    assert [orjson.loads(line) for line in landed] == shop.products
    assert Resource.objects.filter(name="raw_products").exists()


@pytest.mark.django_db
def test_failed_pulls_land_nothing(lake, shop, monkeypatch):
    monkeypatch.setenv("SHOP_TEST_PASSWORD", "wrong")
    source = products_source(shop.url)
    refused = http_pull_execute(HttpPull.objects.create(source=source).pk)
    assert refused.status == RunStatus.FAILED and "login refused: HTTP 401" in refused.error

    monkeypatch.delenv("SHOP_TEST_PASSWORD")
    unset = http_pull_execute(HttpPull.objects.create(source=source).pk)
    assert "SHOP_TEST_PASSWORD is not set" in unset.error

    down = products_source(f"http://127.0.0.1:{free_port()}", token_url="", max_retries=2)
    gone = http_pull_execute(HttpPull.objects.create(source=down).pk, sleep=lambda s: None)
    assert gone.status == RunStatus.FAILED and "3 attempts" in gone.error
    assert gone.retries == 2 and gone.requests == 3
    assert not list((lake / "landing").rglob("*.jsonl*"))
    assert IngestionRun.objects.count() == 0


def test_the_products_parser_rejects_with_reasons():
    rates = RateTable({"USD": [("2026-11-20", "1.25")]})
    ctx = Context(rates=rates, file_date=dt.date(2026, 11, 23))
    row = parse_product('{"id": 5, "price": "10", "category": {"name": "Shoes"}}', ctx)[0]
    assert (row["price_usd"], row["price_eur"], row["rate_date"]) == (
        Decimal("10.00"), Decimal("8.00"), dt.date(2026, 11, 20),
    )  # fmt: skip
    mapped = Context(
        rates=rates, file_date=ctx.file_date, options={"fields": {"price_usd": "p.usd"}}
    )
    assert parse_product('{"id": "a", "p": {"usd": 2.5}}', mapped)[0]["price_usd"] == Decimal(
        "2.50"
    )
    cases = {
        '{"price": 1}': "missing_field",
        '{"id": 1, "price": -1}': "bad_price",
        '{"id": 1, "price": "cheap"}': "bad_price",
        '{"id": true, "price": 1}': "bad_type",
        '{"id": 1}': "missing_field",
        "[1]": "invalid_json",
    }
    for raw, code in cases.items():
        with pytest.raises(Rejected, match=f"^{code}: "):
            parse_product(raw, ctx)
    with pytest.raises(Rejected, match=r"^unknown_currency: "):
        parse_product('{"id": 1, "price": 1}', Context(rates=rates, file_date=dt.date(2026, 1, 1)))
    with pytest.raises(Rejected, match=r"^bad_date: "):
        parse_product('{"id": 1, "price": 1}', Context(rates=rates))


# -- the ECB command ---------------------------------------------------------------------


def test_fetch_ecb_rates_lands_the_file(lake):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(WIDE_SAMPLE, "eurofxref-hist.csv")
    served = {
        "/sdmx.csv": SDMX_SAMPLE.read_bytes(),
        "/hist.zip": buffer.getvalue(),
        "/page.html": b"<html>rates</html>",
    }
    with Server(files_handler(served)) as ecb:
        out = io.StringIO()
        call_command("fetch_ecb_rates", url=f"{ecb.url}/sdmx.csv", stdout=out)
        call_command("fetch_ecb_rates", url=f"{ecb.url}/hist.zip", history=True, stdout=out)
        with pytest.raises(CommandError, match="not an ECB rates CSV"):
            call_command("fetch_ecb_rates", url=f"{ecb.url}/page.html", stdout=out)
        with pytest.raises(CommandError, match=r"Could not download .*Not Found"):
            call_command("fetch_ecb_rates", url=f"{ecb.url}/missing.csv", stdout=out)
    landed = sorted((lake / "landing" / "exchange_rates").iterdir())
    assert [p.read_bytes() for p in landed] == [WIDE_SAMPLE.read_bytes(), SDMX_SAMPLE.read_bytes()]
    assert "ingest exchange_rates" in out.getvalue()


def test_fetch_ecb_rates_offline_explains_the_manual_drop(lake):
    with pytest.raises(CommandError) as error:
        call_command("fetch_ecb_rates", url=f"http://127.0.0.1:{free_port()}/x.csv")
    message = str(error.value)
    assert "Could not download" in message
    assert str(lake / "landing" / "exchange_rates") in message
    assert "eurofxref-hist.zip" in message and "ingest exchange_rates" in message
    assert not (lake / "landing" / "exchange_rates").exists()


def test_fetch_ecb_rates_reads_no_local_file(lake, tmp_path):
    private = tmp_path / "private.csv"
    private.write_text("PRIVATE-FIRST-LINE\n")
    with pytest.raises(CommandError) as error:
        call_command("fetch_ecb_rates", url=f"file://{private}")
    assert "Could not download" in str(error.value) and "PRIVATE" not in str(error.value)


# -- where a pull may go: hosts, schemes, addresses, secrets (issue 24.6) -------------------


class Spy:
    """Another host (another port is another origin): records every request it gets."""

    def __init__(self):
        self.seen: list[tuple[str, str]] = []  # (path, Authorization)

    def handler(self):
        spy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                spy.seen.append((self.path, self.headers.get("Authorization", "")))
                data = b'{"items": []}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET

        return Handler


@pytest.fixture
def spy():
    state = Spy()
    with Server(state.handler()) as server:
        state.url = server.url
        yield state


def pull_of(source: HttpSource) -> HttpPull:
    return http_pull_execute(HttpPull.objects.create(source=source, ingest=False).pk)


@pytest.mark.django_db
def test_file_and_other_schemes_are_refused(lake, shop, tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_TEST_PASSWORD", "s3cret")
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("TOP-SECRET-CONTENT")
    for changes in (
        {"path": f"file://{secret_file}", "token_url": ""},
        {"token_url": f"file://{secret_file}"},
        {"path": "ftp://127.0.0.1/x", "token_url": ""},
    ):
        pull = pull_of(products_source(shop.url, **changes))
        assert pull.status == RunStatus.FAILED
        assert "TOP-SECRET" not in pull.error and "not allowed" in pull.error, pull.error
    assert shop.log == []


@pytest.mark.django_db
def test_next_links_and_redirects_to_other_hosts_are_refused(lake, shop, spy, monkeypatch):
    monkeypatch.setenv("SHOP_TEST_PASSWORD", "s3cret")
    # A next link to another host: refused before any request goes there.
    shop.next_elsewhere = f"{spy.url}/steal"
    away = products_source(
        shop.url, path="/away", pagination="next", token_url="", items_key="items"
    )
    pull = pull_of(away)
    assert pull.status == RunStatus.FAILED and "not allowed" in pull.error, pull.error
    # A redirect to another host, with the bearer token of a login: not followed.
    to = f"{spy.url}/steal"
    source = products_source(shop.url, path=f"/elsewhere?to={to}", pagination="next")
    pull = pull_of(source)
    assert pull.status == RunStatus.FAILED and "not allowed" in pull.error, pull.error
    assert spy.seen == []
    # A redirect on the same host is followed.
    same = products_source(
        shop.url, path="/elsewhere?to=/catalogue", pagination="next", items_key="data.items",
        token_url="",
    )  # fmt: skip
    assert pull_of(same).status == RunStatus.SUCCEEDED


@pytest.mark.django_db
def test_the_token_host_may_differ_from_the_base_host(lake, spy):
    source = products_source(
        f"{spy.url}/api", path="/things", token_url="", items_key="items", pagination="next"
    )
    assert pull_of(source).status == RunStatus.SUCCEEDED
    assert spy.seen == [("/api/things", "")]


@pytest.mark.django_db
def test_private_addresses_are_refused_unless_allowed(lake, shop, settings):
    settings.HTTP_SOURCE_ALLOW_PRIVATE = False
    for url in (shop.url, shop.url.replace("127.0.0.1", "localhost")):
        pull = pull_of(products_source(url, token_url=""))
        assert pull.status == RunStatus.FAILED and "private" in pull.error, pull.error
    for address in ("http://10.1.2.3", "http://169.254.169.254", "http://[::1]:1"):
        pull = pull_of(products_source(address, token_url=""))
        assert "private" in pull.error, pull.error
    assert shop.log == []


@pytest.mark.django_db
def test_secrets_come_from_named_settings_only(lake, shop, monkeypatch, spy):
    monkeypatch.setenv("UNLISTED_SECRET", "do-not-send")
    source = products_source(shop.url, password="env:UNLISTED_SECRET")
    pull = pull_of(source)
    assert pull.status == RunStatus.FAILED and "HTTP_SOURCE_SECRET_NAMES" in pull.error
    assert shop.log == []
    with pytest.raises(ValidationError, match="HTTP_SOURCE_SECRET_NAMES"):
        source.full_clean()
    with pytest.raises(ValidationError, match="http"):
        products_source(shop.url, token_url="file:///etc/passwd").full_clean()


@pytest.mark.django_db
def test_the_admin_never_shows_the_stored_password(lake, shop, staff):
    from django.test import Client

    source = products_source(shop.url, password="literal-pass-123")
    browser = Client()
    browser.force_login(staff)
    url = f"/admin/ingestion/httpsource/{source.pk}/change/"
    page = browser.get(url)
    assert page.status_code == 200 and b"literal-pass-123" not in page.content
    # Saving the form with the password left blank keeps it.
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    data.update(field_map="{}", password="", name="products")
    answer = browser.post(url, data)
    assert answer.status_code == 302, answer.content[:2000]
    source.refresh_from_db()
    assert source.password == "literal-pass-123"
