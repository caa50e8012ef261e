"""The real Delta Sharing connector against a live portal (a plugin of tests/conftest.py).

- `delta_sharing_python` (session): the Python of a separate virtual environment holding
  the `delta-sharing` connector (it pins other pyarrow/pandas than the portal, so it never
  goes into `.venv`). Made on first use at `DELTA_SHARING_VENV` (default
  `run/venvs/delta-sharing-<version>/`, git-ignored) and reused once complete: the marker
  file naming the installed requirement is written last.
- `sharing_server`: gunicorn (2 workers) on a free port serving the test database, with
  `LAKE_ROOT` and `SHARING_ROOT` under the test's `tmp_path` (the `lake` fixture's
  folder, which the test process uses too); `sharing_servers` starts more of them with
  other environment variables (a short URL lifetime, ...). The test using them needs
  `pytest.mark.django_db(transaction=True)`: the server's workers only see committed data.
- `recipients`: `recipients(user)` -> a `Recipient`: a token of that user, its profile
  file, and `run(command, ...)`, which runs tests/support/ds_client.py in the connector's
  environment (one subprocess, JSON on stdout).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from accounts.models import ApiToken
from tests.support.net import free_port
from tests.support.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]
CONNECTOR = "delta-sharing==1.4.2"
DEFAULT_VENV = ROOT / "run" / "venvs" / "delta-sharing-1.4.2"
MARKER = ".complete"  # written last, holding CONNECTOR: a venv without it is remade
CLIENT = Path(__file__).with_name("ds_client.py")
SHARE = "lake"
ENDPOINT = "/api/v1/delta-sharing"


# -- the connector's virtual environment ---------------------------------------------------


def connector_venv() -> Path:
    """Where the connector's environment is: DELTA_SHARING_VENV (a relative path is from
    the repository's root) or the default."""
    configured = os.environ.get("DELTA_SHARING_VENV") or getattr(settings, "DELTA_SHARING_VENV", "")
    return (ROOT / configured).resolve() if configured else DEFAULT_VENV


def ensure_connector_venv(path: Path | None = None) -> Path:
    """The Python of a complete connector environment at `path`, made when missing or
    incomplete (a previous attempt interrupted: removed and made again). A lock file
    beside it keeps two sessions from building it at once."""
    path = path or connector_venv()
    python = path / "bin" / "python"
    marker = path / MARKER
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text().strip() == CONNECTOR and python.exists():
            return python
        if path.exists():
            shutil.rmtree(path)
        base = shutil.which("python3.11") or sys.executable
        _checked([base, "-m", "venv", str(path)], "creating the connector's venv")
        _checked(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-input", CONNECTOR],
            f"pip install {CONNECTOR}",
        )  # fmt: skip
        _checked([str(python), "-c", "import delta_sharing, pandas"], "importing the connector")
        marker.write_text(CONNECTOR + "\n")
    return python


def _checked(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def delta_sharing_python() -> Path:
    """The connector environment's Python (made the first time: ~30 s)."""
    return ensure_connector_venv()


# -- the live server -----------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str  # http://127.0.0.1:<port>
    process: subprocess.Popen
    log: Path
    lake_root: Path
    sharing_root: Path

    @property
    def endpoint(self) -> str:
        """What a profile names: the protocol's base URL, no trailing slash."""
        return self.url + ENDPOINT

    def http(self, token: str | None = None, **kwargs) -> httpx.Client:
        """An httpx client of this server (`Authorization: Bearer <token>` when given)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{db['USER']}{password}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def start_server(lake_root: Path, sharing_root: Path, log: Path, **env: str) -> LiveServer:
    """gunicorn on the test database, its lake at `lake_root`, serving once it answers."""
    port = free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "datalake.settings",
        "DATABASE_URL": _database_url(),
        "LAKE_ROOT": str(lake_root),
        "SHARING_ROOT": str(sharing_root),
        "PROMETHEUS_MULTIPROC_DIR": str(log.parent / f"prom-{port}"),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # none: nothing produces
        "REQUEST_LOG_FLUSH_MS": "0",  # each request's log entry stored before its answer
        **env,
    }
    Path(environment["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).parent / "gunicorn"), "datalake.wsgi", "--workers", "2",
        "--bind", f"127.0.0.1:{port}", "--timeout", "120", "--access-logfile", "-",
        "--logger-class", "datalake.platform.logging.GunicornLogger",
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log, lake_root, sharing_root)

    def serving() -> bool:
        assert process.poll() is None, f"gunicorn exited:\n{log.read_text()[-5000:]}"
        try:
            httpx.get(server.url + "/api/v1/", timeout=5)  # no broker probe, unlike /healthz
        except httpx.TransportError:
            return False
        return True

    try:
        wait_until(serving, timeout=60, what="gunicorn to serve", interval=0.2)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture
def sharing_servers(lake, tmp_path, settings):
    """`start(**env)` -> a LiveServer on this test's lake; all stopped at the end.

    The test process shares the lake and the sharing folder (its settings point there),
    so files written by merges in the test and by the server are the same files."""
    sharing_root = tmp_path / "sharing"
    sharing_root.mkdir(exist_ok=True)
    settings.SHARING_ROOT = sharing_root
    started: list[LiveServer] = []

    def start(**env: str) -> LiveServer:
        log = tmp_path / f"gunicorn-{len(started)}.log"
        server = start_server(lake, sharing_root, log, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def sharing_server(sharing_servers) -> LiveServer:
    """gunicorn with 2 workers on the test database and this test's lake."""
    return sharing_servers()


# -- recipients: a token, a profile file, the connector --------------------------------------


class ConnectorError(AssertionError):
    """The connector failed: `body` is what ds_client.py printed (error, status, message)."""

    def __init__(self, body: dict, stderr: str):
        super().__init__(f"connector failed: {body}\n{stderr[-3000:]}")
        self.body = body
        self.stderr = stderr

    @property
    def status(self) -> int | None:
        return self.body.get("status")


@dataclass
class Recipient:
    user: object
    token: str
    profile: Path
    python: Path
    server: LiveServer
    runs: list[dict] = field(default_factory=list)

    def url(self, table: str, schema: str = "tables") -> str:
        """The connector's table URL: `<profile>#lake.<schema>.<table>`."""
        return f"{self.profile}#{SHARE}.{schema}.{table}"

    def run(self, command: str, **arguments) -> dict:
        """ds_client.py's JSON answer; a ConnectorError when the connector failed."""
        done = subprocess.run(
            [str(self.python), str(CLIENT), str(self.profile), command, json.dumps(arguments)],
            capture_output=True, text=True, timeout=600, cwd=self.profile.parent,
            env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
                 "NO_PROXY": "*", "no_proxy": "*"},
        )  # fmt: skip
        try:
            body = json.loads(done.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise AssertionError(
                f"ds_client.py printed no JSON ({done.returncode}):\n{done.stdout[-3000:]}\n"
                f"{done.stderr[-3000:]}"
            ) from None
        self.runs.append({"command": command, **arguments})
        if done.returncode != 0 or "error" in body:
            raise ConnectorError({**body, "returncode": done.returncode}, done.stderr)
        return body

    def list_all_tables(self) -> list[tuple[str, str, str]]:
        tables = self.run("list_all_tables")["tables"]
        return sorted((t["share"], t["schema"], t["name"]) for t in tables)

    def load(self, table: str, schema: str = "tables", **options) -> dict:
        """`load_as_pandas` (version=, timestamp=, limit=): columns, dtypes, rows."""
        return self.run("load", url=self.url(table, schema), **options)

    def changes(self, table: str, schema: str = "tables", **options) -> dict:
        """`load_table_changes_as_pandas` (starting_version=, ending_version=, ...)."""
        return self.run("changes", url=self.url(table, schema), **options)

    def version(self, table: str, schema: str = "tables", **options) -> int:
        return self.run("version", url=self.url(table, schema), **options)["version"]


def write_profile(path: Path, endpoint: str, token: str, expiration: str | None = None) -> Path:
    """A Delta Sharing profile file (shareCredentialsVersion 1)."""
    profile = {"shareCredentialsVersion": 1, "endpoint": endpoint, "bearerToken": token}
    if expiration:
        profile["expirationTime"] = expiration
    path.write_text(json.dumps(profile))
    return path


@pytest.fixture
def recipients(delta_sharing_python, tmp_path, request):
    """`recipients(user, server=None, expires_at=None)` -> a Recipient of `sharing_server`
    (or `server`) with a new token of `user` (expiring at `expires_at`)."""
    folder = tmp_path / "profiles"
    folder.mkdir(exist_ok=True)

    def make(user, server: LiveServer | None = None, expires_at=None) -> Recipient:
        server = server or request.getfixturevalue("sharing_server")
        _token, key = ApiToken.issue(user, expires_at=expires_at)
        profile = write_profile(folder / f"{user.username}-{len(list(folder.iterdir()))}.share",
                                server.endpoint, key)  # fmt: skip
        return Recipient(user, key, profile, delta_sharing_python, server)

    return make


# -- comparing the connector's rows with the rows API's ------------------------------------


def _value(kind: str, value):
    """One cell, comparable whichever side it comes from: the rows API's JSON (decimals as
    strings, timestamps with Z) or ds_client.py's (Decimal -> str, pandas' isoformat)."""
    if value is None:
        return None
    if kind == "decimal":
        return Decimal(str(value))
    if kind == "timestamp":
        moment = dt.datetime.fromisoformat(str(value))
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    if kind == "date":
        return dt.date.fromisoformat(str(value)[:10])
    if kind == "integer":
        return int(value)
    return value


def comparable(rows: list[dict], types: dict[str, str]) -> list[tuple]:
    """Rows as sorted tuples of (column, value) pairs, each value by its catalog type
    (`types`: column -> type; a column not in it is compared as it is)."""
    out = [
        tuple(sorted((name, _value(types.get(name, ""), value)) for name, value in row.items()))
        for row in rows
    ]
    return sorted(out, key=repr)


def column_types(client, resource: str) -> dict[str, str]:
    """column -> catalog type, from `GET /api/v1/resources/<name>/` (as `client` sees it:
    a column its grant masks is a string, the pseudonym)."""
    body = client.get(f"/api/v1/resources/{resource}/").json()
    masked = set((body.get("restrictions") or {}).get("masked") or ())
    return {c["name"]: "string" if c["name"] in masked else c["type"] for c in body["columns"]}
