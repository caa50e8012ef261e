"""The access layer: who may see and do what. Nothing outside this package reads grants.

- `Access` (policy.py): one user's privileges and restrictions, per request or task.
- `restrictions.Restriction`: what a restricted `read` grant leaves visible.
- `paths`: the registry of data paths (`data_path`, `serves_no_data`) that the
  data-path walk (tests/security/test_data_paths.py) checks every view and task against.
- `permissions.ResourcePrivilege`: the DRF permission over `Access`.
- `grants`: the live-grant queries (SQL fast path and ORM), internal to this package;
  the token query and the per-request cache scope are re-exported here.

Outside the package, import only from `accounts.access` and its public modules
`paths`, `permissions`, `masking` and `restrictions` (`Restriction`, `UNRESTRICTED`,
`validate_restriction`): tests/accounts/test_access_callers.py enforces it.
"""

from accounts.access.grants import LIVE_GRANTS_SQL, grant_cache_scope, remember_live_grants
from accounts.access.paths import data_path, serves_no_data
from accounts.access.policy import Access, asked, observe
from accounts.access.restrictions import UNRESTRICTED, Restriction

__all__ = [
    "LIVE_GRANTS_SQL",
    "UNRESTRICTED",
    "Access",
    "Restriction",
    "asked",
    "data_path",
    "grant_cache_scope",
    "observe",
    "remember_live_grants",
    "serves_no_data",
]
