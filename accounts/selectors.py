"""Who may do what on which resource: the one place the API asks.

No cache across requests: every request reads the live grants, so a revoke or an
expiry takes effect on the very next request (within one request, the user's read
grants on a resource are read once).
"""

from __future__ import annotations

import orjson
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from .models import Grant, Privilege

PRIVILEGES = tuple(Privilege.values)


def privileges_on(user, resource_names: list[str]) -> dict[str, list[str]]:
    """The privileges `user` holds on each named resource (staff: all of them)."""
    if user.is_staff:
        return {name: list(PRIVILEGES) for name in resource_names}
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
    return (
        Grant.objects.live()
        .filter(Q(user_id=user.pk) | Q(group__user=user.pk))
        .filter(resource__name=resource_name, privilege=privilege)
        .exists()
    )


def read_grants(user, resource_name: str) -> list[Grant]:
    """The user's live `read` grants on the resource, with their restrictions.

    One query per user object and resource: the permission check and the
    restriction of the same request share it (the user object lives one request).
    """
    cache = user.__dict__.setdefault("_read_grants", {})
    if resource_name not in cache:
        with connection.cursor() as cursor:
            cursor.execute(READ_GRANTS_SQL, [user.pk, user.pk, resource_name, timezone.now()])
            cache[resource_name] = [
                Grant(id=pk, columns=_json(c), row_filter=_json(r), masked=_json(m) or [])
                for pk, c, r, m in cursor.fetchall()
            ]
    return cache[resource_name]


def prefetch_read_grants(user, resource_names: list[str]) -> None:
    """Read the user's live `read` grants on several resources in one query (an answer
    that draws on several tables); `read_grants` then answers from the same cache."""
    cache = user.__dict__.setdefault("_read_grants", {})
    missing = [name for name in resource_names if name not in cache]
    if not missing:
        return
    found: dict[str, list[Grant]] = {name: [] for name in missing}
    with connection.cursor() as cursor:
        cursor.execute(READ_GRANTS_MANY_SQL, [user.pk, user.pk, missing, timezone.now()])
        for pk, name, c, r, m in cursor.fetchall():
            found[name].append(
                Grant(id=pk, columns=_json(c), row_filter=_json(r), masked=_json(m) or [])
            )
    cache.update(found)


# On the path of every data request: plain SQL, no ORM query to build each time.
READ_GRANTS_SQL = (
    "SELECT g.id, g.columns, g.row_filter, g.masked FROM accounts_grant g "
    "JOIN datalake_resource r ON r.id = g.resource_id "
    "WHERE (g.user_id = %s OR g.group_id IN "
    "(SELECT group_id FROM auth_user_groups WHERE user_id = %s)) "
    "AND r.name = %s AND g.privilege = 'read' AND (g.expires_at IS NULL OR g.expires_at > %s)"
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
