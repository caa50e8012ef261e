"""`benchsite.settings` without the request log (the rows benchmark's `a_nolog` server).

Everything else (URLs, auth, renderers, the other middleware, the database) is the
same, so `1 - rps(a) / rps(a_nolog)` in one run is what the request log costs the
rows endpoint (issue 3).
"""

from benchsite.settings import *  # noqa: F403
from benchsite.settings import MIDDLEWARE

MIDDLEWARE = [m for m in MIDDLEWARE if m != "lineage.middleware.RequestLogMiddleware"]
