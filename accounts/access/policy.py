"""The access policy of one user, for one request or one task: the only object that
answers "may this user do P on resource R, and with which restriction".

Views get it with `Access.of(request)` (one per request, its answers shared by the
permission check, the query and the serializer); Celery tasks and services with
`Access(user)`. The first resource a request asks about (`holds`, `require`,
`restriction`, whatever the answer) names the request in the request log; no view
names it itself. Questions over many resources at once (`restrictions`,
`privileges_on`, `resources_with`) name none. Refusals are domain errors
(`datalake.errors.AccessDenied`), mapped to 403 by the API.

Probes: `observe(callback)` calls `callback(user, privilege, resource)` on every
question asked (`asked` is the hook any rule of the layer calls); a listing through
`Model.objects.readable_by(user, action)` is a question too: `(user, action, "app.Model")`.
The data-path walk (tests/security/test_data_paths.py) uses it to prove that each data
path asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from accounts.access import grants as _grants
from accounts.access.restrictions import UNRESTRICTED, Restriction, restriction_for
from datalake.errors import AccessDenied

PRIVILEGES = _grants.PRIVILEGES
_observers: list[Callable] = []


def observe(callback: Callable) -> Callable[[], None]:
    """Call `callback(user, privilege, resource)` on every question; returns the undo."""
    _observers.append(callback)
    return lambda: _observers.remove(callback)


def asked(user, privilege: str, resource: str | None) -> None:
    """Tell the observers a question was asked: every answer of the layer calls it (the
    `readable_by` listing rules too), so the data-path walk sees each data path ask."""
    for callback in list(_observers):
        callback(user, privilege, resource)


class Access:
    """What `user` may do. `request`: the request being served (None in tasks)."""

    def __init__(self, user, request=None):
        self.user = user
        self.request = request

    @classmethod
    def of(cls, request) -> Access:
        """The policy of the request's user, made once per request."""
        target = getattr(request, "_request", request)
        access = getattr(target, "_access", None)
        if access is None or access.user is not request.user:
            access = target._access = cls(request.user, request)
        return access

    # --- questions -----------------------------------------------------------------
    @property
    def is_staff(self) -> bool:
        return bool(self.user is not None and self.user.is_staff)

    def _asked(self, privilege: str, resource: str | None) -> None:
        asked(self.user, privilege, resource)

    def _touched(self, resource: str) -> None:
        """The first resource a request asks about names it in the request log."""
        if self.request is not None:
            target = getattr(self.request, "_request", self.request)
            if not getattr(target, "audit_resource", ""):
                self.note(resource)

    def holds(self, privilege: str, resource: str) -> bool:
        self._asked(privilege, resource)
        self._touched(resource)
        if self.user is None:
            return False
        return _grants.has_privilege(self.user, resource, privilege)

    def restriction(self, resource: str) -> Restriction:
        """The user's `read` restriction on `resource` (UNRESTRICTED: sees it all)."""
        self._asked("read", resource)
        self._touched(resource)
        return self._restriction(resource)

    def restrictions(self, resources: Iterable[str]) -> dict[str, Restriction]:
        """`restriction` of several resources (one query), naming none of them in the
        request log: an answer drawn from many resources (search, the catalog)."""
        names = list(resources)
        self.prefetch(names)
        out = {}
        for name in names:
            self._asked("read", name)
            out[name] = self._restriction(name)
        return out

    def _restriction(self, resource: str) -> Restriction:
        if self.user is None:
            return UNRESTRICTED
        return restriction_for(self.user, resource, self.request)

    def resources_with(self, privilege: str) -> set[str] | None:
        """Names of the resources the user holds `privilege` on; None: all (staff)."""
        self._asked(privilege, None)
        return _grants.resources_with(self.user, privilege)

    def privileges_on(self, resources: list[str]) -> dict[str, list[str]]:
        for name in resources:
            self._asked("list", name)
        return _grants.privileges_on(self.user, resources)

    def readable(self, model, action: str = "list"):
        """`model.objects.readable_by(user, action)`: the rows the user may list (or,
        `action="view"`, look at), by the rule of accounts/access/rules.py."""
        return model._default_manager.readable_by(self.user, action)  # notifies

    def prefetch(self, resources: Iterable[str]) -> None:
        """Read the user's `read` grants on several resources in one query."""
        if not self.is_staff:
            _grants.prefetch_read_grants(self.user, list(resources))

    # --- requirements (raise AccessDenied) ----------------------------------------
    def note(self, resource: str) -> None:
        """Name `resource` in the request log's entry for this request."""
        if self.request is not None:
            from lineage.audit import note_resource

            note_resource(self.request, resource)

    def require(self, privilege: str, resource: str, message: str = "") -> None:
        """AccessDenied unless the user holds `privilege` on `resource`; `message`
        (formatted with `resource` and `privilege`) replaces the default sentence."""
        if not self.holds(privilege, resource):
            message = message or "You need the `{privilege}` privilege on {resource!r}."
            raise AccessDenied(message.format(privilege=privilege, resource=resource))

    def require_staff(self, what: str) -> None:
        """AccessDenied unless the user is staff: `what` is read by staff only."""
        self._asked("staff", what)
        if not self.is_staff:
            raise AccessDenied()

    def require_all(self, privilege: str, resources: Iterable[str], message: str = "") -> None:
        """`require` on each resource (one query for a `read` on several)."""
        names = list(resources)
        if privilege == "read" and len(names) > 1:
            self.prefetch(names)
        for name in names:
            self.require(privilege, name, message)

    def require_unrestricted(self, resource: str, what: str, *, why: str = "") -> None:
        """AccessDenied `restricted_grant` when the user's read of `resource` is
        restricted: a figure over every row would use the data the grant hides."""
        if self.user is not None and self.restriction(resource).restricted:
            why = why or f"are computed over every row of {resource!r}"
            raise AccessDenied(
                f"{what} {why} and your grant on it is restricted (columns, row filter or "
                "masks): they cannot be given without the data it hides.",
                code="restricted_grant",
            )

    def require_unmasked_writer(self, resource: str) -> None:
        """AccessDenied `masked_writer` when the user's read of `resource` masks a
        column: a write would reveal the values behind the pseudonyms."""
        masked = self.restriction(resource).masked
        if masked:
            raise AccessDenied(
                f"Your grant on {resource!r} masks {', '.join(sorted(masked))}: a write "
                "would reveal the values behind the pseudonyms, so you cannot write to it.",
                code="masked_writer",
            )
