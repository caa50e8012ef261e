"""Settings of the benchmarks: the product's, plus the bench-only URLs (ceiling, naive peer).

`DJANGO_SETTINGS_MODULE=bench.settings`; the database still comes from DATABASE_URL
(the runner points it at its own `datalake_bench`).
"""

import os

# Before the import: the product settings derive their production defaults from DEBUG.
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
os.environ.setdefault("LAKE_MASKING_KEY", "bench-only-masking-key-not-a-secret-0123456789")
# The benches speak plain HTTP to a local server: no redirect to HTTPS.
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")

from datalake.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
DEBUG = False
ALLOWED_HOSTS = ["*"]
SECRET_KEY = os.environ["SECRET_KEY"]
if os.environ.get("SSB"):
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True  # noqa: F405
