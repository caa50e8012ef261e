"""Who may do what on which resource: the one place the API asks.

No cache: every request reads the live grants, so a revoke or an expiry takes
effect on the very next request.
"""

from __future__ import annotations

from django.db.models import Q

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
        cache[resource_name] = list(
            Grant.objects.live()
            .filter(Q(user_id=user.pk) | Q(group__user=user.pk))
            .filter(resource__name=resource_name, privilege=Privilege.READ)
            .only("columns", "row_filter", "masked")
        )
    return cache[resource_name]


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
