"""Settings of the data-lake portal.

Everything that differs between machines comes from the environment (see
`.env.example`); every variable has a working local default so that a fresh
clone runs against the PostgreSQL and Redis of the developer's machine.
"""

import logging
import os
import secrets
import time
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
# No secret has a published default. Outside DEBUG each must be set; in DEBUG one is
# made for this machine on first use and kept in LOCAL_SECRETS_DIR (0600), so that every
# process of a local run (web, worker, tests) shares it and no two machines do.
LOCAL_SECRETS_DIR = (BASE_DIR / env("LOCAL_SECRETS_DIR", default="run/secrets")).resolve()


def _local_secret(name: str) -> str:
    """This machine's value of `name`, made once (the first process to ask wins)."""
    LOCAL_SECRETS_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = LOCAL_SECRETS_DIR / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _attempt in range(50):  # another process made it and may still be writing
            value = path.read_text().strip()
            if value:
                return value
            time.sleep(0.01)
        raise ImproperlyConfigured(f"{path} is empty: delete it or set {name}.") from None
    value = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as out:
        out.write(value)
    return value


def _secret(name: str) -> str:
    value = env(name, default="")
    if value:
        return value
    if not DEBUG:
        raise ImproperlyConfigured(
            f"Set the {name} environment variable (required when DEBUG is off)."
        )
    return _local_secret(name)


SECRET_KEY = _secret("SECRET_KEY")
# Keys of the pseudonyms of masked columns and of the sealed `rows/` cursors, apart from
# SECRET_KEY (which signs sessions and is shared more widely). A comma-separated list: the
# first masks and seals; the others still open cursors sealed before a rotation (see
# docs/MASKING.md: rotating changes every pseudonym).
LAKE_MASKING_KEY = [k.strip() for k in _secret("LAKE_MASKING_KEY").split(",") if k.strip()]
if any(len(k) < 32 for k in LAKE_MASKING_KEY):
    raise ImproperlyConfigured("Each LAKE_MASKING_KEY must be at least 32 characters long.")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"] if DEBUG else ["localhost", "127.0.0.1"])
# Outside DEBUG: cookies only over HTTPS, HSTS, plain HTTP redirected (except the probes,
# which load balancers and compose call on plain HTTP inside the network).
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips the client's).
if env.bool("SECURE_PROXY_SSL", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# DEBUG's error page shows the innermost frames only: a deep recursion renders in no time.
DEFAULT_EXCEPTION_REPORTER = "datalake.platform.debug.BoundedExceptionReporter"

DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/datalake"),
}
DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=600))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Every SQL statement of an /api/ request is cancelled past this many ms (503 query_timeout;
# datalake/platform/statement_timeout.py); 0: no limit. Background jobs keep the server's own.
API_STATEMENT_TIMEOUT_MS = env.int("API_STATEMENT_TIMEOUT_MS", default=5000)
# Statements run through datalake.platform.db.prepared_cursor() are prepared (planned once per
# connection); psycopg prepares nothing else by itself (see datalake/platform/db.py).
DB_PREPARED_STATEMENTS = env.bool("DB_PREPARED_STATEMENTS", default=True)
if DB_PREPARED_STATEMENTS:
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 2**31 - 1)
# Read replicas (streaming standbys of `default`): the API's read-only data paths read from
# one of them when it has replayed what the caller wrote (datalake/platform/replicas.py).
DATABASE_REPLICA_URLS = env.list("DATABASE_REPLICA_URLS", default=[])
# A replica behind by more than this many seconds is skipped (the primary answers).
DATABASE_REPLICA_MAX_LAG_SECONDS = env.float("DATABASE_REPLICA_MAX_LAG_SECONDS", default=5.0)
# How long a process trusts a replica's replay position and lag before asking again.
DATABASE_REPLICA_CHECK_SECONDS = env.float("DATABASE_REPLICA_CHECK_SECONDS", default=1.0)
# A replica that could not be reached is not tried again for this many seconds.
DATABASE_REPLICA_RETRY_SECONDS = env.float("DATABASE_REPLICA_RETRY_SECONDS", default=5.0)
# How long a client's last write (its primary LSN) is remembered for read-your-writes.
DATABASE_REPLICA_RYW_SECONDS = env.int("DATABASE_REPLICA_RYW_SECONDS", default=600)


def replica_database(url: str) -> dict:
    """The DATABASES entry of a replica at `url` (the tests build theirs here too)."""
    replica = env.db_url_config(url)
    replica["ENGINE"] = "django.db.backends.postgresql"
    replica["CONN_MAX_AGE"] = DATABASES["default"]["CONN_MAX_AGE"]
    # No `SELECT 1` before each request's first read (Django's health check): a replica
    # connection that died fails its read, which the primary then answers (replicas.py),
    # and the replica's state is asked every DATABASE_REPLICA_CHECK_SECONDS anyway.
    replica["CONN_HEALTH_CHECKS"] = False
    options = replica.setdefault("OPTIONS", {})
    options.setdefault("connect_timeout", 2)
    # A replica host gone without a word (powered off, cut off) must not hold the web's
    # threads for the kernel's 15 minutes of retransmissions: 3 s unacknowledged, and
    # keepalives on an idle connection.
    options.setdefault("tcp_user_timeout", 3000)
    options.setdefault("keepalives", 1)
    options.setdefault("keepalives_idle", 5)
    options.setdefault("keepalives_interval", 2)
    options.setdefault("keepalives_count", 2)
    if DB_PREPARED_STATEMENTS:
        options.setdefault("prepare_threshold", 2**31 - 1)
    # Only the API's reads use a replica: its time limit, and no wait on a lock that the
    # replay holds (a table truncated by vacuum, DDL): the primary answers instead.
    limits = "-c lock_timeout=200"
    if API_STATEMENT_TIMEOUT_MS:
        limits += f" -c statement_timeout={API_STATEMENT_TIMEOUT_MS}"
    options.setdefault("options", limits)
    replica["TEST"] = {"MIRROR": "default"}  # a test database is made on the primary only
    return replica


for _number, _url in enumerate(DATABASE_REPLICA_URLS, start=1):
    DATABASES[f"replica_{_number}"] = replica_database(_url)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
LAKE_ROOT = Path(env("LAKE_ROOT", default=str(BASE_DIR / "lake"))).resolve()
SPARK_MASTER = env("SPARK_MASTER", default="local[*]")
SPARK_DRIVER_MEMORY = env("SPARK_DRIVER_MEMORY", default="2g")
SPARK_JOB_TIMEOUT = env.int("SPARK_JOB_TIMEOUT", default=3600)
# A worker keeps its Spark driver (JVM, session) between batches and stops it after this many
# seconds without one (ingestion/daily/spark.py); 0: a spark-submit for every batch. On a
# cluster the driver holds its executors' cores meanwhile.
SPARK_DRIVER_IDLE_SECONDS = env.float("SPARK_DRIVER_IDLE_SECONDS", default=300.0)
# A standalone cluster (SPARK_MASTER=spark://host:7077, docs/DEPLOY.md): the master's web UI,
# whose /json/ /healthz reads (alive workers, cores); empty: http://<the master's host>:8080.
SPARK_MASTER_UI_URL = env("SPARK_MASTER_UI_URL", default="")
# The executors' Python (spark.pyspark.python); empty: the worker's own interpreter's path,
# which a cluster's machines must then have (the portal's image does).
SPARK_EXECUTOR_PYTHON = env("SPARK_EXECUTOR_PYTHON", default="")
# More `--conf key=value` for every spark-submit, comma-separated (e.g. spark.cores.max=2,
# spark.executor.memory=2g: on a cluster, each job otherwise takes every free core).
SPARK_SUBMIT_CONF = env.list("SPARK_SUBMIT_CONF", default=[])
# A running ingestion moves its heartbeat every INGESTION_HEARTBEAT_SECONDS; one that has
# not moved for INGESTION_STALL_SECONDS lost its worker (killed, machine gone) and beat
# queues it again (checked every INGESTION_RECOVER_SECONDS).
INGESTION_HEARTBEAT_SECONDS = env.float("INGESTION_HEARTBEAT_SECONDS", default=5.0)
INGESTION_STALL_SECONDS = env.float("INGESTION_STALL_SECONDS", default=30.0)
INGESTION_RECOVER_SECONDS = env.float("INGESTION_RECOVER_SECONDS", default=15.0)
# Every other kind of run (datalake/runs/: re-push jobs, trainings, HTTP pulls) beats every
# RUN_HEARTBEAT_SECONDS and has lost its worker after RUN_STALL_SECONDS without a beat;
# beat's `runs.recover_stalled` applies each kind's policy every INGESTION_RECOVER_SECONDS.
RUN_HEARTBEAT_SECONDS = env.float("RUN_HEARTBEAT_SECONDS", default=5.0)
RUN_STALL_SECONDS = env.float("RUN_STALL_SECONDS", default=60.0)
KAFKA_BOOTSTRAP_SERVERS = env("KAFKA_BOOTSTRAP_SERVERS", default="127.0.0.1:9092")
# How long a request waits for the broker to acknowledge a re-push before it answers that
# it failed (the broker down: a quick, clear failure rather than a hung request).
KAFKA_DELIVERY_TIMEOUT_S = env.float("KAFKA_DELIVERY_TIMEOUT_S", default=5.0)
# A re-push still `pushed` this long after it was sent (the web died before sending it, a
# broker lost its log) is sent again by beat, same id and new timestamp.
REPUSH_RESEND_AFTER_S = env.float("REPUSH_RESEND_AFTER_S", default=120.0)
# HTTP sources (ingestion/pull/http.py): hosts resolving to private, loopback or
# link-local addresses are refused unless allowed; a credential `env:NAME` is read only
# for the NAMEs listed here.
HTTP_SOURCE_ALLOW_PRIVATE = env.bool("HTTP_SOURCE_ALLOW_PRIVATE", default=False)
HTTP_SOURCE_SECRET_NAMES = env.list(
    "HTTP_SOURCE_SECRET_NAMES", default=["PRODUCTS_API_USERNAME", "PRODUCTS_API_PASSWORD"]
)
PIPELINE_TOPIC = env("PIPELINE_TOPIC", default="transactions.raw")
PIPELINE_DLQ_TOPIC = env("PIPELINE_DLQ_TOPIC", default="transactions.dlq")
PIPELINE_GROUP = env("PIPELINE_GROUP", default="datalake-pipeline")
PIPELINE_PARTITIONS = env.int("PIPELINE_PARTITIONS", default=3)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "auditlog",
    "axes",
    "datalake",
    "accounts",
    "ingestion",
    "metrics",
    "lineage",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outermost after security: even requests refused by later middleware are logged.
    "lineage.middleware.RequestLogMiddleware",
    # Just inside the request log: every /api/ answer is JSON in the envelope, even DEBUG's.
    "datalake.api.middleware.ApiErrorMiddleware",
    # Inside the request log (whose own writes are not limited): every /api/ query after it.
    "datalake.platform.statement_timeout.StatementTimeoutMiddleware",
    "accounts.middleware.GrantScopeMiddleware",
    # The RateLimit-* headers of a quota-counted request (accounts/quotas/), its 429 too.
    "accounts.quotas.throttle.QuotaHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After a write, the user's next reads wait for a replica to replay it (or use the primary).
    "datalake.platform.replicas.ReadYourWritesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "lineage.middleware.AuditlogMiddleware",  # auditlog's, with the request log's client IP
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a login refused by the failed-login throttle into its 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "datalake.urls"
WSGI_APPLICATION = "datalake.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG  # serve straight from the apps in development
LOGIN_URL = "/api-auth/login/"
LOGIN_REDIRECT_URL = "/api/v1/"

# JSON bodies (and the request log's copy of them) nested deeper than this are refused
# with a 400 (datalake/api/parsers.py): real bodies need 4 levels.
API_JSON_MAX_DEPTH = env.int("API_JSON_MAX_DEPTH", default=32)
REST_FRAMEWORK = {
    # Token first: its `WWW-Authenticate` header makes anonymous calls 401, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Quotas per token (accounts/quotas/): after authentication and permission.
    "DEFAULT_THROTTLE_CLASSES": ["accounts.quotas.throttle.QuotaThrottle"],
    "DEFAULT_RENDERER_CLASSES": [
        "datalake.api.renderers.FastJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["datalake.api.parsers.BoundedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "datalake.api.pagination.PagePagination",
    "DEFAULT_FILTER_BACKENDS": ["datalake.api.filtering.StrictFilterBackend"],
    "PAGE_SIZE": 10,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "datalake.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "COERCE_DECIMAL_TO_STRING": True,
    "DATETIME_FORMAT": "iso-8601",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Data-lake portal API",
    "DESCRIPTION": (
        "Exposes the data lake safely: token auth, per-resource grants, a query API "
        "over every table and raw-file folder, versions, metrics, reports, search, "
        "re-push through Kafka and ML training. Authenticate with "
        "`Authorization: Token <key>` (get one from `POST /api/v1/auth/token/`)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "PrivilegeEnum": "accounts.models.Privilege",
        # Runs share one vocabulary; each kind keeps its documented words on the wire.
        "RunStatusEnum": "datalake.runs.models.RunStatus",
        "ReportStatusEnum": "metrics.reports.views.REPORT_STATUSES",
        "RepushStatusEnum": "ingestion.api.pipeline.REPUSH_STATUSES",
        "RepushJobStatusEnum": "ingestion.api.pipeline.JOB_STATUSES",
        "TrainingStatusEnum": "metrics.ml.serializers.TRAINING_STATUSES",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "datalake.api.schema.add_table_rows_paths",
        "datalake.api.schema.add_error_responses",
        "datalake.api.schema.add_quota_headers",
        "datalake.api.schema.bound_paging_parameters",
        "datalake.api.schema.add_conditional_reads",
        "datalake.api.schema.add_freshness",
    ],
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=4 * 3600)
# One queue per kind of work, each with workers of its own (docker-compose.yml,
# scripts/run_local.py): a loop of trainings or reports never starves ingestion. The
# short periodic housekeeping stays on Celery's default queue `celery`.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "ingestion.run": {"queue": "ingestion"},
    "ingestion.run_batch": {"queue": "ingestion"},
    "ingestion.pull": {"queue": "ingestion"},
    "ingestion.scan_landing": {"queue": "ingestion"},
    "pipeline.repush_all": {"queue": "ingestion"},
    "reports.run": {"queue": "reports"},
    "ml.train": {"queue": "ml"},
    "audit.seal": {"queue": "audit"},
    "audit.retention": {"queue": "audit"},
}
# The daily schedule: look for new files in every landing folder (INGEST_SCAN_CRON, UTC).
_scan = env("INGEST_SCAN_CRON", default="0 2 * * *").split()
REPORT_TIMEOUT = env.int("REPORT_TIMEOUT", default=1800)  # then a `running` report is `error`
# Reports one user may have `running` at once (more: 429 `too_many_running_reports`).
REPORTS_MAX_RUNNING_PER_USER = env.int("REPORTS_MAX_RUNNING_PER_USER", default=3)
# Trainings one user may have queued or running at once (more: 429).
TRAININGS_MAX_RUNNING_PER_USER = env.int("TRAININGS_MAX_RUNNING_PER_USER", default=2)
# The audit chain (lineage/chain/, docs/AUDIT.md). The key that signs its checkpoints: a
# secret like SECRET_KEY, never stored in the database (required when DEBUG is off); the
# public keys of former signing keys (base64, comma-separated) still verify older ones.
AUDIT_SIGNING_KEY = _secret("AUDIT_SIGNING_KEY")
if len(AUDIT_SIGNING_KEY) < 32:
    raise ImproperlyConfigured("AUDIT_SIGNING_KEY must be at least 32 characters long.")
AUDIT_VERIFY_KEYS = env.list("AUDIT_VERIFY_KEYS", default=[])
# Where checkpoints are written, one file per sealing round, never rewritten: in
# production, storage the database's administrators cannot change (object lock).
AUDIT_CHECKPOINT_ROOT = Path(
    env("AUDIT_CHECKPOINT_ROOT", default="") or LAKE_ROOT / "audit" / "checkpoints"
).resolve()
# A sealing round every this many seconds, sealing at most AUDIT_SEAL_BATCH requests a
# transaction; sealed ranges older than AUDIT_RETENTION_DAYS are deleted (0: keep all).
AUDIT_SEAL_SECONDS = env.float("AUDIT_SEAL_SECONDS", default=5.0)
AUDIT_SEAL_BATCH = env.int("AUDIT_SEAL_BATCH", default=20_000)
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=0)
# `GET /api/v1/audit/verify/` walks at most this many seals a call (the command has no
# limit): a longer range is verified by `verify_audit`, or in parts with since/until.
AUDIT_VERIFY_MAX_ROWS = env.int("AUDIT_VERIFY_MAX_ROWS", default=1_000_000)

CELERY_BEAT_SCHEDULE = {
    # Every kind of run whose worker died, by its kind's policy: ingestion runs queued
    # again, stale reports failed, re-pushes sent again... (datalake/runs/).
    "recover-stalled-runs": {
        "task": "runs.recover_stalled",
        "schedule": INGESTION_RECOVER_SECONDS,
    },
    "scan-landing": {
        "task": "ingestion.scan_landing",
        "schedule": crontab(*_scan),
    },
    # Shared Parquet files whose signed URLs have all expired (datalake/sharing/).
    "sharing-drop-unreachable": {
        "task": "sharing.drop_unreachable",
        "schedule": 3600.0,
    },
    # The audit chain (lineage/chain/): seal what was stored since the last round, and
    # delete the sealed ranges older than AUDIT_RETENTION_DAYS (if set).
    "audit-seal": {"task": "audit.seal", "schedule": float(AUDIT_SEAL_SECONDS)},
    "audit-retention": {"task": "audit.retention", "schedule": crontab(minute=30, hour=3)},
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env("CACHE_URL", default="redis://127.0.0.1:6379/1"),
        "KEY_PREFIX": "datalake",
    }
}

# Ranged metrics (metrics/ranges.py): a ranking is stored only for a range whose edges
# fall on this many seconds, and at most this many rankings are kept (the oldest go).
METRICS_RANGE_GRANULARITY_SECONDS = env.int("METRICS_RANGE_GRANULARITY_SECONDS", default=60)
METRICS_RANGE_CACHE_MAX = env.int("METRICS_RANGE_CACHE_MAX", default=1000)

# Followers (datalake.lake.followers): the search entries and the metrics aggregates are
# derived from committed versions by `manage.py run_followers`, after the merge.
# FOLLOWERS_EAGER: a merge derives its version itself, in its own transaction (the test
# settings, or a single process with no follower running; slower merges). Never with
# followers running in production.
FOLLOWERS_EAGER = env.bool("FOLLOWERS_EAGER", default=False)
# Longest wait of a read's `?min_version=` for a follower to reach that version, then 503.
FOLLOWER_WAIT_SECONDS = env.float("FOLLOWER_WAIT_SECONDS", default=5.0)
# Seconds a follower process sleeps between polls when no NOTIFY wakes it.
FOLLOWER_POLL_SECONDS = env.float("FOLLOWER_POLL_SECONDS", default=1.0)
# Crash-safety tests only: seconds a follower waits between applying a batch and storing
# its position (a kill lands there). 0 in every deployment.
FOLLOWER_PAUSE_BEFORE_POSITION = env.float("FOLLOWER_PAUSE_BEFORE_POSITION", default=0.0)

# Longest time (ms) building a restricted grant's metrics scope on its first request
# (metrics.scopes: its aggregates from the rows its row filter lets through), instead of
# API_STATEMENT_TIMEOUT_MS.
METRICS_SCOPE_BUILD_TIMEOUT_MS = env.int("METRICS_SCOPE_BUILD_TIMEOUT_MS", default=300_000)

# Search: merges keep the index current (false only for a bulk backfill, then rebuild it).
SEARCH_INDEX_ENABLED = env.bool("SEARCH_INDEX_ENABLED", default=True)
# An id-like search word also matches as a prefix, unless it begins more than this many of
# the records searched (then 400 query_too_broad: give more of the id).
SEARCH_PREFIX_MAX_MATCHES = env.int("SEARCH_PREFIX_MAX_MATCHES", default=1000)

# Machine learning (metrics/ml/): OpenMP threads of a fit and a training's time limit (the
# per-user limit of unfinished trainings is TRAININGS_MAX_RUNNING_PER_USER, above). A Celery
# worker already runs a task per core: more threads than free cores slow a fit ~10x.
ML_THREADS = env.int("ML_THREADS", default=1)
ML_TRAINING_TIMEOUT = env.int("ML_TRAINING_TIMEOUT", default=3600)

# The request log (lineage/writer.py): reads' entries are stored in batches by a thread
# of each process, every this many ms (0: one INSERT per request, before the response),
# holding at most this many entries while the database cannot be reached.
REQUEST_LOG_FLUSH_MS = env.int("REQUEST_LOG_FLUSH_MS", default=20)
REQUEST_LOG_BUFFER = env.int("REQUEST_LOG_BUFFER", default=100_000)

# Accounts: token lifetime (0: no expiry) and the failed-login throttle (django-axes on
# every login path, accounts/throttling.py): LOGIN_FAILURE_LIMIT failures of one username
# from one IP, or LOGIN_FAILURE_IP_LIMIT of any usernames from one IP, within
# LOGIN_FAILURE_WINDOW seconds of the last one: 429 until that window has passed.
API_TOKEN_TTL_DAYS = env.int("API_TOKEN_TTL_DAYS", default=30)
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_FAILURE_IP_LIMIT = env.int("LOGIN_FAILURE_IP_LIMIT", default=30)
LOGIN_FAILURE_WINDOW = env.int("LOGIN_FAILURE_WINDOW", default=300)
# Quotas per token (accounts/quotas/, counted in the cache's Redis): requests a minute and
# rows of rows/ pages a UTC day, unless a Quota row of the user or one of its groups says
# otherwise (admin). 0: no limit. Staff have none unless a Quota row applies to them.
# QUOTAS_ENABLED=false counts nothing (benchmarks' comparison, a Redis-less debug session).
QUOTAS_ENABLED = env.bool("QUOTAS_ENABLED", default=True)
QUOTA_REQUESTS_PER_MINUTE = env.int("QUOTA_REQUESTS_PER_MINUTE", default=600)
QUOTA_ROWS_PER_DAY = env.int("QUOTA_ROWS_PER_DAY", default=1_000_000)
# A process counts a caller's requests (and rows) in leases of 1/QUOTA_LEASE_SHARE of its
# limits, one Redis trip a lease (accounts/quotas/counters.py); 0: one trip a request.
QUOTA_LEASE_SHARE = env.int("QUOTA_LEASE_SHARE", default=100)
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out client
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "accounts.throttling.LoginThrottleHandler"
AXES_CACHE = "default"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_FAILURE_LIMIT = "accounts.throttling.failure_limit"
AXES_COOLOFF_TIME = "accounts.throttling.cool_off"
AXES_CLIENT_IP_CALLABLE = "accounts.throttling.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.throttling.lockout_response"
AXES_ENABLE_ADMIN = False  # the cache handler keeps no rows for the admin to show

# Open sharing (Delta Sharing, datalake/sharing/): where the shared Parquet files are
# written, how long a pre-signed file URL lives, and the rows in one file.
SHARING_ROOT = Path(env("SHARING_ROOT", default="") or LAKE_ROOT / "sharing").resolve()
SHARING_URL_LIFETIME_SECONDS = env.int("SHARING_URL_LIFETIME_SECONDS", default=3600)
SHARING_FILE_ROWS = env.int("SHARING_FILE_ROWS", default=1_000_000)
# Past versions of one table whose files may exist at once (each up to a copy of the table):
# time travel past that is a 429 until their URLs expire.
SHARING_MAX_PAST_VERSIONS = env.int("SHARING_MAX_PAST_VERSIONS", default=4)
# Versions one change-feed call may span (each one's files a COPY the first time).
SHARING_MAX_CHANGE_VERSIONS = env.int("SHARING_MAX_CHANGE_VERSIONS", default=200)
# The catalog: above this many rows (planner estimate), `count` is the estimate.
LAKE_EXACT_COUNT_LIMIT = env.int("LAKE_EXACT_COUNT_LIMIT", default=10_000)
LAKE_MAX_PAGE_SIZE = 10
# A count (or estimate) is reused for this long by the same process: pages of one query.
LAKE_COUNT_CACHE_SECONDS = env.float("LAKE_COUNT_CACHE_SECONDS", default=5.0)
# A folder walk's manifest (its files) is kept this long: its cursors expire after (410).
LAKE_SNAPSHOT_SECONDS = env.int("LAKE_SNAPSHOT_SECONDS", default=24 * 3600)
# `max-age` of an answer that never changes (rows of a version named or pinned by a walk).
LAKE_IMMUTABLE_MAX_AGE = env.int("LAKE_IMMUTABLE_MAX_AGE", default=24 * 3600)
# The cost guard (datalake/query/guard.py): a rows page whose planner cost (EXPLAIN total
# cost, PostgreSQL's units) is above this is refused, 400 query_too_expensive; 0 turns the
# guard off. On 1M transactions every page 1 measured costs <= 400 (<= 10 ms), page=10000
# ~4,800 (~55 ms), a sort of the table by a column without index ~32,000 (~600 ms),
# page=50000 ~24,000 (~300 ms): docs/BENCHMARKS.md, "The cost guard".
LAKE_QUERY_MAX_COST = env.float("LAKE_QUERY_MAX_COST", default=10_000.0)
# Exports of rows/ (CSV, Arrow; datalake/query/export.py): about this many rows a streamed
# batch, and the statement timeout of an export's COPY (ms; 0: none) in place of the API's.
LAKE_EXPORT_BATCH_ROWS = env.int("LAKE_EXPORT_BATCH_ROWS", default=50_000)
LAKE_EXPORT_STATEMENT_TIMEOUT_MS = env.int("LAKE_EXPORT_STATEMENT_TIMEOUT_MS", default=600_000)

# Logs: one JSON object a line (datalake/platform/logging.py) from every process, with the request
# id inside a request and the task id inside a Celery task; LOG_FORMAT=text for people.
LOG_FORMAT = env("LOG_FORMAT", default="json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}")
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "datalake.platform.logging.ContextFilter"},
        "database_outage": {"()": "datalake.platform.logging.database_outage_filter"},
    },
    "formatters": {
        "json": {"()": "datalake.platform.logging.JsonFormatter"},
        "text": {"()": "datalake.platform.logging.TextFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own handlers (a text console in DEBUG, runserver's) give way to the root's.
        "django": {"handlers": [], "propagate": True},
        "django.server": {"handlers": [], "propagate": True},
        # A request that met an unreachable database: one traceback a minute, not one each.
        "django.request": {"handlers": [], "propagate": True, "filters": ["database_outage"]},
        "lineage.middleware": {"handlers": [], "propagate": True, "filters": ["database_outage"]},
        "django.db.backends": {"level": "INFO"},
        # django-axes greets every process start (each management command) at INFO.
        "axes.apps": {"level": "WARNING"},
    },
}
logging.captureWarnings(True)  # Python warnings become log records (py.warnings): JSON too

# /metrics (datalake/platform/prometheus.py): with `Authorization: Bearer <METRICS_TOKEN>`, or from
# the networks listed here. None by default: behind a reverse proxy every request comes
# from a private (or loopback) address, so an address proves nothing unless the operator
# knows the scraper connects directly.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])

# Tests only (tests/support/deltasharing.py): the virtual environment of the
# `delta-sharing` Python connector the suite drives (it pins other pyarrow/pandas than the
# portal). Empty: run/venvs/delta-sharing-<version>/, made by the first test run needing it.
DELTA_SHARING_VENV = env("DELTA_SHARING_VENV", default="")
