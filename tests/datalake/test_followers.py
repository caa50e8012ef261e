"""Followers (datalake.lake.followers): merges write rows and versions; the search entries
and the metrics aggregates follow the committed versions, crash-safe, and reads say how
fresh they are.

The rest of the suite runs with FOLLOWERS_EAGER (a merge derives its own version); here
it is off, and the followers run as they do in production: `manage.py run_followers`
processes (killed with SIGKILL mid-batch), or `catch_up()` called where a test says so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor

from datalake.lake import followers
from datalake.models import FollowerPosition, Resource
from datalake.search import index
from ingestion.models import IngestionRun
from metrics import aggregates
from tests.support.lake import merge, row
from tests.support.polling import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
DERIVED = {  # each derived table, and the columns that say its state (no surrogate ids)
    "metrics_product_day": "product_id, day, quantity, transactions, total_eur",
    "metrics_user_type_day": "user_id, transaction_type, day, transactions, total_eur",
    "metrics_product_total": "product_id, quantity, transactions, total_eur",
    "metrics_user_type_total": "user_id, transaction_type, transactions, total_eur",
    "metrics_minute": "minute, transactions, total_eur",
    "search_entries": "resource, key, at, valid_from, valid_to, raw_source, raw_file, "
    "raw_line, doc::text",
}


@pytest.fixture(autouse=True)
def followers_apart(settings):
    settings.FOLLOWERS_EAGER = False


def snapshot() -> dict[str, list[tuple]]:
    """Every derived table's rows (groups with nothing left count as absent)."""
    out = {}
    with connection.cursor() as cursor:
        for table, columns in DERIVED.items():
            where = "WHERE transactions <> 0" if table.startswith("metrics_") else ""
            cursor.execute(f"SELECT {columns} FROM {table} {where} ORDER BY {columns}")
            out[table] = cursor.fetchall()
    return out


def rebuilt() -> dict[str, list[tuple]]:
    """The derived tables recomputed from scratch from the rows (then rolled back)."""
    state = {}

    class Undo(Exception):
        pass

    try:
        with transaction.atomic():
            aggregates.rebuild()
            index.rebuild()
            state.update(snapshot())
            raise Undo
    except Undo:
        pass
    return state


def position(name: str, resource: str = "transactions") -> int:
    return followers.state(name, resource).derived_through_version


def landed_run(tmp_lake: Path, name: str) -> IngestionRun:
    """A run of a landed file (for the search entries' file and line provenance)."""
    path = tmp_lake / "landing" / "transactions" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return IngestionRun.objects.create(source="transactions", path=f"landing/transactions/{name}")


def history(tmp_lake: Path) -> int:
    """Versions of every kind the followers must follow: a file's merge (with file
    lines), corrections of it, a pipeline-like batch, a refund that leaves the metrics.
    Returns the current version."""
    first = landed_run(tmp_lake, "2026-11-18.jsonl")
    merge([row(i) for i in range(1, 30)], source=f"ingestion:{first.pk}")
    merge([row(3, amount_eur=99), row(4, status="refunded"), row(40)], source="pipeline:0")
    second = landed_run(tmp_lake, "2026-11-19.jsonl")
    merge([row(5, product_id="P9"), row(41)], source=f"ingestion:{second.pk}")
    merge([row(6, status="completed", quantity=7)], source="repush:1")
    return Resource.objects.get(name="transactions").current_version


def run_followers(*args: str, **env: str) -> subprocess.Popen:
    db = connection.settings_dict
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "datalake.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}",
        "FOLLOWERS_EAGER": "false",
        "PGAPPNAME": "follower-under-test",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_followers", *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def in_pause(last_statement: str) -> bool:
    """The follower process holds its batch's transaction open after `last_statement`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT query FROM pg_stat_activity WHERE application_name = 'follower-under-test' "
            "AND state = 'idle in transaction'"
        )
        return any(last_statement in query for (query,) in cursor.fetchall())


def test_merges_leave_derivation_to_the_followers_which_catch_up_in_order(lake):
    before = snapshot()
    current = history(lake)
    assert snapshot() == before  # the merges wrote rows and versions only
    assert position("metrics") == position("search") == 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM search_lines")
        assert cursor.fetchone()[0] == 29 + 2  # the two files' rows, for the follower

    assert followers.catch_up() > 0
    assert position("metrics") == position("search") == current
    assert snapshot() == rebuilt()
    with connection.cursor() as cursor:  # file lines consumed; provenance kept
        cursor.execute("SELECT count(*) FROM search_lines")
        assert cursor.fetchone()[0] == 0
        cursor.execute(
            "SELECT raw_file, raw_line FROM search_entries WHERE key = 'TX-0005' ORDER BY 1"
        )
        assert cursor.fetchall() == [("2026-11-18.jsonl", 5), ("2026-11-19.jsonl", 5)]
    assert followers.catch_up() == 0  # nothing left: idempotent


@pytest.mark.slow
@pytest.mark.parametrize(
    ("follower", "last_statement"),
    [("metrics", "DROP TABLE metrics_delta"), ("search", "INSERT INTO search_entries")],
)
def test_a_follower_killed_between_applying_and_its_position_resumes_to_the_same_state(
    lake, follower, last_statement
):
    """SIGKILL while a batch is applied and its position not yet stored: nothing of the
    batch stays; restarted, the follower ends where an undisturbed one does (a rebuild)."""
    history(lake)
    before = snapshot()
    process = run_followers("--only", follower, "--once", FOLLOWER_PAUSE_BEFORE_POSITION="60")
    try:
        wait_until(lambda: in_pause(last_statement), timeout=60, what="the batch applied")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    wait_until(lambda: not in_pause(""), timeout=30, what="PostgreSQL to end its transaction")
    assert position(follower) == 0
    assert snapshot() == before  # the killed batch left nothing

    process = run_followers("--only", follower, "--once")
    output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == 0, output
    current = Resource.objects.get(name="transactions").current_version
    assert position(follower) == current
    expected = rebuilt()
    got = snapshot()
    for table in DERIVED:
        ours = table.startswith("search_") == (follower == "search")
        assert (got[table] == expected[table]) if ours else (got[table] == before[table]), table


@pytest.mark.slow
def test_the_follower_process_follows_new_versions_as_they_commit(lake, settings):
    """`run_followers` wakes on each version's NOTIFY (its poll here is 60 s)."""
    process = run_followers(FOLLOWER_POLL_SECONDS="60")
    try:
        merge([row(i) for i in range(1, 5)])
        current = Resource.objects.get(name="transactions").current_version
        wait_until(
            lambda: position("metrics") == position("search") == current,
            timeout=30,
            what="the followers to derive the new version",
        )
        merge([row(2, amount_eur=500)])
        current = Resource.objects.get(name="transactions").current_version
        wait_until(
            lambda: position("metrics") == position("search") == current,
            timeout=30,
            what="the followers to derive the new version",
        )
        assert snapshot() == rebuilt()
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output


def test_metrics_and_search_answer_at_the_followers_position_never_ahead_of_rows(lake, read_api):
    """Behind, the metrics are those of the follower's version (the table's edges read as
    of it too) and say so; the rows API shows the newer version first."""
    merge([row(i, timestamp=row(1)["timestamp"]) for i in range(1, 5)])
    followers.catch_up()
    old = Resource.objects.get(name="transactions").current_version
    params = {"x": 5, "since": "2026-11-18T00:00:00Z", "until": "2026-11-18T12:00:00Z"}
    first = read_api.get("/api/v1/metrics/top-products/", params)
    assert first.status_code == 200
    assert (first.json()["as_of_version"], first["X-Data-Version"]) == (old, str(old))

    merge([row(9, timestamp=row(1)["timestamp"], product_id="P-NEW", quantity=50)])
    new = Resource.objects.get(name="transactions").current_version
    rows = read_api.get("/api/v1/resources/transactions/rows/")
    assert rows["X-Data-Version"] == str(new)
    behind = read_api.get("/api/v1/metrics/top-products/", params)
    assert behind.json()["as_of_version"] == old and behind.json()["lag_seconds"] >= 0
    assert behind.json()["results"] == first.json()["results"]  # not P-NEW: not derived yet
    assert read_api.get("/api/v1/metrics/top-products/", params, HTTP_IF_NONE_MATCH=first["ETag"]
                     ).status_code == 304  # fmt: skip
    found = read_api.get("/api/v1/search/", {"q": "P-NEW", "since": "2026-11-01"}).json()
    assert found["total"] == 0 and found["as_of_version"] == old

    followers.catch_up()
    caught = read_api.get("/api/v1/metrics/top-products/", params)
    assert caught.json()["as_of_version"] == new and caught.json()["lag_seconds"] == 0
    assert caught.json()["results"][0]["product_id"] == "P-NEW"
    assert caught["ETag"] != first["ETag"]
    found = read_api.get("/api/v1/search/", {"q": "P-NEW", "since": "2026-11-01"}).json()
    assert found["total"] == 1 and found["as_of_versions"]["transactions"] == new


def test_min_version_waits_for_the_follower_then_answers_or_503(lake, read_api, settings):
    merge([row(i) for i in range(1, 5)])
    wanted = Resource.objects.get(name="transactions").current_version
    settings.FOLLOWER_WAIT_SECONDS = 0.3
    late = read_api.get("/api/v1/metrics/spent-last-minutes/", {"min_version": wanted})
    assert late.status_code == 503 and late["Retry-After"] == "1"
    assert late.json()["code"] == "not_derived_yet"
    assert (late.json()["min_version"], late.json()["as_of_version"]) == (wanted, 0)
    search = {"q": "x", "since": "2026-11-01", "min_version": wanted}
    assert read_api.get("/api/v1/search/", search).status_code == 503

    settings.FOLLOWER_WAIT_SECONDS = 30
    helper = threading.Timer(0.5, lambda: (followers.catch_up(), connection.close()))
    helper.start()
    started = time.monotonic()
    answered = read_api.get("/api/v1/metrics/spent-last-minutes/", {"min_version": wanted})
    helper.join()
    assert answered.status_code == 200, answered.json()
    assert answered.json()["as_of_version"] >= wanted
    assert time.monotonic() - started >= 0.4  # it did wait for the follower
    now = read_api.get("/api/v1/search/", search)
    assert now.status_code == 200 and now.json()["as_of_version"] == wanted
    ahead = read_api.get("/api/v1/metrics/spent-last-minutes/", {"min_version": wanted + 1})
    assert ahead.status_code == 409 and ahead.json()["code"] == "version_ahead"
    assert ahead.json()["current_version"] == wanted  # at once: no wait for what is not there
    for bad in ("-1", "x", "1.5", "9" * 30):
        refused = read_api.get("/api/v1/metrics/spent-last-minutes/", {"min_version": bad})
        assert refused.status_code == 400 and "min_version" in refused.json()["errors"]


def test_the_health_check_and_catalog_say_how_far_each_follower_is(lake, read_api, anon, broker):
    merge([row(i) for i in range(1, 5)])
    current = Resource.objects.get(name="transactions").current_version
    health = anon.get("/healthz").json()  # open to anyone: lags, no version numbers
    assert health["status"] == "ok"  # a follower behind is no outage of the API
    assert health["followers"]["metrics"]["transactions"]["lag_versions"] == current
    entry = read_api.get("/api/v1/resources/transactions/").json()
    assert entry["derived_through_version"] == {"metrics": 0, "search": 0}
    followers.catch_up()
    health = anon.get("/healthz").json()
    assert health["followers"]["search"]["transactions"] == {"lag_versions": 0, "lag_seconds": 0}
    entry = read_api.get("/api/v1/resources/transactions/").json()
    assert entry["derived_through_version"] == {"metrics": current, "search": current}


@pytest.mark.slow
def test_the_migration_starts_the_followers_where_merges_left_the_derived_tables(lake, settings):
    """A database of the former design (each merge derived its version itself) migrates
    to the followers keeping every derived row: they start at the current versions, with
    nothing to apply, and the derived tables equal a rebuild from scratch."""
    settings.FOLLOWERS_EAGER = True  # the former design: derived in the merge
    history(lake)
    FollowerPosition.objects.all().delete()
    executor = MigrationExecutor(connection)
    executor.migrate([("datalake", "0005_data_stamps")])  # before the followers
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    settings.FOLLOWERS_EAGER = False
    current = Resource.objects.get(name="transactions").current_version
    assert position("metrics") == position("search") == current
    assert followers.catch_up() == 0
    assert snapshot() == rebuilt()
