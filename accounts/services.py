"""Writes on grants and tokens. Each function says what it guarantees.

Grants are read only through the access layer (accounts.access.grants).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.access import Access, holds_grant_row, identical_live_grant
from accounts.models import ApiToken, Grant, Privilege
from datalake.errors import AccessDenied


@transaction.atomic
def grant_give(
    *,
    by,
    resource,
    privilege,
    user=None,
    group=None,
    expires_at=None,
    columns=None,
    row_filter=None,
    masked=(),
    access: Access | None = None,
):
    """Give `privilege` on `resource` to a user or group; returns (grant, created).

    The giver needs `grant` on the resource (or staff), and gives no more than it holds:
    a privilege it holds itself, and a `read` grant no wider than its own read (see
    `_refuse_wider`). An identical live grant (same grantee, resource, privilege and
    restrictions) is returned as it is, not duplicated; one with other restrictions is
    another grant (they combine as a union). `access`: the giver's, when a request gives.
    """
    access = access or Access(by)
    access.require(
        "grant", resource.name, "You need `grant` on {resource!r} to give privileges on it."
    )
    _refuse_wider(access, resource.name, privilege, columns, row_filter, masked)
    existing = identical_live_grant(
        user=user,
        group=group,
        resource=resource,
        privilege=privilege,
        columns=columns,
        row_filter=row_filter,
        masked=masked,
    )
    if existing is not None:
        return existing, False
    grant = Grant.objects.create(
        user=user,
        group=group,
        resource=resource,
        privilege=privilege,
        expires_at=expires_at,
        granted_by=by,
        columns=columns,
        row_filter=row_filter,
        masked=list(masked),
    )
    return grant, True


def _refuse_wider(access: Access, resource: str, privilege, columns, row_filter, masked) -> None:
    """403 `grant_wider_than_held` unless the grant is within what `by` holds (staff: all).

    Levels rank read < write < grant: a `grant` holder holds every level, so it may give
    any privilege. What it may not do is widen its own reading: when it holds `read`
    with restrictions, a `read` grant it gives must let through only rows one of its
    own row filters lets through (same columns, values a subset), show only columns it
    sees, and mask every column it sees masked. A holder with no `read` grant at all is
    a delegate (it reads nothing itself) and gives any `read` grant, as staff would.

    A holder whose read is restricted gives no `grant`: the account it gives it to
    would be a delegate free to give an unrestricted read (to it or anyone). Nor, when
    its read masks a column, `write`: it may not write itself (`require_unmasked_writer`,
    a write is a chosen-value oracle for a masked column), so neither may its proxy.
    """
    if access.is_staff:
        return
    held = access.restriction(resource)
    if privilege == Privilege.GRANT and held.restricted:
        _wider("your read is restricted, and a `grant` holder can give an unrestricted read")
    if privilege == Privilege.WRITE and held.masked:
        _wider(f"you see {sorted(held.masked)} masked, and a write would reveal them")
    if privilege != Privilege.READ:
        return
    if held.columns is not None and (columns is None or not set(columns) <= held.columns):
        _wider(f"you see only the columns {sorted(held.columns)}")
    if held.rows is not None:
        given = row_filter if isinstance(row_filter, dict) else None

        def within(mine: dict) -> bool:
            return given is not None and all(
                name in given and isinstance(given[name], list) and set(given[name]) <= set(values)
                for name, values in mine.items()
            )

        if not any(within(mine) for mine in held.rows):
            _wider("your row filter must hold for every row it allows")
    shown = held.masked if columns is None else held.masked & set(columns)
    if not shown <= set(masked or ()):
        _wider(f"you see {sorted(shown)} masked: mask them in it too")


def _wider(why: str) -> None:
    raise AccessDenied(
        f"You cannot give a grant wider than yours: {why}.", code="grant_wider_than_held"
    )


def grant_revoke(*, by, grant: Grant, access: Access | None = None) -> None:
    """Delete a grant; from the next request on it gives nothing (no cache holds it).

    A holder of `grant` (not staff) revokes no grant it holds itself, directly or through
    a group: dropping its own restricted `read` would make it a delegate free to give
    itself an unrestricted one (`_refuse_wider`)."""
    access = access or Access(by)
    access.require("grant", grant.resource.name, "You need `grant` on {resource!r} to revoke it.")
    if not by.is_staff and holds_grant_row(by, grant):
        raise AccessDenied(
            "You cannot revoke a grant you hold yourself; ask staff or another holder.",
            code="own_grant",
        )
    grant.delete()


def token_issue(*, user) -> tuple[ApiToken, str]:
    """A new token for `user`, expiring after API_TOKEN_TTL_DAYS (0: never)."""
    days = settings.API_TOKEN_TTL_DAYS
    expires_at = timezone.now() + timedelta(days=days) if days else None
    return ApiToken.issue(user, expires_at=expires_at)


@transaction.atomic
def token_reissue(*, user) -> tuple[ApiToken, str]:
    """Revoke every token of `user` and issue one new standard token: only the key
    returned works from now on (the demo's accounts, at each `make demo`)."""
    ApiToken.objects.filter(user=user).delete()
    return token_issue(user=user)


def user_new(*, username: str, staff: bool = False):
    """An unsaved user, checked: Django's ValidationError if the username has other
    characters than Django allows or is taken."""
    from django.contrib.auth import get_user_model

    user = get_user_model()(username=username, is_staff=staff)
    user.full_clean(exclude=["password"])
    return user


@transaction.atomic
def user_create(*, username: str, password: str | None, staff: bool = False):
    """A new active user. `password` is checked by AUTH_PASSWORD_VALIDATORS (Django's
    ValidationError if refused); None gives an unusable one (the user logs in by token
    only). Staff may use the admin and see everyone's objects, but holds no grants:
    privileges on resources are grants, given apart."""
    from django.contrib.auth.password_validation import validate_password

    user = user_new(username=username, staff=staff)
    if password is None:
        user.set_unusable_password()
    else:
        validate_password(password, user)
        user.set_password(password)
    user.save()
    return user


@transaction.atomic
def token_rotate(*, token: ApiToken) -> tuple[ApiToken, str]:
    """Replace `token` by a new one for the same user; the old key stops working now."""
    user = token.user
    token.delete()
    return token_issue(user=user)
