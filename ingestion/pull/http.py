"""Pulling an HTTP source: every page, landed as one file, then ingested like any file.

A pull logs in (username/password for an access token), walks the pages (offset/limit
or next links), renews the token when it expires or a request answers 401, and
retries a request answered 429 or 5xx, or not answered, with exponential back-off
(a `Retry-After` header wins). Only a pull that got every page lands anything: the
records, one JSON object per line exactly as received, page after page, in
`landing/<source>/<UTC time>-pull<id>.jsonl` (written aside, then renamed), so the
`raw_<source>` resource serves them and `ingest <source> <file>` replays them. The
file then goes through the ordinary ingestion run (Spark, versioned merge).

Where a pull may go (a staff user configures sources, and the remote API answers; neither
may steer the portal's requests elsewhere): httpx with a timeout on every request; only
http(s) URLs whose origin (scheme, host, port) is the source's base URL or its token or
refresh URL, for the first request, each redirect hop and each next link alike; no
host that resolves to a private, loopback, link-local or reserved address unless
`HTTP_SOURCE_ALLOW_PRIVATE`. A credential written `env:NAME` is read only when NAME is
listed in `HTTP_SOURCE_SECRET_NAMES`: a source cannot send any other variable of the
environment (SECRET_KEY, DATABASE_URL) anywhere.
"""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import os
import socket
import time
import urllib.parse
from dataclasses import dataclass, field

import httpx
import orjson
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from datalake.runs import lifecycle
from ingestion.models import HttpPull, HttpSource, IngestionRun, Pagination, RunStatus

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_WAIT = 300.0  # seconds: the longest back-off or Retry-After honoured
MAX_PAGES = 100_000  # a paging loop that never ends is a failed pull
EXPIRY_MARGIN = 5.0  # renew a token this many seconds before it expires
MAX_REDIRECTS = 5
SCHEMES = ("http", "https")


class PullFailed(Exception):
    pass


def secret(value: str) -> str:
    """`env:NAME` reads NAME from the environment, only if `HTTP_SOURCE_SECRET_NAMES` lists
    it; anything else is the value itself."""
    if value.startswith("env:"):
        name = value.removeprefix("env:")
        if name not in settings.HTTP_SOURCE_SECRET_NAMES:
            raise PullFailed(
                f"env:{name} is not allowed: list {name} in HTTP_SOURCE_SECRET_NAMES to use it."
            )
        if name not in os.environ:
            raise PullFailed(f"The environment variable {name} is not set.")
        return os.environ[name]
    return value


# -- where a request may go ---------------------------------------------------------------


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; PullFailed for anything else."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if scheme not in SCHEMES or not host:
        raise PullFailed(f"{url[:200]!r} is not allowed: only http(s) URLs with a host.")
    return scheme, host.lower(), port or (443 if scheme == "https" else 80)


def source_origins(source: HttpSource) -> set[tuple[str, str, int]]:
    """The origins a source's requests may go to: its base URL's, its token and refresh
    URLs' (when absolute)."""
    origins = {origin(source.base_url)}
    for url in (source.token_url, source.refresh_url):
        if url and urllib.parse.urlsplit(url).scheme:
            origins.add(origin(url))
    return origins


def _public(host: str, port: int) -> None:
    """PullFailed unless every address of `host` is global (or HTTP_SOURCE_ALLOW_PRIVATE).

    Checked before each request; a DNS answer that changes between the check and the
    connection (rebinding) is not covered: see docs/SECURITY.md."""
    if settings.HTTP_SOURCE_ALLOW_PRIVATE:
        return
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise PullFailed(f"{host}: the name does not resolve ({exc})") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global:
            raise PullFailed(
                f"{host} resolves to a private address ({address}); not allowed unless "
                "HTTP_SOURCE_ALLOW_PRIVATE."
            )


def check_url(source: HttpSource, url: str) -> None:
    """PullFailed unless `url` may be requested for `source` (see the module's doc)."""
    scheme, host, port = origin(url)
    if (scheme, host, port) not in source_origins(source):
        raise PullFailed(f"{url[:200]!r} is not allowed: not the source's host.")
    _public(host, port)


def dig(body, path: str):
    for part in path.split(".") if path else ():
        body = body.get(part) if isinstance(body, dict) else None
    return body


def _headers(message) -> dict[str, str]:
    return {k.lower(): v for k, v in message.items()}


@dataclass
class Response:
    status: int
    headers: dict  # names in lower case
    body: bytes

    def json(self, what: str):
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise PullFailed(f"{what}: the answer is not JSON: {self.body[:200]!r}") from None


@dataclass
class Counters:
    requests: int = 0
    retries: int = 0
    token_requests: int = 0
    pages_info: list = field(default_factory=list)


class Client:
    """Requests to one source: the bearer token and the retries."""

    def __init__(self, source: HttpSource, counters: Counters, sleep=time.sleep):
        self.source, self.counters, self.sleep = source, counters, sleep
        self.access: str | None = None
        self.refresh: str | None = None
        self.expires_at: float | None = None
        # Every request, each redirect hop included, goes through the URL check first.
        self.http = httpx.Client(
            timeout=httpx.Timeout(source.timeout_seconds),
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            trust_env=False,  # no proxy or netrc of the worker's environment
            event_hooks={"request": [lambda request: check_url(source, str(request.url))]},
        )

    def close(self) -> None:
        self.http.close()

    def url(self, path_or_url: str) -> str:
        if urllib.parse.urlsplit(path_or_url).scheme:
            return path_or_url
        return self.source.base_url.rstrip("/") + "/" + path_or_url.lstrip("/")

    # -- one request, retried ---------------------------------------------------------

    def _once(self, method: str, url: str, payload, auth: bool) -> Response:
        headers = {"Accept": "application/json"}
        data = None
        if payload is not None:
            data, headers["Content-Type"] = orjson.dumps(payload), "application/json"
        if auth and self.access:
            headers["Authorization"] = f"Bearer {self.access}"
        check_url(self.source, url)  # before counting: a refused URL is no request
        self.counters.requests += 1
        answer = self.http.request(method, url, content=data, headers=headers)
        return Response(answer.status_code, _headers(answer.headers), answer.content)

    def send(self, method: str, url: str, payload=None, auth: bool = True) -> Response:
        """The answer, after retrying 429, 5xx and network errors up to `max_retries` times."""
        attempts = self.source.max_retries + 1
        for attempt in range(attempts):
            try:
                response = self._once(method, url, payload, auth)
            except httpx.TooManyRedirects:
                raise PullFailed(f"{method} {url}: more than {MAX_REDIRECTS} redirects") from None
            except (httpx.TransportError, OSError) as exc:
                response, problem = None, f"no answer ({type(exc).__name__}: {exc})"
            else:
                if response.status not in RETRY_STATUSES:
                    return response
                problem = f"HTTP {response.status}"
            if attempt + 1 == attempts:
                raise PullFailed(f"{method} {url}: {problem}, {attempts} attempts")
            wait = self.delay(attempt, response)
            logger.warning("%s %s: %s; retry in %.1f s", method, url, problem, wait)
            self.counters.retries += 1
            self.sleep(wait)
        raise AssertionError("unreachable")

    def delay(self, attempt: int, response: Response | None) -> float:
        """Retry-After (seconds or an HTTP date) when given, else the doubling back-off."""
        header = (response.headers if response else {}).get("retry-after")
        if header:
            header = header.strip()
            if header.isdigit():
                return min(float(header), MAX_WAIT)
            try:
                when = email.utils.parsedate_to_datetime(header)
            except (TypeError, ValueError):
                when = None
            if when is not None and when.tzinfo is not None:
                return min(max((when - timezone.now()).total_seconds(), 0.0), MAX_WAIT)
        return min(self.source.backoff_seconds * 2**attempt, MAX_WAIT)

    # -- the token --------------------------------------------------------------------

    def _take_tokens(self, response: Response, what: str) -> bool:
        if response.status not in (200, 201):
            return False
        body = response.json(what)
        body = body if isinstance(body, dict) else {}
        access = body.get("access_token") or body.get("accessToken") or body.get("token")
        if not isinstance(access, str) or not access:
            raise PullFailed(f"{what}: no access_token in the answer")
        self.access = access
        self.refresh = body.get("refresh_token") or body.get("refreshToken") or self.refresh
        expires_in = body.get("expires_in")
        number = isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool)
        self.expires_at = time.monotonic() + expires_in if number else None
        return True

    def login(self) -> None:
        source = self.source
        url = self.url(source.token_url)
        check_url(source, url)  # before reading a secret for it
        credentials = {
            source.username_field: secret(source.username),
            "password": secret(source.password),
        }
        self.counters.token_requests += 1
        response = self.send("POST", url, credentials, auth=False)
        if not self._take_tokens(response, "login"):
            raise PullFailed(f"login refused: HTTP {response.status}: {response.body[:200]!r}")

    def renew(self) -> None:
        """A new access token: from the refresh token when there is one, else log in."""
        if self.refresh and self.source.refresh_url:
            self.counters.token_requests += 1
            body = {self.source.refresh_field: self.refresh}
            response = self.send("POST", self.url(self.source.refresh_url), body, auth=False)
            if self._take_tokens(response, "token refresh"):
                return
        self.login()

    def _token_ready(self) -> None:
        if not self.source.token_url:
            return
        if self.access is None:
            self.login()
        elif self.expires_at is not None and time.monotonic() >= self.expires_at - EXPIRY_MARGIN:
            self.renew()

    def get(self, url: str) -> Response:
        """GET a page: authenticated, renewed once on a 401, retried; anything but 200 fails."""
        self._token_ready()
        response = self.send("GET", url)
        if response.status == 401 and self.source.token_url:
            self.renew()
            response = self.send("GET", url)
        if response.status != 200:
            raise PullFailed(f"GET {url}: HTTP {response.status}: {response.body[:200]!r}")
        return response


# -- paging ---------------------------------------------------------------------------


def _records(source: HttpSource, body, url: str) -> list:
    records = dig(body, source.items_key) if source.items_key else body
    if not isinstance(records, list):
        where = f"at {source.items_key!r}" if source.items_key else "as the body"
        raise PullFailed(f"GET {url}: no list of records {where}")
    return records


def _with_query(url: str, **params) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.update({k: str(v) for k, v in params.items()})
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _next_link(source: HttpSource, response: Response, body, url: str) -> str | None:
    link = dig(body, source.next_key) if isinstance(body, dict) and source.next_key else None
    if not link:
        header = response.headers.get("link", "")
        for part in header.split(","):
            target, _, params = part.partition(";")
            if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
                link = target.strip().strip("<>")
    return urllib.parse.urljoin(url, link) if isinstance(link, str) and link else None


def pages(client: Client):
    """(url, records) of every page, in order."""
    source = client.source
    first = client.url(source.path)
    if source.pagination == Pagination.OFFSET:
        offset = 0
        for _ in range(MAX_PAGES):
            url = _with_query(first, offset=offset, limit=source.page_size)
            records = _records(source, client.get(url).json(f"GET {url}"), url)
            yield url, records
            if len(records) < source.page_size:
                return
            offset += len(records)
    else:
        url, seen = first, set()
        for _ in range(MAX_PAGES):
            seen.add(url)
            response = client.get(url)
            body = response.json(f"GET {url}")
            yield url, _records(source, body, url)
            url = _next_link(source, response, body, url)
            if url is None:
                return
            if url in seen:
                raise PullFailed(f"the next link goes back to {url}")
    raise PullFailed(f"more than {MAX_PAGES} pages")


# -- a pull ---------------------------------------------------------------------------


def fetch(source: HttpSource, target, counters: Counters, sleep=time.sleep) -> int:
    """Write every record of every page to `target` (a binary file); the record count."""
    source_origins(source)  # every configured URL is http(s) before anything is sent
    client = Client(source, counters, sleep)
    count = 0
    try:
        for url, records in pages(client):
            info = {"url": url, "first_line": count + 1, "records": len(records)}
            counters.pages_info.append(info)
            for record in records:
                target.write(orjson.dumps(record) + b"\n")
            count += len(records)
    finally:
        client.close()
    return count


def http_pull_start(*, source: str, requested_by=None, ingest: bool = True) -> HttpPull:
    """Queue a pull of the named source; the task starts after commit."""
    pull = HttpPull.objects.create(
        source=HttpSource.objects.get(name=source), requested_by=requested_by, ingest=ingest
    )
    from ingestion.tasks import pull_http_source

    transaction.on_commit(lambda: pull_http_source.delay(pull.pk))
    return pull


def http_pull_execute(pull_id: int, task_id: str = "", sleep=time.sleep) -> HttpPull:
    """Fetch every page, land the file, then (if `ingest`) run its ingestion here. The
    pull is claimed first (datalake/runs/): a finished one is left alone."""
    return lifecycle.execute(
        HttpPull, pull_id, lambda pull: _pull(pull, task_id, sleep), task_id=task_id,
        queryset=HttpPull.objects.select_related("source"),
    )  # fmt: skip


def _pull(pull: HttpPull, task_id: str, sleep) -> None:
    from datalake.catalog.files import landing_dir
    from datalake.catalog.sync import sync_resources
    from ingestion.daily.services import display_path, ingestion_run_execute

    folder = landing_dir() / pull.source.name
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{pull.started_at:%Y-%m-%dT%H%M%SZ}-pull{pull.pk}.jsonl"
    partial = final.with_name(final.name + ".part")
    counters = Counters()
    try:
        with open(partial, "wb") as target:
            pull.records = fetch(pull.source, target, counters, sleep)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        logger.exception("Pull %s of %s failed", pull.pk, pull.source.name)
        return _finish(pull, counters, RunStatus.FAILED, error=str(exc)[:4000] or repr(exc))
    if not pull.records:
        partial.unlink()
        return _finish(pull, counters, RunStatus.SUCCEEDED)
    partial.rename(final)
    pull.path = display_path(final)
    sync_resources()  # raw_<source> exists from the first landed file on
    if pull.ingest:
        pull.run = IngestionRun.objects.create(source=pull.source.name, path=pull.path)
        pull.run = ingestion_run_execute(pull.run.pk, task_id=task_id)
        if pull.run.status == RunStatus.FAILED:
            error = f"ingestion run {pull.run.pk} failed: {pull.run.error}"
            return _finish(pull, counters, RunStatus.FAILED, error=error[:4000])
    return _finish(pull, counters, RunStatus.SUCCEEDED)


def _finish(pull: HttpPull, counters: Counters, status: str, error: str = "") -> None:
    lifecycle.finish(
        pull, status, error=error, pages=len(counters.pages_info),
        pages_info=counters.pages_info, requests=counters.requests, retries=counters.retries,
        token_requests=counters.token_requests, records=pull.records or 0, path=pull.path,
        run=pull.run,
    )  # fmt: skip


def pull_enabled_sources() -> list[HttpPull]:
    """The daily scan: land a new pull of every enabled source (the scan ingests it)."""
    pulls = []
    for source in HttpSource.objects.filter(enabled=True):
        pull = HttpPull.objects.create(source=source, ingest=False)
        pulls.append(http_pull_execute(pull.pk))
    return pulls
