"""`benchsite.settings` without the cost guard (the guard benchmark's `off` server).

Everything else is the same, so `1 - rps(on) / rps(off)` in one run is what the guard
(datalake/query/guard.py) costs page 1 of the rows endpoint (issue 21).
"""

from benchsite.settings import *  # noqa: F403

LAKE_QUERY_MAX_COST = 0
