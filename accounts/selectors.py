"""Who may do what on which resource: the one place the API asks."""

from __future__ import annotations

PRIVILEGES = ("read", "write", "grant")


def privileges_on(user, resource_names: list[str]) -> dict[str, list[str]]:
    """The privileges `user` holds on each named resource.

    Staff hold every privilege. Until per-resource grants land, any authenticated
    user may `read` every resource (API.md, issue 2).
    """
    if user.is_staff:
        return {name: list(PRIVILEGES) for name in resource_names}
    granted = ["read"] if user.is_authenticated else []
    return {name: list(granted) for name in resource_names}


def has_privilege(user, resource_name: str, privilege: str) -> bool:
    return privilege in privileges_on(user, [resource_name])[resource_name]
