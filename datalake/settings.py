"""Settings of the data-lake portal.

Everything that differs between machines comes from the environment (see
`.env.example`); every variable has a working local default so that a fresh
clone runs against the PostgreSQL and Redis of the developer's machine.
"""

import logging
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="dev-insecure-change-me" if DEBUG else environ.Env.NOTSET)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"] if DEBUG else ["localhost", "127.0.0.1"])
# DEBUG's error page shows the innermost frames only: a deep recursion renders in no time.
DEFAULT_EXCEPTION_REPORTER = "datalake.debug.BoundedExceptionReporter"

DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/datalake"),
}
DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=600))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Statements run through datalake.db.prepared_cursor() are prepared (planned once per
# connection); psycopg prepares nothing else by itself (see datalake/db.py).
DB_PREPARED_STATEMENTS = env.bool("DB_PREPARED_STATEMENTS", default=True)
if DB_PREPARED_STATEMENTS:
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 2**31 - 1)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
LAKE_ROOT = Path(env("LAKE_ROOT", default=str(BASE_DIR / "lake"))).resolve()
SPARK_MASTER = env("SPARK_MASTER", default="local[*]")
SPARK_DRIVER_MEMORY = env("SPARK_DRIVER_MEMORY", default="2g")
SPARK_JOB_TIMEOUT = env.int("SPARK_JOB_TIMEOUT", default=3600)
# A running ingestion moves its heartbeat every INGESTION_HEARTBEAT_SECONDS; one that has
# not moved for INGESTION_STALL_SECONDS lost its worker (killed, machine gone) and beat
# queues it again (checked every INGESTION_RECOVER_SECONDS).
INGESTION_HEARTBEAT_SECONDS = env.float("INGESTION_HEARTBEAT_SECONDS", default=5.0)
INGESTION_STALL_SECONDS = env.float("INGESTION_STALL_SECONDS", default=30.0)
INGESTION_RECOVER_SECONDS = env.float("INGESTION_RECOVER_SECONDS", default=15.0)
KAFKA_BOOTSTRAP_SERVERS = env("KAFKA_BOOTSTRAP_SERVERS", default="127.0.0.1:9092")
# How long a request waits for the broker to acknowledge a re-push before it answers that
# it failed (the broker down: a quick, clear failure rather than a hung request).
KAFKA_DELIVERY_TIMEOUT_S = env.float("KAFKA_DELIVERY_TIMEOUT_S", default=5.0)
# A re-push still `pushed` this long after it was sent (the web died before sending it, a
# broker lost its log) is sent again by beat, same id and new timestamp.
REPUSH_RESEND_AFTER_S = env.float("REPUSH_RESEND_AFTER_S", default=120.0)
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
    "accounts.middleware.GrantScopeMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
    "ENUM_NAME_OVERRIDES": {"PrivilegeEnum": "accounts.models.Privilege"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "datalake.api.schema.add_table_rows_paths",
        "datalake.api.schema.add_error_responses",
        "datalake.api.schema.bound_paging_parameters",
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
# The daily schedule: look for new files in every landing folder (INGEST_SCAN_CRON, UTC).
_scan = env("INGEST_SCAN_CRON", default="0 2 * * *").split()
REPORT_TIMEOUT = env.int("REPORT_TIMEOUT", default=1800)  # then a `running` report is `error`
CELERY_BEAT_SCHEDULE = {
    "expire-stale-reports": {"task": "reports.expire_stale", "schedule": 300.0},
    "resend-stuck-repushes": {"task": "pipeline.resend_stuck_repushes", "schedule": 60.0},
    "recover-stalled-ingestion-runs": {
        "task": "ingestion.recover_stalled",
        "schedule": INGESTION_RECOVER_SECONDS,
    },
    "scan-landing": {
        "task": "ingestion.scan_landing",
        "schedule": crontab(*_scan),
    },
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env("CACHE_URL", default="redis://127.0.0.1:6379/1"),
        "KEY_PREFIX": "datalake",
    }
}

# Search: merges keep the index current (false only for a bulk backfill, then rebuild it).
SEARCH_INDEX_ENABLED = env.bool("SEARCH_INDEX_ENABLED", default=True)

# The request log (lineage/writer.py): reads' entries are stored in batches by a thread
# of each process, every this many ms (0: one INSERT per request, before the response),
# holding at most this many entries while the database cannot be reached.
REQUEST_LOG_FLUSH_MS = env.int("REQUEST_LOG_FLUSH_MS", default=20)
REQUEST_LOG_BUFFER = env.int("REQUEST_LOG_BUFFER", default=100_000)

# Accounts: token lifetime (0: no expiry) and the failed-login throttle.
API_TOKEN_TTL_DAYS = env.int("API_TOKEN_TTL_DAYS", default=30)
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_FAILURE_WINDOW = env.int("LOGIN_FAILURE_WINDOW", default=300)

# The catalog: above this many rows (planner estimate), `count` is the estimate.
LAKE_EXACT_COUNT_LIMIT = env.int("LAKE_EXACT_COUNT_LIMIT", default=10_000)
LAKE_MAX_PAGE_SIZE = 10
# A count (or estimate) is reused for this long by the same process: pages of one query.
LAKE_COUNT_CACHE_SECONDS = env.float("LAKE_COUNT_CACHE_SECONDS", default=5.0)

# Logs: one JSON object a line (datalake/logging.py) from every process, with the request
# id inside a request and the task id inside a Celery task; LOG_FORMAT=text for people.
LOG_FORMAT = env("LOG_FORMAT", default="json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}")
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "datalake.logging.ContextFilter"},
        "database_outage": {"()": "datalake.logging.DatabaseOutageFilter"},
    },
    "formatters": {
        "json": {"()": "datalake.logging.JsonFormatter"},
        "text": {"()": "datalake.logging.TextFormatter"},
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
    },
}
logging.captureWarnings(True)  # Python warnings become log records (py.warnings): JSON too

# /metrics (datalake/prometheus.py): open to these networks, or with
# `Authorization: Bearer <METRICS_TOKEN>` from anywhere (no token: networks only).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list(
    "METRICS_ALLOWED_NETWORKS",
    default=["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
)
