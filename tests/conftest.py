"""Shared fixtures: users and API clients, a lake folder, the local broker.

Everything here is real: the PostgreSQL test database, Redis, the Tansu broker.
"""

from __future__ import annotations

import os
import sys

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from datalake.models import Resource
from datalake.platform.devbroker import start_broker, stop_broker
from tests.support.factories import client_for, give, make_user
from tests.support.net import free_port

# Fixtures of the support package: `topic` (pipeline tests), `stored` (restricted reads),
# `replica` (a streaming replica).
pytest_plugins = [
    "tests.support.deltasharing",
    "tests.support.pipeline",
    "tests.support.replica",
    "tests.support.restrictions",
    "tests.support.world",
]


def pytest_configure(config):
    # Hashing with PBKDF2 costs ~0.5 s per user: the tests need users, not strong hashes.
    django_settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Tests change data between identical queries: no reuse of counts.
    django_settings.LAKE_COUNT_CACHE_SECONDS = 0
    # Quotas are counted (one Redis trip a request) but limit nothing, except where a test
    # sets a limit (tests/accounts/test_quotas.py): walks and fuzzing make many requests.
    django_settings.QUOTA_REQUESTS_PER_MINUTE = 0
    django_settings.QUOTA_ROWS_PER_DAY = 0
    # Merges derive their own versions (search, metrics) in their transaction; the tests
    # of the followers themselves turn this off and run them (tests/datalake/test_followers.py).
    # The environment too: the servers and jobs the tests start inherit it.
    django_settings.FOLLOWERS_EAGER = True
    os.environ["FOLLOWERS_EAGER"] = "true"


def pytest_terminal_summary(terminalreporter):
    """How much the fuzzing (tests/security/test_fuzz.py) ran, when it ran."""
    fuzz = sys.modules.get("tests.security.test_fuzz")
    if fuzz is not None and (fuzz.STATS.examples or fuzz.STATS.edge_requests):
        terminalreporter.write_sep("-", "fuzzing")
        terminalreporter.write_line(fuzz.STATS.summary())


@pytest.fixture(autouse=True)
def _forget_page_starts():
    """Tests roll their data back: a version number (0 above all) may come back with other
    rows, which a database in use never does."""
    from datalake.query import guard
    from datalake.query.rows import PageStarts

    PageStarts.known.entries.clear()
    guard._costs.entries.clear()  # estimates of the rows another test had


@pytest.fixture(scope="session")
def broker():
    """A real Kafka-protocol broker on a free local port, for the whole session."""
    port = free_port()
    process = start_broker(port)
    previous = django_settings.KAFKA_BOOTSTRAP_SERVERS
    django_settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{port}"
    yield f"127.0.0.1:{port}"
    django_settings.KAFKA_BOOTSTRAP_SERVERS = previous
    stop_broker(process)


@pytest.fixture
def lake(tmp_path, settings):
    """An empty lake root; `landing/` is where delivered files go."""
    settings.LAKE_ROOT = tmp_path
    settings.SHARING_ROOT = tmp_path / "sharing"
    (tmp_path / "landing").mkdir()
    return tmp_path


@pytest.fixture(autouse=True)
def _request_log_written():
    """What a test's requests queued for the request log's writer thread is stored before
    the test's database is flushed: the writer's INSERT (the request log, then the seal
    queue through its trigger) beside the flush's TRUNCATE of both could deadlock.
    Set up after pytest-django's own autouse database fixture, so torn down before it."""
    yield
    from lineage.writer import flush

    flush()


@pytest.fixture(autouse=True)
def _clear_cache():
    """The cache (Redis db 1) holds login-failure counters; each test starts clean."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def alice(db) -> User:
    return make_user("alice")


@pytest.fixture
def staff(db) -> User:
    return make_user("root", is_staff=True, is_superuser=True)


@pytest.fixture
def api(alice) -> APIClient:
    """An authenticated client: alice, no staff rights, no grants."""
    return client_for(alice)


@pytest.fixture
def reader(db) -> User:
    """bob, who holds `read` on every table."""
    bob = make_user("bob")
    for resource in Resource.objects.filter(kind="table"):
        give(bob, resource.name, "read")
    return bob


@pytest.fixture
def read_api(reader) -> APIClient:
    return client_for(reader)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()
