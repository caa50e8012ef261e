"""Writes on grants and tokens. Each function says what it guarantees."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import PermissionDenied

from .models import ApiToken, Grant
from .selectors import has_privilege


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
):
    """Give `privilege` on `resource` to a user or group; returns (grant, created).

    The giver needs `grant` on the resource (or staff). An identical live grant
    (same grantee, resource, privilege and restrictions) is returned as it is, not
    duplicated; one with other restrictions is another grant (they combine as a union).
    """
    if not has_privilege(by, resource.name, "grant"):
        raise PermissionDenied(f"You need `grant` on {resource.name!r} to give privileges on it.")
    existing = (
        Grant.objects.live()
        .select_for_update()
        .filter(user=user, group=group, resource=resource, privilege=privilege)
        .filter(**_same("columns", columns), **_same("row_filter", row_filter))
        .filter(masked=list(masked))
        .first()
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


def _same(field: str, value) -> dict:
    """A JSON field equal to `value`; None is SQL NULL (not JSON null)."""
    return {f"{field}__isnull": True} if value is None else {field: value}


def grant_revoke(*, by, grant: Grant) -> None:
    """Delete a grant; from the next request on it gives nothing (no cache holds it)."""
    if not has_privilege(by, grant.resource.name, "grant"):
        raise PermissionDenied(f"You need `grant` on {grant.resource.name!r} to revoke it.")
    grant.delete()


def token_issue(*, user) -> tuple[ApiToken, str]:
    """A new token for `user`, expiring after API_TOKEN_TTL_DAYS (0: never)."""
    days = settings.API_TOKEN_TTL_DAYS
    expires_at = timezone.now() + timedelta(days=days) if days else None
    return ApiToken.issue(user, expires_at=expires_at)


@transaction.atomic
def token_rotate(*, token: ApiToken) -> tuple[ApiToken, str]:
    """Replace `token` by a new one for the same user; the old key stops working now."""
    user = token.user
    token.delete()
    return token_issue(user=user)
