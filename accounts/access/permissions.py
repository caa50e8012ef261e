"""The grant check, in one permission class that every data endpoint uses."""

from __future__ import annotations

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from accounts.access.grants import has_privilege, prefetch_read_grants
from accounts.access.restrictions import refuse_masked_writer
from lineage.audit import note_resource


class ResourcePrivilege(BasePermission):
    """Authenticated, and holding the privilege the action needs on the resource.

    A view declares `required_privileges = {action: "read" | "write" | "grant"}`
    (viewset actions, or HTTP methods for plain views; an action not listed needs
    no resource privilege) and `get_resource_name()`,
    which raises 404 for an unknown resource. A view whose answer draws on several
    resources declares `get_resource_names()` instead: the privilege is needed on
    each. The (first) resource is noted for the request log whatever the outcome.
    A `write` is refused to a user whose `read` grant masks a column of the resource.
    """

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        method = request.method.lower()
        # A plain view answers HEAD with its GET handler: it needs what GET needs.
        action = getattr(view, "action", None) or ("get" if method == "head" else method)
        privilege = view.required_privileges.get(action)
        if privilege is None:
            return True
        if hasattr(view, "get_resource_names"):
            names = view.get_resource_names()
            if privilege == "read" and len(names) > 1 and not request.user.is_staff:
                prefetch_read_grants(request.user, names)  # one query for all of them
        else:
            names = [view.get_resource_name()]
        note_resource(request, names[0])
        for name in names:
            if not has_privilege(request.user, name, privilege):
                raise PermissionDenied(f"You need the `{privilege}` privilege on {name!r}.")
            if privilege == "write":
                refuse_masked_writer(request.user, name, request)
        return True
