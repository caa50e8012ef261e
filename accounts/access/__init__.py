"""The access layer: who may see and do what. Nothing outside this package reads grants.

- `Access` (policy.py): one user's privileges and restrictions, per request or task.
- `restrictions.Restriction`: what a restricted `read` grant leaves visible.
- `grants`: the live-grant queries (SQL fast path and ORM), internal to this package.
"""

from accounts.access.policy import Access, observe
from accounts.access.restrictions import UNRESTRICTED, Restriction

__all__ = ["UNRESTRICTED", "Access", "Restriction", "observe"]
