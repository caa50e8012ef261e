"""Who may do what on which resource: the one place the API asks.

No cache across requests: every request reads the live grants, so a revoke or an
expiry takes effect on the very next request. Within one request (a
`grant_cache_scope`, opened by `GrantScopeMiddleware`), a user's read grants on a
resource are read once; outside a scope (Celery tasks, the shell, tests) every
question reads the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import orjson
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from accounts.models import Grant, Privilege
from datalake.platform.db import prepared_cursor

PRIVILEGES = tuple(Privilege.values)

# For the request being served (else None): {(user id, resource name): [read grants]},
# and {(user id, ALL): {resource name: {privilege: [grants]}}} when the caller's live
# grants were read with their token (accounts.authentication).
_read_grant_cache: ContextVar[dict | None] = ContextVar("read_grant_cache", default=None)
ALL = "*"


@contextmanager
def grant_cache_scope() -> Iterator[None]:
    """Share read-grant lookups inside one request; nothing survives its end."""
    token = _read_grant_cache.set({})
    try:
        yield
    finally:
        _read_grant_cache.reset(token)


def remember_live_grants(user, rows) -> None:
    """Keep, for this request, the caller's live grants read with their token.

    `rows`: (resource name, privilege, id, columns, row_filter, masked). The
    privilege checks of the request then answer from them, with no query of their
    own; the next request reads them again.
    """
    cache = _read_grant_cache.get()
    if cache is None:
        return
    held: dict[str, dict[str, list[Grant]]] = {}
    for name, privilege, pk, columns, row_filter, masked in rows:
        grant = _grant(pk, columns, row_filter, masked)
        held.setdefault(name, {}).setdefault(privilege, []).append(grant)
    cache[(user.pk, ALL)] = held


def _live_grants(user) -> dict | None:
    cache = _read_grant_cache.get()
    return None if cache is None else cache.get((user.pk, ALL))


def privileges_on(user, resource_names: list[str]) -> dict[str, list[str]]:
    """The privileges `user` holds on each named resource (staff: all of them)."""
    if user.is_staff:
        return {name: list(PRIVILEGES) for name in resource_names}
    live = _live_grants(user)
    if live is not None:
        return {
            name: [p for p in PRIVILEGES if live.get(name, {}).get(p)] for name in resource_names
        }
    held: dict[str, set[str]] = {name: set() for name in resource_names}
    if user.is_authenticated and resource_names:
        rows = (
            Grant.objects.live()
            .held_by(user)
            .filter(resource__name__in=resource_names)
            .values_list("resource__name", "privilege")
        )
        for name, privilege in rows:
            held[name].add(privilege)
    return {name: [p for p in PRIVILEGES if p in held[name]] for name in resource_names}


def has_privilege(user, resource_name: str, privilege: str) -> bool:
    if user.is_staff:
        return True
    if not user.is_authenticated:
        return False
    if privilege == Privilege.READ:
        return bool(read_grants(user, resource_name))
    live = _live_grants(user)
    if live is not None:
        return bool(live.get(resource_name, {}).get(privilege))
    return (
        Grant.objects.live()
        .filter(Q(user_id=user.pk) | Q(group__user=user.pk))
        .filter(resource__name=resource_name, privilege=privilege)
        .exists()
    )


def read_grants(user, resource_name: str) -> list[Grant]:
    """The user's live `read` grants on the resource, with their restrictions.

    One query per user and resource inside a request: the permission check and the
    restriction of the same request share it.
    """
    cache = _read_grant_cache.get()
    key = (user.pk, resource_name)
    if cache is not None and key in cache:
        return cache[key]
    live = _live_grants(user)
    if live is not None:
        return live.get(resource_name, {}).get(Privilege.READ, [])
    with prepared_cursor() as cursor:
        cursor.execute(READ_GRANTS_SQL, [user.pk, user.pk, resource_name, timezone.now()])
        grants = [_grant(pk, c, r, m) for pk, c, r, m in cursor.fetchall()]
    if cache is not None:
        cache[key] = grants
    return grants


def prefetch_read_grants(user, resource_names: list[str]) -> None:
    """Read the user's live `read` grants on several resources in one query (an answer
    that draws on several tables); `read_grants` then answers from the request's cache."""
    cache = _read_grant_cache.get()
    if cache is None or (user.pk, ALL) in cache:
        return
    missing = [name for name in resource_names if (user.pk, name) not in cache]
    if not missing:
        return
    found: dict[str, list[Grant]] = {name: [] for name in missing}
    with connection.cursor() as cursor:
        cursor.execute(READ_GRANTS_MANY_SQL, [user.pk, user.pk, missing, timezone.now()])
        for pk, name, c, r, m in cursor.fetchall():
            found[name].append(_grant(pk, c, r, m))
    cache.update({(user.pk, name): grants for name, grants in found.items()})


def _grant(pk, columns, row_filter, masked) -> Grant:
    return Grant(
        id=pk, columns=_json(columns), row_filter=_json(row_filter), masked=_json(masked) or []
    )


# On the path of every data request: plain SQL, no ORM query to build each time.
READ_GRANTS_SQL = (
    "SELECT g.id, g.columns, g.row_filter, g.masked FROM accounts_grant g "
    "JOIN datalake_resource r ON r.id = g.resource_id "
    "WHERE (g.user_id = %s OR g.group_id IN "
    "(SELECT group_id FROM auth_user_groups WHERE user_id = %s)) "
    "AND r.name = %s AND g.privilege = 'read' AND (g.expires_at IS NULL OR g.expires_at > %s)"
)

# The caller's live grants as one JSON array, a column of the token lookup.
LIVE_GRANTS_SQL = (
    "SELECT coalesce(json_agg(json_build_array(r.name, g.privilege, g.id, g.columns, "
    "g.row_filter, g.masked)), '[]') FROM accounts_grant g "
    "JOIN datalake_resource r ON r.id = g.resource_id "
    "WHERE (g.user_id = u.id OR g.group_id IN "
    "(SELECT group_id FROM auth_user_groups WHERE user_id = u.id)) "
    "AND (g.expires_at IS NULL OR g.expires_at > statement_timestamp())"
)

READ_GRANTS_MANY_SQL = (
    "SELECT g.id, r.name, g.columns, g.row_filter, g.masked FROM accounts_grant g "
    "JOIN datalake_resource r ON r.id = g.resource_id "
    "WHERE (g.user_id = %s OR g.group_id IN "
    "(SELECT group_id FROM auth_user_groups WHERE user_id = %s)) "
    "AND r.name = ANY(%s) AND g.privilege = 'read' "
    "AND (g.expires_at IS NULL OR g.expires_at > %s)"
)


def _json(value):
    """Django's cursor reads jsonb as text."""
    return orjson.loads(value) if isinstance(value, str) else value


def resources_with(user, privilege: str) -> set[str] | None:
    """Names of the resources on which `user` holds `privilege`; None means all (staff)."""
    if user.is_staff:
        return None
    return set(
        Grant.objects.live()
        .held_by(user)
        .filter(privilege=privilege)
        .values_list("resource__name", flat=True)
    )


def grants_visible_to(user):
    """API.md: staff see all grants; a `grant` holder those on its resources; others their own."""
    qs = Grant.objects.select_related("user", "group", "resource", "granted_by")
    if user.is_staff:
        return qs
    managed = resources_with(user, Privilege.GRANT)
    return qs.filter(
        Q(resource__name__in=managed) | Q(user_id=user.pk) | Q(group__user=user.pk)
    ).distinct()
