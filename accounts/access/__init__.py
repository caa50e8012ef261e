"""The access layer: who may see and do what. Nothing outside this package reads grants
(tests/accounts/test_access_layer.py fails when a module does).

- `Access` (policy.py): one user's privileges and restrictions, per request or task;
  `Access.of(request)` in views, `Access(user)` in tasks and services.
- `Model.objects.readable_by(user)` (querysets.py): the rows of a model a user may list;
  the rules, one per model, are in rules.py (with `readable_model_types`, the ML
  registry's listing).
- `restrictions.Restriction`: what a restricted `read` grant leaves visible.
- `grants`: "a live grant of this user", defined once (`live_grant_where`) and used by
  the SQL fast path (the token lookup, accounts/authentication.py) and the ORM path;
  internal to this package.

Names are loaded on first use, so that models can import `accounts.access.querysets`
without importing the layer (which imports models).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Access": "accounts.access.policy",
    "observe": "accounts.access.policy",
    "Restriction": "accounts.access.restrictions",
    "UNRESTRICTED": "accounts.access.restrictions",
    "ReadableQuerySet": "accounts.access.querysets",
    "readable_model_types": "accounts.access.rules",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
