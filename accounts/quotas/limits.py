"""Whose limits are what: the Quota rows of a user and its groups over the settings.

Per field (requests a minute, rows a day): the user's own Quota row, where it sets the
field; else the most generous of its groups' rows (a group row's empty field counts as
the default); else the default of settings (`QUOTA_REQUESTS_PER_MINUTE`,
`QUOTA_ROWS_PER_DAY`), which is no limit for staff. 0 is no limit, the most generous.

The rows are read once per user and process, then kept until the generation in Redis
changes: every save or delete of a Quota row and every change of a user's groups writes
a new one (now, and again at commit, so that no process keeps what it read before the
commit), and the next request of every process sees it in its counters' round trip; at
most `KEEP_S` seconds in any case (a change made while Redis was unreachable). In the
steady state a request reads no database row for its quota.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from redis.exceptions import RedisError

from accounts.models import Quota
from accounts.quotas import counters

FIELDS = ("requests_per_minute", "rows_per_day")
CACHED_USERS = 10_000  # past that, the per-process cache starts over
KEEP_S = 60.0  # ... and after this long

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """The caller's limits; None: no limit."""

    requests_per_minute: int | None
    rows_per_day: int | None


@dataclass(frozen=True)
class _Rows:
    own: tuple  # the user's row's fields (None: no row, or the field empty)
    groups: tuple[tuple, ...]  # the fields of each of its groups' rows


_lock = threading.Lock()
_seen: dict = {"generation": None, "since": 0.0, "users": {}}


def limits_of(user, generation: bytes | None) -> Limits:
    """`user`'s limits; `generation` is the one Redis holds now (`counters.Counts`)."""
    rows = _rows_of(user.pk, generation)
    defaults = (0, 0) if user.is_staff else _defaults()
    picked = [_pick(rows, i, default) for i, default in enumerate(defaults)]
    return Limits(*(value or None for value in picked))


def _defaults() -> tuple[int, int]:
    return settings.QUOTA_REQUESTS_PER_MINUTE, settings.QUOTA_ROWS_PER_DAY


def _pick(rows: _Rows, i: int, default: int) -> int:
    if rows.own[i] is not None:
        return rows.own[i]
    if not rows.groups:
        return default
    values = [default if fields[i] is None else fields[i] for fields in rows.groups]
    return 0 if 0 in values else max(values)


def _rows_of(user_id: int, generation: bytes | None) -> _Rows:
    now = time.monotonic()
    with _lock:
        if (
            generation != _seen["generation"]
            or now - _seen["since"] > KEEP_S
            or len(_seen["users"]) >= CACHED_USERS
        ):
            _seen.update(generation=generation, since=now, users={})
        found = _seen["users"].get(user_id)
    if found is None:
        found = _read(user_id)
        with _lock:
            if _seen["generation"] == generation:
                _seen["users"][user_id] = found
    return found


def _read(user_id: int) -> _Rows:
    own, groups = (None, None), []
    rows = Quota.objects.filter(Q(user_id=user_id) | Q(group__user=user_id))
    for owner, *fields in rows.values_list("user_id", *FIELDS):
        if owner is None:
            groups.append(tuple(fields))
        else:
            own = tuple(fields)
    return _Rows(own, tuple(groups))


def changed(**kwargs) -> None:
    """Signal receiver: a Quota row or a user's groups changed; every cache is stale."""
    _new_generation()
    transaction.on_commit(_new_generation)


def _new_generation() -> None:
    try:
        counters.new_generation(uuid.uuid4().hex)
    except RedisError:
        logger.warning("quotas: Redis unreachable, limits cached up to %s s", KEEP_S)
