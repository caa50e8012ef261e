"""Reads from PostgreSQL streaming replicas, with read-your-writes.

With `DATABASE_REPLICA_URLS` set, the settings add one database alias per replica
(`replica_1`, ...). The API's read-only data paths (views with `ReplicaReads`: rows,
versions, the catalog, search, metrics) run their data SQL on `reads()`, the connection
this request was routed to; everything else (the token lookup, grants, quotas, the
request log, anything written) stays on `default`, the primary. So grants stay
authoritative: a revoke is read from the primary by the next request, whatever a
replica's lag.

Routing (`choose`), per request, after authentication:

- a replica is used only if it is in recovery (a standby), reachable, and behind by at
  most `DATABASE_REPLICA_MAX_LAG_SECONDS`, measured against the primary (`state`: how
  long ago the primary first held a WAL position the replica has not replayed);
- read-your-writes: each write a client causes records the primary's WAL position after
  its commit (`wrote`, keyed by the user in the shared cache for
  `DATABASE_REPLICA_RYW_SECONDS`): by the request itself (any unsafe method,
  `ReadYourWritesMiddleware`), or later by the run it started (an ingestion, a pull, a
  re-push, a re-push-all: `datalake.runs.lifecycle` and the pipeline consumer call it
  when they commit the outcome). A replica serves that client only once it has replayed
  past that position; otherwise the primary does;
- a replica that cannot be reached, or fails during a request, is left alone for
  `DATABASE_REPLICA_RETRY_SECONDS`, and the request is answered by the primary.

A replica's state is kept per process for `DATABASE_REPLICA_CHECK_SECONDS`, asked by one
thread at a time, and asked again at once when a client needs a newer position than the
one known. The settings give replica connections keepalives, a TCP user timeout,
`lock_timeout` and the API's `statement_timeout` (`replica_database`).
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction

PREFIX = "replica_"
logger = logging.getLogger(__name__)


class Behind(Exception):
    """The replica a request reads from lacks what the request names (a version another
    read saw on the primary): the request is answered by the primary instead."""


_route: ContextVar[str] = ContextVar("datalake_read_alias", default=DEFAULT_DB_ALIAS)

STATE_SQL = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
    "pg_is_in_recovery() AND pg_is_wal_replay_paused(), "
    "extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
)


def aliases() -> list[str]:
    """The replicas' database aliases, in order."""
    return sorted(alias for alias in connections.settings if alias.startswith(PREFIX))


def lsn(text: str | None) -> int | None:
    """PostgreSQL's `pg_lsn` text (`16/B374D848`) as a number."""
    if not text:
        return None
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


# --- where this request reads ---------------------------------------------------------


def reads():
    """The connection the current request's data reads go to (the primary by default)."""
    return connections[_route.get()]


def read_alias() -> str:
    return _route.get()


def on_primary() -> bool:
    return _route.get() == DEFAULT_DB_ALIAS


@contextlib.contextmanager
def reading_from(alias: str):
    token = _route.set(alias)
    try:
        yield
    finally:
        _route.reset(token)


# --- replicas' state ------------------------------------------------------------------


@dataclass
class State:
    alias: str
    up: bool = False
    standby: bool = False
    replay_lsn: int | None = None
    lag_seconds: float | None = None
    paused: bool = False
    error: str = ""  # a fixed reason (the database's own text goes to the log)
    checked: float = 0.0  # time.monotonic() of the check
    down_until: float = 0.0
    probing: bool = False  # a thread is asking it now (the others keep what is known)

    def usable(self) -> bool:
        lag = self.lag_seconds if self.lag_seconds is not None else float("inf")
        return self.up and self.standby and lag <= settings.DATABASE_REPLICA_MAX_LAG_SECONDS

    def as_health(self) -> dict:
        return {
            "up": self.up,
            "standby": self.standby,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "replay_paused": self.paused,
            "usable": self.usable(),
            **({"error": self.error} if self.error else {}),
        }


_states: dict[str, State] = {}
_lock = threading.Lock()
# The primary's WAL position as this process saw it, (time.monotonic(), lsn), oldest
# first: a replica's lag is how long ago the primary had written what it has not replayed.
_primary: deque[tuple[float, int]] = deque(maxlen=4096)


def _sample_primary() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        position = lsn(cursor.fetchone()[0])
    with _lock:
        _primary.append((time.monotonic(), position))


def _lag(replayed: int | None, now: float) -> float | None:
    """Seconds since the primary first held a position past `replayed` (0: the replica
    has replayed all the primary had written when last sampled; None: unknown)."""
    if replayed is None:
        return None
    with _lock:
        for at, position in _primary:
            if position > replayed:
                return max(0.0, now - at)
        return 0.0 if _primary else None


def state(alias: str, *, fresh: bool = False) -> State:
    """What `alias` last said (asked again past DATABASE_REPLICA_CHECK_SECONDS, or when
    `fresh`); a replica that could not be reached is not asked before its retry time,
    and one thread at a time asks it (the others answer with what is known).

    The lag is measured against the primary, not by the replica's own clock: the
    primary's position is sampled first, then the replica's replay position; a replica
    cut off from the primary (its WAL receiver stopped) falls behind as soon as the
    primary writes, whatever it says of itself."""
    now = time.monotonic()
    with _lock:
        known = _states.setdefault(alias, State(alias))
        recent = known.checked and now - known.checked < settings.DATABASE_REPLICA_CHECK_SECONDS
        if known.down_until > now or known.probing or (recent and not fresh):
            return known
        known.probing = True
    try:
        _sample_primary()
        with connections[alias].cursor() as cursor:
            cursor.execute(STATE_SQL)
            standby, replay, paused, replay_age = cursor.fetchone()
    except DatabaseError as exc:
        _down(known, exc)
        return known
    finally:
        known.probing = False
    at = time.monotonic()
    with _lock:
        known.up, known.standby, known.paused = True, bool(standby), bool(paused)
        known.replay_lsn = lsn(replay)
        known.checked, known.down_until = at, 0.0
        known.error = "" if standby else "not in recovery (a primary): not used for reads"
    lag = _lag(known.replay_lsn, at) if standby else None
    if lag and replay_age is not None:  # behind: its last replayed commit's age bounds it too
        lag = max(lag, float(replay_age))  # (a process's first samples are only this recent)
    known.lag_seconds = lag
    return known


def _down(known: State, exc: BaseException) -> None:
    """Leave the replica alone for DATABASE_REPLICA_RETRY_SECONDS; close its connection.
    The database's text (hosts, roles) goes to the log, never to /healthz."""
    logger.warning("replicas: %s is unavailable: %s", known.alias, exc)
    with contextlib.suppress(Exception):
        connections[known.alias].close()
    with _lock:
        known.up, known.error = False, "unreachable"
        known.checked = time.monotonic()
        known.down_until = known.checked + settings.DATABASE_REPLICA_RETRY_SECONDS


def _replica_failure(alias: str, exc: BaseException) -> bool:
    """Whether `exc`, raised while reading from replica `alias`, is the replica's fault:
    then the primary answers. Any database error qualifies (it stopped, it cancelled the
    read in a conflict with recovery or waited past `lock_timeout` on a lock that replay
    holds, it has not replayed a migration yet), except a statement past the API's time
    limit, the query's own fault, answered as it is. A replica that is gone is left
    alone for a while."""
    from psycopg import errors

    if not isinstance(exc, DatabaseError) or isinstance(exc.__cause__, errors.QueryCanceled):
        return False
    if not connections[alias].is_usable():
        with _lock:
            known = _states.setdefault(alias, State(alias))
        _down(known, exc)
    return True


def forget() -> None:
    """Forget what this process knows of the replicas (their aliases changed: a test)."""
    with _lock:
        _states.clear()


def states() -> list[State]:
    return [state(alias) for alias in aliases()]


# --- read-your-writes -----------------------------------------------------------------


def _key(user_id) -> str:
    return f"datalake:replicas:wrote:{user_id}"


# Set the key to ARGV[1] unless it holds a larger position already (two writes of one
# user racing from two processes never move it back), for ARGV[2] seconds.
_RAISE = """
local known = tonumber(redis.call('GET', KEYS[1]) or '-1')
if known < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""
_client: list = []


def _redis():
    """The shared cache's Redis (CACHE_URL), for the users' write positions."""
    if not _client:
        import redis

        location = settings.CACHES["default"]["LOCATION"]
        _client.append(redis.Redis.from_url(location, socket_timeout=1, socket_connect_timeout=1))
    return _client[0]


def primary_lsn() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        return lsn(cursor.fetchone()[0])


def wrote(*user_ids) -> None:
    """Users `user_ids` caused a write: their next reads need the primary's position now
    (after the caller's commit: inside a transaction, recorded once it commits)."""
    users = {u for u in user_ids if u is not None}
    if not users:  # recorded even where this process reads no replica: the web's may
        return
    if connection.in_atomic_block:
        transaction.on_commit(lambda: _record(users))
    else:
        _record(users)


def _record(users) -> None:
    """Never fails its caller (a run's outcome, a batch's commit): a position not
    recorded only sends the user's reads to a replica sooner (logged)."""
    try:
        position = primary_lsn()
        client = _redis()
        for user_id in users:
            ttl = settings.DATABASE_REPLICA_RYW_SECONDS
            client.eval(_RAISE, 1, _key(user_id), position, ttl)
    except Exception:  # the database or the cache away: the write itself stands
        logger.warning("replicas: the write position of %s was not recorded", users, exc_info=True)


class Unknown(Exception):
    """What a user wrote last cannot be read (the cache is away)."""


def needed(user_id) -> int | None:
    """The primary position `user_id`'s reads must see (their last write), if any;
    `Unknown` if the cache cannot say."""
    if user_id is None:
        return None
    try:
        found = _redis().get(_key(user_id))
    except Exception as exc:  # only the primary is sure to hold what they wrote
        raise Unknown from exc
    return int(found) if found is not None else None


def choose(user_id) -> str:
    """The alias the reads of `user_id`'s request go to: a usable replica that has replayed
    the user's last write, else the primary."""
    candidates = aliases()
    if not candidates:
        return DEFAULT_DB_ALIAS
    try:
        need = needed(user_id)
    except Unknown:
        logger.warning("replicas: the cache is away; reads go to the primary")
        return DEFAULT_DB_ALIAS
    random.shuffle(candidates)
    for alias in candidates:
        found = state(alias)
        if not found.usable():
            continue
        if need is not None and (found.replay_lsn or 0) < need:
            found = state(alias, fresh=True)  # perhaps replayed since it was asked
            if not found.usable() or (found.replay_lsn or 0) < need:
                continue
        return alias
    return DEFAULT_DB_ALIAS


# --- the views and the middleware -----------------------------------------------------

SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class ReplicaReads:
    """A DRF view mixin: a safe request's data reads (`reads()`) go to a replica chosen
    after authentication; `replica_actions` limits it to these viewset actions. A read
    that fails on the replica is answered again by the primary."""

    replica_actions: frozenset[str] | None = None

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:  # even past an uncaught error: the thread's next request starts on primary
            self._unroute()

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        action = getattr(self, "action", None)
        if request.method not in SAFE or (
            self.replica_actions is not None and action not in self.replica_actions
        ):
            return
        if not aliases() or not self.replica_allowed(request):
            return
        alias = choose(getattr(request.user, "pk", None))
        if alias != DEFAULT_DB_ALIAS:
            self._replica_route = _route.set(alias)

    def replica_allowed(self, request) -> bool:
        """Whether this request may read from a replica (a view whose read writes, for
        some requests, says no for those)."""
        return True

    def handle_exception(self, exc):
        alias = _route.get()
        routed = getattr(self, "_replica_route", None) is not None
        if routed and (isinstance(exc, Behind) or _replica_failure(alias, exc)):
            self._unroute()
            handler = getattr(self, self.request.method.lower())
            try:  # once more, on the primary
                return handler(self.request, *self.args, **self.kwargs)
            except Exception as again:
                return super().handle_exception(again)
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        if getattr(self, "_replica_route", None) is not None:
            response["X-Read-From"] = "replica"
        elif aliases() and request.method in SAFE:
            response["X-Read-From"] = "primary"
        self._unroute()
        return super().finalize_response(request, response, *args, **kwargs)

    def _unroute(self) -> None:
        token = getattr(self, "_replica_route", None)
        if token is not None:
            _route.reset(token)
            self._replica_route = None


class ReadYourWritesMiddleware:
    """After an unsafe request by a known user, remember the primary's position for that
    user's next reads (only where replicas are configured)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method not in SAFE and response.status_code < 500 and aliases():
            user = getattr(request, "user", None)
            if user is not None and getattr(user, "is_authenticated", False):
                wrote(user.pk)
        return response


def health() -> dict:
    """`/healthz`'s `replicas`: each one's state (never raises)."""
    return {alias: state(alias, fresh=True).as_health() for alias in aliases()}
