"""The live-grant queries of the access layer: internal to `accounts.access`.

"A live grant of this user" is defined once, as SQL (`live_grant_where`): a grant given
to the user or to one of their groups, not expired. Every path uses that text: the
token lookup (`LIVE_GRANTS_SQL`, a column of accounts/authentication.py's one query,
which reads the caller's live grants with their token), the per-resource statements
(`READ_GRANTS_SQL`, `READ_GRANTS_MANY_SQL`) and the ORM (`live_grants_of`, a subquery
of the same text). tests/accounts/test_access_layer.py proves the paths agree.

No cache across requests: every request reads the live grants, so a revoke or an
expiry takes effect on the very next request. Within one request (a
`grant_cache_scope`, opened by `GrantScopeMiddleware`), a user's read grants on a
resource are read once (with a token: none are read after the token lookup);
outside a scope (Celery tasks, the shell, tests) every question reads the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import orjson
from django.db import connection
from django.db.models.expressions import RawSQL
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
            live_grants_of(user)
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
    return live_grants_of(user).filter(resource__name=resource_name, privilege=privilege).exists()


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
        cursor.execute(READ_GRANTS_SQL, [*live_grant_params(user), resource_name])
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
        cursor.execute(READ_GRANTS_MANY_SQL, [*live_grant_params(user), missing])
        for pk, name, c, r, m in cursor.fetchall():
            found[name].append(_grant(pk, c, r, m))
    cache.update({(user.pk, name): grants for name, grants in found.items()})


def _grant(pk, columns, row_filter, masked) -> Grant:
    return Grant(
        id=pk, columns=_json(columns), row_filter=_json(row_filter), masked=_json(masked) or []
    )


# --- "a live grant of this user": the one definition --------------------------------
# Every path that asks which grants a user holds uses this predicate: the three SQL
# statements below (the token lookup's JSON column among them) and the ORM path
# (`live_grants_of`, a subquery on the very same text). `user` and `at` are SQL
# expressions: `%s` placeholders (then pass `live_grant_params`) or column references.


def held_where(alias: str = "g", user: str = "%s") -> str:
    """SQL: the grant row `alias` is given to `user`, directly or to one of their groups."""
    return (
        f"({alias}.user_id = {user} OR {alias}.group_id IN "
        f"(SELECT group_id FROM auth_user_groups WHERE user_id = {user}))"
    )


def live_where(alias: str = "g", at: str = "%s") -> str:
    """SQL: the grant row `alias` is not expired at `at` (`Grant.is_live` in Python)."""
    return f"({alias}.expires_at IS NULL OR {alias}.expires_at > {at})"


def live_grant_where(alias: str = "g", user: str = "%s", at: str = "%s") -> str:
    """SQL: the grant row `alias` is a live grant of `user` at `at`."""
    return f"{held_where(alias, user)} AND {live_where(alias, at)}"


def live_grant_params(user, at=None) -> list:
    """The parameters of `live_grant_where()` with its `%s` placeholders."""
    return [user.pk, user.pk, at or timezone.now()]


def live_grants_of(user, at=None):
    """The ORM path: the user's live grants (at `at`, default now) as a Grant QuerySet,
    through the same predicate as the SQL statements."""
    if not user.is_authenticated:
        return Grant.objects.none()
    sql = f"SELECT g.id FROM accounts_grant g WHERE {live_grant_where()}"
    return Grant.objects.filter(pk__in=RawSQL(sql, live_grant_params(user, at)))


def live_grants(queryset, at=None):
    """`queryset`'s grants that are live at `at` (default now), whoever holds them."""
    sql = f"SELECT g.id FROM accounts_grant g WHERE {live_where()}"
    return queryset.filter(pk__in=RawSQL(sql, [at or timezone.now()]))


def held_grants(queryset, user):
    """`queryset`'s grants given to `user` or one of their groups, live or not."""
    sql = f"SELECT g.id FROM accounts_grant g WHERE {held_where()}"
    return queryset.filter(pk__in=RawSQL(sql, [user.pk, user.pk]))


# On the path of every data request: plain SQL, no ORM query to build each time. Every
# statement gives the grants in id order, so that the paths combine them alike.
# Parameters: live_grant_params(user) + [resource name].
READ_GRANTS_SQL = (
    "SELECT g.id, g.columns, g.row_filter, g.masked FROM accounts_grant g "
    "JOIN datalake_resource r ON r.id = g.resource_id "
    f"WHERE {live_grant_where()} AND r.name = %s AND g.privilege = 'read' ORDER BY g.id"
)

# The caller's live grants as one JSON array, a column of the token lookup (whose user
# row is `u`, read at the statement's time).
LIVE_GRANTS_SQL = (
    "SELECT coalesce(json_agg(json_build_array(r.name, g.privilege, g.id, g.columns, "
    "g.row_filter, g.masked) ORDER BY g.id), '[]') FROM accounts_grant g "
    "JOIN datalake_resource r ON r.id = g.resource_id "
    f"WHERE {live_grant_where(user='u.id', at='statement_timestamp()')}"
)

# Parameters: live_grant_params(user) + [resource names].
READ_GRANTS_MANY_SQL = (
    "SELECT g.id, r.name, g.columns, g.row_filter, g.masked FROM accounts_grant g "
    "JOIN datalake_resource r ON r.id = g.resource_id "
    f"WHERE {live_grant_where()} AND r.name = ANY(%s) AND g.privilege = 'read' ORDER BY g.id"
)


def _json(value):
    """Django's cursor reads jsonb as text."""
    return orjson.loads(value) if isinstance(value, str) else value


def resources_with(user, privilege: str) -> set[str] | None:
    """Names of the resources on which `user` holds `privilege`; None means all (staff).

    From the caller's live grants read with their token when there are (no query)."""
    if user.is_staff:
        return None
    if not user.is_authenticated:
        return set()
    live = _live_grants(user)
    if live is not None:
        return {name for name, held in live.items() if held.get(privilege)}
    return set(
        live_grants_of(user).filter(privilege=privilege).values_list("resource__name", flat=True)
    )


def holds_grant_row(user, grant: Grant) -> bool:
    """Whether `grant` is one of `user`'s own grants, live or expired (directly or through
    a group): a holder revokes none of its own."""
    return held_grants(Grant.objects.filter(pk=grant.pk), user).exists()


def identical_live_grant(*, user, group, resource, privilege, columns, row_filter, masked):
    """The live grant to this very grantee with these very restrictions, locked for
    update (None if there is none): giving it again returns it instead of a copy."""
    return (
        live_grants(Grant.objects.select_for_update())
        .filter(user=user, group=group, resource=resource, privilege=privilege)
        .filter(**_same("columns", columns), **_same("row_filter", row_filter))
        .filter(masked=list(masked))
        .first()
    )


def _same(field: str, value) -> dict:
    """A JSON field equal to `value`; None is SQL NULL (not JSON null)."""
    return {f"{field}__isnull": True} if value is None else {field: value}


def row_filter_holders(resource_name: str):
    """The active, non-staff users whose `read` of `resource_name` is row-filtered by some
    grant, held directly or through a group (expired grants too, until deleted): those
    whose restriction may carry a row filter (metrics.scopes keeps a scope per filter)."""
    from django.contrib.auth import get_user_model
    from django.db.models import Q

    filtered = Grant.objects.filter(
        resource__name=resource_name, privilege="read", row_filter__isnull=False
    )
    user_ids = set(filtered.exclude(user=None).values_list("user_id", flat=True))
    groups = set(filtered.exclude(group=None).values_list("group_id", flat=True))
    return (
        get_user_model()
        .objects.filter(Q(pk__in=user_ids) | Q(groups__in=groups), is_active=True, is_staff=False)
        .distinct()
    )
