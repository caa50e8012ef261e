"""The access layer: who may see and do what. Nothing outside this package reads grants
(tests/accounts/test_access_layer.py fails when a module does).

- `Access` (policy.py): one user's privileges and restrictions, per request or task;
  `Access.of(request)` in views, `Access(user)` in tasks and services.
- `Model.objects.readable_by(user)` (querysets.py): the rows of a model a user may list;
  the rules, one per model, are in rules.py (with `readable_model_types`, the ML
  registry's listing).
- `restrictions.Restriction`: what a restricted `read` grant leaves visible.
- `paths`: the registry of data paths (`data_path`, `serves_no_data`) that the
  data-path walk (tests/security/test_data_paths.py) checks every view and task against.
- `permissions.ResourcePrivilege`: the DRF permission over `Access`.
- `grants`: "a live grant of this user", defined once (`live_grant_where`) and used by
  the SQL fast path (the token lookup, accounts/authentication.py) and the ORM path;
  internal to this package (the token query and the per-request cache scope are
  re-exported here).

Outside the package, import only from `accounts.access` and its public modules
`paths`, `permissions`, `masking` and `restrictions` (`Restriction`, `UNRESTRICTED`,
`validate_restriction`): tests/accounts/test_access_callers.py enforces it.

Names are loaded on first use, so that models can import `accounts.access.querysets`
without importing the layer (which imports models).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Access": "accounts.access.policy",
    "asked": "accounts.access.policy",
    "observe": "accounts.access.policy",
    "Restriction": "accounts.access.restrictions",
    "UNRESTRICTED": "accounts.access.restrictions",
    "ReadableQuerySet": "accounts.access.querysets",
    "readable_model_types": "accounts.access.rules",
    "data_path": "accounts.access.paths",
    "serves_no_data": "accounts.access.paths",
    "LIVE_GRANTS_SQL": "accounts.access.grants",
    "grant_cache_scope": "accounts.access.grants",
    "remember_live_grants": "accounts.access.grants",
    # for accounts.services, which writes grants: the reads it needs to do so
    "holds_grant_row": "accounts.access.grants",
    "identical_live_grant": "accounts.access.grants",
    # for metrics.scopes: who holds a row-filtered read (the scopes still needed)
    "row_filter_holders": "accounts.access.grants",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
