"""`Model.objects.readable_by(user)`: the rows of a model a user may list.

Every model a user lists (resources, grants, reports, trainings, ingestion runs,
re-pushes, re-push jobs, the request log) has a manager made from `ReadableQuerySet`.
`readable_by(user, action)` asks the rule registered for its model in
`accounts.access.rules` (as NetBox's `RestrictedQuerySet.restrict(user, action)`): the
rules are written once, there, and a model without a rule lists nothing.

This module imports no model, so that any app's models can use it.
"""

from __future__ import annotations

from django.db import models


class ReadableQuerySet(models.QuerySet):
    def readable_by(self, user, action: str = "list"):
        """The rows `user` may see. `action`: "list" (what a listing shows) or "view"
        (what a detail answers, with its own checks after it; "list" if no rule)."""
        from accounts.access.rules import rule_for

        return rule_for(self.model, action)(self, user)


class GrantQuerySet(ReadableQuerySet):
    """Grants: `live()` and `held_by()` use the access layer's one SQL definition."""

    def live(self, at=None):
        """Grants not expired at `at` (default: now)."""
        from accounts.access.grants import live_grants

        return live_grants(self, at)

    def held_by(self, user):
        """Grants given to the user directly or to one of their groups."""
        from accounts.access.grants import held_grants

        return held_grants(self, user)
