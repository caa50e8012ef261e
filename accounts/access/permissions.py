"""The grant check of DRF views: a thin permission class over `Access`."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from accounts.access.policy import Access


class ResourcePrivilege(BasePermission):
    """Authenticated, and holding the privilege the action needs on the resource.

    A view declares `required_privileges = {action: "read" | "write" | "grant"}`
    (viewset actions, or HTTP methods for plain views; an action not listed needs
    no resource privilege) and `get_resource_name()`, which raises 404 for an unknown
    resource. A view whose answer draws on several resources declares
    `get_resource_names()` instead: the privilege is needed on each. `Access` names
    the (first) resource in the request log whatever the outcome, and refuses a
    `write` to a user whose `read` grant masks a column of the resource.
    """

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        privilege = self.privilege_for(request, view)
        if privilege is None:
            return True
        if hasattr(view, "get_resource_names"):
            names = view.get_resource_names()
        else:
            names = [view.get_resource_name()]
        access = Access.of(request)
        access.require_all(privilege, names)
        if privilege == "write":
            for name in names:
                access.require_unmasked_writer(name)
        return True

    @staticmethod
    def privilege_for(request, view) -> str | None:
        method = request.method.lower()
        # A plain view answers HEAD with its GET handler: it needs what GET needs.
        action = getattr(view, "action", None) or ("get" if method == "head" else method)
        return view.required_privileges.get(action)


class StaffOnly(BasePermission):
    """Authenticated staff (DRF's IsAdminUser, asked of `Access`): the request log, whose
    entries quote every reader's queries, is for staff only."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        Access.of(request).require_staff(type(view).__name__)
        return True
