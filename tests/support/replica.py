"""A real streaming replica of the test server (scripts/pg_replica.py), as a database alias.

`streaming_replica` (a module fixture) copies the primary with `pg_basebackup`, starts the
standby and adds the alias `replica_1` (the test database, read on the standby) for the
module's tests, then removes it: the rest of the suite runs without replicas. The tests
name the alias in their marker (`DATABASES`: Django lets a test use the aliases it names),
a mirror of `default` for Django's test set-up (never flushed: a standby is read-only).
`replica` (per test) resumes the replay and waits until the standby has caught up.
"""

from __future__ import annotations

import contextlib

import pytest
from django.db import connections

from datalake.platform import replicas
from datalake.settings import replica_database
from scripts.pg_replica import LocalReplica

ALIAS = "replica_1"
DATABASES = ["default", ALIAS]


@pytest.fixture(scope="module")
def streaming_replica(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        primary = connections["default"].settings_dict
        url = f"postgresql://{primary['USER'] or 'postgres'}@{primary['HOST'] or '127.0.0.1'}"
        url += f":{primary['PORT'] or 5432}/postgres"
        standby = LocalReplica(url).start()
    # As the settings make a replica of DATABASE_REPLICA_URLS, for the test database.
    config = replica_database(standby.url(primary["NAME"]))
    configured = connections.configure_settings({"default": primary, ALIAS: config})
    connections.settings[ALIAS] = configured[ALIAS]  # with Django's defaults
    replicas.forget()
    try:
        yield standby
    finally:
        try:  # the standby stops whatever its connection's state (a test may kill it)
            with contextlib.suppress(Exception):
                connections[ALIAS].close()
            with contextlib.suppress(AttributeError):
                del connections[ALIAS]
            del connections.settings[ALIAS]
            replicas.forget()
        finally:
            standby.close()


@pytest.fixture
def replica(streaming_replica):
    """The standby, replaying and caught up with the primary; what this process knew of
    it forgotten."""
    replicas.forget()
    streaming_replica.resume_replay()
    streaming_replica.caught_up()
    yield streaming_replica
    streaming_replica.resume_replay()
    replicas.forget()
