"""Settings of the benchmark servers: the tree's product settings, plus the bench URLs.

`DJANGO_SETTINGS_MODULE=benchsite.settings`; the database comes from DATABASE_URL
(the harness points it at the benchmark's own database).
"""

import os

# Before the import: the product settings derive their production defaults from DEBUG.
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
os.environ.setdefault("LAKE_MASKING_KEY", "bench-only-masking-key-not-a-secret-0123456789")
# The audit chain's checkpoint signing key (required when DEBUG is off, >= 32 characters).
os.environ.setdefault("AUDIT_SIGNING_KEY", "bench-only-audit-signing-key-not-a-secret-0123456789")
# The benches speak plain HTTP to a local server: no redirect to HTTPS.
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
# Quotas counted (a Redis round trip a request) but limiting nothing: wrk makes far more
# requests a minute than a client may. bench/scenarios/quota.py measures them with limits.
os.environ.setdefault("QUOTA_REQUESTS_PER_MINUTE", "0")
os.environ.setdefault("QUOTA_ROWS_PER_DAY", "0")

from datalake.settings import *  # noqa: F403

ROOT_URLCONF = "benchsite.urls"
DEBUG = False
ALLOWED_HOSTS = ["*"]
SECRET_KEY = os.environ["SECRET_KEY"]
if os.environ.get("SSB"):  # server-side binding of parameters, to compare
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True  # noqa: F405
