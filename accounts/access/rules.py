"""Who may list what: one rule per model, the only place these decisions are written.

`Model.objects.readable_by(user, action="list")` (accounts.access.querysets) calls the
rule registered here for the model and the action; "view" falls back to "list".
A rule takes (queryset, user) and returns the queryset narrowed to what the user may
see; an anonymous user sees nothing; a model without a rule lists nothing.

- Resources: those the user holds `read` on (staff: all).
- Grants (API.md `GET /api/v1/grants/`): staff all; a `grant` holder those on its
  resources; everyone their own (directly or through a group).
- Reports, trainings, re-pushes, re-push jobs: their requester's (staff: all). The
  trainings a list shows are moreover those whose model's resource the requester still
  reads unrestricted (`readable_model_types`); a detail ("view") shows any of its own
  and refuses it afterwards (403) when it no longer may.
- Ingestion runs: data about a table, visible with `read` on the source's table.
- Request log: staff all; a `grant` holder the entries of the resources it holds
  `grant` on and reads unrestricted (other readers' query strings carry values a
  restricted grant hides).
"""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import Q

from accounts.access.grants import prefetch_read_grants, resources_with
from accounts.access.restrictions import restriction_for
from accounts.models import Privilege

Rule = Callable  # (queryset, user) -> queryset
_rules: dict[tuple[str, str], Rule] = {}


def rule(label: str, action: str = "list") -> Callable[[Rule], Rule]:
    """Register the rule of the model `label` ("app.Model") for `action`."""

    def register(function: Rule) -> Rule:
        _rules[(label, action)] = function
        return function

    return register


def _nothing(queryset, user):
    return queryset.none()


def rule_for(model, action: str = "list") -> Rule:
    label = model._meta.label
    found = _rules.get((label, action)) or _rules.get((label, "list")) or _nothing

    def apply(queryset, user):
        from accounts.access.policy import asked

        asked(user, action, label)
        if user is None or not user.is_authenticated:
            return queryset.none()
        return found(queryset, user)

    return apply


def _requester_or_staff(queryset, user):
    return queryset if user.is_staff else queryset.filter(requested_by=user)


def _among(queryset, field: str, names: set[str] | None):
    return queryset if names is None else queryset.filter(**{f"{field}__in": sorted(names)})


# --- the rules -----------------------------------------------------------------------
@rule("datalake.Resource")
def _resources(queryset, user):
    return _among(queryset, "name", resources_with(user, Privilege.READ))


@rule("accounts.Grant")
def _grants(queryset, user):
    queryset = queryset.select_related("user", "group", "resource", "granted_by")
    if user.is_staff:
        return queryset
    managed = resources_with(user, Privilege.GRANT)
    return queryset.filter(
        Q(resource__name__in=managed) | Q(user_id=user.pk) | Q(group__user=user.pk)
    ).distinct()


rule("metrics.Report")(_requester_or_staff)
rule("ingestion.RepushRequest")(_requester_or_staff)
rule("ingestion.RepushJob")(_requester_or_staff)


@rule("metrics.Training", "view")
def _trainings_seen(queryset, user):
    return _requester_or_staff(queryset.select_related("requested_by"), user)


@rule("metrics.Training")
def _trainings(queryset, user):
    queryset = _trainings_seen(queryset, user)
    if user.is_staff:
        return queryset
    return queryset.filter(model_name__in=[m.name for m in readable_model_types(user)])


@rule("ingestion.IngestionRun")
def _runs(queryset, user):
    from datalake.lake.merge import MAIN_TABLE

    readable = resources_with(user, Privilege.READ)
    if readable is None:
        return queryset
    return queryset.filter(source__in=[s for s, t in MAIN_TABLE.items() if t in readable])


@rule("lineage.RequestLog")
def _request_log(queryset, user):
    managed = resources_with(user, Privilege.GRANT)
    if managed is None:
        return queryset
    prefetch_read_grants(user, sorted(managed))  # one query, not one per resource
    whole = {name for name in managed if not restriction_for(user, name).restricted}
    return queryset.filter(resource__in=sorted(whole))


# --- listings that are not querysets ---------------------------------------------------
def readable_model_types(user) -> list:
    """The ML model types (a registry, not rows) whose resource the user may read whole,
    i.e. holds `read` on, unrestricted (staff: all), in the registry's order."""
    from accounts.access.policy import asked
    from metrics.ml.registry import model_types

    asked(user, "list", "metrics.MLModel")
    if user is None or not user.is_authenticated:
        return []
    readable = resources_with(user, Privilege.READ)  # None: every resource (staff)
    if readable is None:
        return list(model_types())
    types = [m for m in model_types() if m.resource in readable]
    prefetch_read_grants(user, sorted({m.resource for m in types}))
    return [m for m in types if not restriction_for(user, m.resource).restricted]
