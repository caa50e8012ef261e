"""Followers: what reads need besides the rows, derived from committed versions.

A merge's transaction writes the rows, the version and (for the pipeline) the offsets:
what must be durable together. What is derived from them (the search entries, the
metrics aggregates) follows: a follower reads the committed versions of the resources it
follows in order, from its position (`FollowerPosition`), applies a batch of them and
moves its position **in the same transaction**. So:

- a follower killed at any point (before, during or after applying a batch) leaves its
  derived state and its position as they were at its last commit, and resumes from
  there: the result is the state of a follower that never stopped;
- nothing derived is ever ahead of the rows: a follower only reads versions that are
  committed (`Resource.current_version`), and versions become current in order
  (`datalake.lake.versions`), so none below it can appear later;
- several processes may run the same follower: the position row is locked while a
  batch is applied, so they take turns.

Apps register theirs in `AppConfig.ready()` (`register(Follower(...))`): the search
index (`datalake.search.index`) and the metrics aggregates (`metrics.aggregates`).
They run in `manage.py run_followers` (started by `make run`, the demo and
docker-compose), woken by the `NOTIFY lake_versions` each new version sends, or by their
own poll. With `FOLLOWERS_EAGER` (the test settings; never in production) a merge runs
them itself at its end, inside its own transaction, as the portal did before followers.

Reads say how fresh they are: `state(follower, resource)` gives the position and the
lag (in versions, and in seconds since the oldest version not yet derived was made);
`wait_for(...)` waits, bounded, for a version to be derived.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from datalake.platform import replicas

logger = logging.getLogger(__name__)

CHANNEL = "lake_versions"  # NOTIFY channel: the payload is the resource's name


@dataclass(frozen=True)
class VersionRow:
    version: int
    source: str
    created_at: dt.datetime


@dataclass(frozen=True)
class Batch:
    """Versions of `resource` (`after` < v <= `through`, those that exist, in order)."""

    resource: str
    after: int
    versions: tuple[VersionRow, ...]

    @property
    def through(self) -> int:
        return self.versions[-1].version


@dataclass(frozen=True)
class Follower:
    """`apply(batch)` derives the batch's versions (inside the follower's transaction)."""

    name: str
    resources: Callable[[], Iterable[str]]  # the versioned resources it follows
    apply: Callable[[Batch], None]
    max_versions: int = 50  # versions applied in one transaction
    # Run by the follower process when it has nothing to apply, at most once a minute
    # (e.g. dropping derived state nobody needs any more).
    housekeeping: Callable[[], object] | None = None


REGISTRY: dict[str, Follower] = {}


def register(follower: Follower) -> Follower:
    REGISTRY[follower.name] = follower
    return follower


def following(resource: str) -> list[Follower]:
    return [f for f in REGISTRY.values() if resource in set(f.resources())]


# -- applying ------------------------------------------------------------------------


def _fetch(sql: str, params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _read(sql: str, params) -> list[tuple]:
    """A request's read of the followers' state: on the replica its data comes from, if
    any (its position then matches that data), else the primary."""
    with replicas.reads().cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _lock_position(name: str, resource_id: int) -> int:
    """The follower's position on the resource, locked until the transaction ends."""
    rows = _fetch(
        "SELECT derived_through_version FROM lake_follower_position "
        "WHERE follower = %s AND resource_id = %s FOR UPDATE",
        [name, resource_id],
    )
    if rows:
        return rows[0][0]
    _fetch(  # a follower new to the resource starts from the beginning
        "INSERT INTO lake_follower_position (follower, resource_id, derived_through_version) "
        "VALUES (%s, %s, 0) ON CONFLICT DO NOTHING RETURNING 1",
        [name, resource_id],
    )
    return _lock_position(name, resource_id)


def locked_position(name: str, resource: str) -> int:
    """The follower's position on `resource`, locked until the caller's transaction ends:
    derived state built beside the follower's (at that version) does not race it."""
    assert transaction.get_connection().in_atomic_block, "call inside transaction.atomic()"
    (resource_id,) = _fetch("SELECT id FROM datalake_resource WHERE name = %s", [resource])[0]
    return _lock_position(name, resource_id)


def move_to(name: str, resource: str, version: int | None = None) -> int:
    """Set the follower's position on `resource` (None: its current version), in the
    caller's transaction: what a rebuild of the derived state from the current rows
    does once it has rebuilt it. Returns the position."""
    assert transaction.get_connection().in_atomic_block, "call inside transaction.atomic()"
    locked_position(name, resource)
    rows = _fetch(
        "UPDATE lake_follower_position p SET derived_through_version = "
        "coalesce(%s, r.current_version), derived_at = %s FROM datalake_resource r "
        "WHERE r.id = p.resource_id AND r.name = %s AND p.follower = %s "
        "RETURNING p.derived_through_version",
        [version, timezone.now(), resource, name],
    )
    return rows[0][0]


def step(follower: Follower, resource: str, *, limit: int | None = None) -> int:
    """Apply the next batch of `resource`'s versions not yet derived; the number applied.

    One transaction: the derived rows and the position commit together (or neither)."""
    with transaction.atomic():
        found = _fetch(
            "SELECT id, current_version FROM datalake_resource WHERE name = %s", [resource]
        )
        if not found:
            return 0
        resource_id, current = found[0]
        position = _lock_position(follower.name, resource_id)
        if position >= current:
            return 0
        rows = _fetch(
            "SELECT version, source, created_at FROM lineage_version "
            "WHERE resource_id = %s AND version > %s AND version <= %s ORDER BY version LIMIT %s",
            [resource_id, position, current, limit or follower.max_versions],
        )
        if not rows:  # numbers between hold no version (a gap): nothing to derive
            through = current
        else:
            batch = Batch(resource, position, tuple(VersionRow(*row) for row in rows))
            follower.apply(batch)
            through = batch.through
        pause = settings.FOLLOWER_PAUSE_BEFORE_POSITION
        if pause:  # crash-safety tests: a kill lands between applying and the position
            time.sleep(pause)
        _fetch(
            "UPDATE lake_follower_position SET derived_through_version = %s, derived_at = %s "
            "WHERE follower = %s AND resource_id = %s RETURNING 1",
            [through, timezone.now(), follower.name, resource_id],
        )
        return len(rows)


def catch_up(
    names: Iterable[str] | None = None,
    resources: Iterable[str] | None = None,
    *,
    one_batch: bool = False,
) -> int:
    """Run the followers (all, or those named) until each has derived every committed
    version of its resources (or of `resources`); the number of versions applied.
    `one_batch`: one batch per resource at most (the long-running loop, which does its
    housekeeping between batches)."""
    total = 0
    for name in names if names is not None else list(REGISTRY):
        follower = REGISTRY[name]
        wanted = set(resources) if resources is not None else None
        for resource in follower.resources():
            if wanted is not None and resource not in wanted:
                continue
            while applied := step(follower, resource):
                total += applied
                if one_batch:
                    break
    return total


def after_merge(merge) -> None:
    """The lake's `on_merged` hook: with FOLLOWERS_EAGER, the merge derives its version
    itself, in its own transaction (tests; a single process with no follower running).
    Otherwise it only tells the followers that a version is there."""
    if settings.FOLLOWERS_EAGER:
        for follower in following(merge.resource):
            while step(follower, merge.resource):
                pass
    else:
        with connection.cursor() as cursor:  # delivered when the merge commits
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, merge.resource])


# -- how fresh -----------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    """Where a follower stands on a resource."""

    follower: str
    resource: str
    derived_through_version: int
    current_version: int
    lag_seconds: float  # since the oldest version not derived yet was made (0: caught up)

    @property
    def lag_versions(self) -> int:
        return max(0, self.current_version - self.derived_through_version)


STATE_SQL = (
    "SELECT r.name, r.current_version, coalesce(p.derived_through_version, 0), "
    "(SELECT extract(epoch FROM now() - min(v.created_at)) FROM lineage_version v "
    " WHERE v.resource_id = r.id AND v.version > coalesce(p.derived_through_version, 0) "
    " AND v.version <= r.current_version) "
    "FROM datalake_resource r LEFT JOIN lake_follower_position p "
    "ON p.resource_id = r.id AND p.follower = %s WHERE r.name = ANY(%s)"
)


def state(name: str, resource: str) -> State:
    return states_of(name, [resource])[resource]


def states_of(name: str, resources: Iterable[str]) -> dict[str, State]:
    """The follower's state on each of `resources` (one query)."""
    wanted = list(resources)
    found = {
        resource: State(name, resource, position, current, max(0.0, float(lag or 0)))
        for resource, current, position, lag in _read(STATE_SQL, [name, wanted])
    }
    return {r: found.get(r, State(name, r, 0, 0, 0.0)) for r in wanted}


def states() -> list[State]:
    """Every follower's state on every resource it follows (a query per follower)."""
    return [
        found
        for follower in REGISTRY.values()
        for found in states_of(follower.name, follower.resources()).values()
    ]


def positions(resources: Iterable[str]) -> dict[str, dict[str, int]]:
    """{resource: {follower: derived_through_version}} of the followers of `resources`."""
    wanted = list(resources)
    stored = {
        (name, resource): through
        for name, resource, through in _read(
            "SELECT p.follower, r.name, p.derived_through_version FROM lake_follower_position p "
            "JOIN datalake_resource r ON r.id = p.resource_id WHERE r.name = ANY(%s)",
            [wanted],
        )
    }
    out: dict[str, dict[str, int]] = {}
    for follower in REGISTRY.values():
        for resource in set(follower.resources()) & set(wanted):
            out.setdefault(resource, {})[follower.name] = stored.get((follower.name, resource), 0)
    return {resource: dict(sorted(found.items())) for resource, found in out.items()}


class NotDerivedYet(Exception):
    def __init__(self, current: State, wanted: int):
        super().__init__(
            f"{current.follower} has derived {current.resource} through "
            f"v{current.derived_through_version}, not v{wanted}"
        )
        self.state, self.wanted = current, wanted


def wait_for(name: str, resource: str, version: int | None, timeout: float | None = None) -> State:
    """The follower's state once it has derived `version` (None: now, whatever it is);
    NotDerivedYet after `timeout` seconds (FOLLOWER_WAIT_SECONDS)."""
    current = state(name, resource)
    if version is None or current.derived_through_version >= version:
        return current
    timeout = settings.FOLLOWER_WAIT_SECONDS if timeout is None else timeout
    deadline = time.monotonic() + timeout
    pause = 0.01
    while time.monotonic() < deadline:
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 0.2)
        current = state(name, resource)
        if current.derived_through_version >= version:
            return current
    raise NotDerivedYet(current, version)


# -- the long-running process ------------------------------------------------------------


def _database_dsn() -> dict:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    return params


def run(names: Iterable[str] | None = None, should_stop: Callable[[], bool] = lambda: False):
    """Run the followers until `should_stop()`, each on its own thread (and database
    connection): it catches up, then sleeps until a new version's NOTIFY (or
    FOLLOWER_POLL_SECONDS) wakes it. Side by side, a slow follower (the search entries'
    text parsing) never holds back a quick one (the metrics), and their work runs on
    as many database backends."""
    import threading

    names = list(names) if names is not None else list(REGISTRY)
    failures: list[BaseException] = []

    def follow(name: str) -> None:
        try:
            _run_one(name, should_stop)
        except BaseException as exc:  # the process stops; its supervisor restarts it
            logger.exception("followers: the %s follower stopped", name)
            failures.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=follow, args=(name,), name=f"follower-{name}", daemon=True)
        for name in names
    ]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        if failures:
            raise RuntimeError("a follower stopped") from failures[0]
        for thread in threads:
            thread.join(0.5)
    if failures:
        raise RuntimeError("a follower stopped") from failures[0]


def _run_one(name: str, should_stop: Callable[[], bool]) -> None:
    import psycopg

    from datalake.platform.db import vacuum_stale

    housekept = 0.0

    def listen():
        conn = psycopg.connect(**_database_dsn(), autocommit=True)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    wake = listen()
    try:
        while not should_stop():
            try:
                applied = catch_up([name], one_batch=True)
            except Exception:  # a lost connection, a deadlock: retried on the next round
                logger.exception("followers: a %s round failed; retrying", name)
                connection.close()
                applied = 0
                time.sleep(settings.FOLLOWER_POLL_SECONDS)
            if applied:
                logger.info("followers: %s derived %s version(s)", name, applied)
                vacuum_stale(every=30.0)  # the aggregates and entries it updates in place
                continue  # more may have landed meanwhile
            if time.monotonic() - housekept > 60:
                housekept = time.monotonic()
                _housekeeping([name])
            connection.close_if_unusable_or_obsolete()
            try:
                _sleep_until_notified(wake, settings.FOLLOWER_POLL_SECONDS, should_stop)
            except psycopg.Error:  # the server dropped the listening connection: a new one
                logger.warning("followers: %s lost its LISTEN connection; reconnecting", name)
                wake.close()
                time.sleep(settings.FOLLOWER_POLL_SECONDS)
                try:
                    wake = listen()
                except psycopg.Error:
                    logger.exception("followers: %s could not listen again; polling", name)
    finally:
        wake.close()


def _housekeeping(names) -> None:
    for name in names:
        chore = REGISTRY[name].housekeeping
        if chore is None:
            continue
        try:
            chore()
        except Exception:  # retried in a minute; the followers carry on
            logger.exception("followers: the %s follower's housekeeping failed", name)


def _sleep_until_notified(wake, seconds: float, should_stop: Callable[[], bool]) -> None:
    """Until a NOTIFY arrives, `seconds` pass or `should_stop()` (checked each second)."""
    deadline = time.monotonic() + seconds
    while not should_stop():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        for _ in wake.notifies(timeout=min(1.0, left), stop_after=1):
            return
