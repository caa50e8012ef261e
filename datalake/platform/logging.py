"""Logs as one JSON object a line, with the request id (or Celery task) they belong to.

Used by every process through `settings.LOGGING` (web, worker, beat, the pipeline
consumer) and by gunicorn's own error and access logs (`--logger-class
datalake.platform.logging.GunicornLogger`). `LOG_FORMAT=text` gives a readable line instead.

A line: `{"time": "2026-11-23T10:00:00.123Z", "level": "INFO", "logger": "ingestion.tasks",
"message": "...", "request_id": "...", "task_id": "...", "exception": "Traceback ..."}`;
`request_id` only inside a request, `task_id`/`task_name` only inside a Celery task,
`exception` only with one; fields given as `extra=` are added as they are.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import hashlib
import json
import logging
import os
import re
import sys
import time
import uuid

import orjson

# The id of the request being served (set by lineage.middleware.RequestLogMiddleware).
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_from(header: str | None) -> str:
    """The caller's `X-Request-ID` when it is a sane token, else a new one (uuid4 hex)."""
    if header and _SANE_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def _current_task():
    """The Celery task being executed in this thread, if Celery is loaded and in one."""
    state = sys.modules.get("celery._state")
    if state is None:
        return None
    task = state.get_current_task()
    if task is None or getattr(task.request, "id", None) is None:
        return None
    return task


class ContextFilter(logging.Filter):
    """Adds `request_id` (None outside a request) and, in a Celery task, `task_id`/`task_name`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "task_id", None) is None:
            task = _current_task()
            record.task_id = task.request.id if task else None
            record.task_name = task.name if task else None
        return True


class DatabaseOutageFilter(logging.Filter):
    """An error logged with an unreachable database as its cause (`django.request`'s for a
    request served as 503 `database_unavailable`, the request log's entry that could not
    be stored): the first of an outage keeps its traceback, the next ones in `window`
    seconds are one WARNING line each, without it.

    Not a bug of the request: a restarted PostgreSQL made every web process log a full
    traceback per request (5,411 in a 10-second outage under load).
    """

    def __init__(self, window: float = 60.0):
        super().__init__()
        self.window = window
        self.last_traceback = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not _is_database_unavailable(exc):
            return True
        now = time.monotonic()
        if now - self.last_traceback >= self.window:
            self.last_traceback = now
            return True
        record.msg = f"{record.getMessage()} (database unavailable: {str(exc).strip()[:200]})"
        record.args = None
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_outage_filter: DatabaseOutageFilter | None = None


def database_outage_filter() -> DatabaseOutageFilter:
    """The process's one outage filter (settings.LOGGING's factory). A second dictConfig
    of settings.LOGGING (Celery's setup_logging receiver in a process Django configured)
    adds filters to a logger without removing the old ones; the same instance is not
    added twice, so the loggers keep one shared window."""
    global _outage_filter
    if _outage_filter is None:
        _outage_filter = DatabaseOutageFilter()
    return _outage_filter


def _is_database_unavailable(exc: BaseException) -> bool:
    from django.db import InterfaceError, OperationalError

    return isinstance(exc, (OperationalError, InterfaceError))


# The attributes of every LogRecord: anything else on a record came from `extra=`.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "task_id",
    "task_name",
    "taskName",
}


def _timestamp(record: logging.LogRecord) -> str:
    at = dt.datetime.fromtimestamp(record.created, dt.UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _request_id_of(record: logging.LogRecord) -> str | None:
    request_id = getattr(record, "request_id", None)
    if request_id is None and record.name == "gunicorn.access" and isinstance(record.args, dict):
        request_id = record.args.get("{x-request-id}o")  # the response's header
    return request_id


# URL path segments that are credentials: a Delta Sharing file URL's signed token is a
# bearer credential until it expires. Logs (and the request log) keep a digest of it,
# so lines about one URL still match, never the token.
SECRET_PATH = re.compile(r"(/api/v1/delta-sharing/files/)([^/\s\"'?#]+)")


def redact_secret_paths(text: str) -> str:
    """`text` with every signed token of a file URL replaced by `<signed:digest>`."""
    if "/delta-sharing/files/" not in text:
        return text

    def digest(match) -> str:
        secret = hashlib.sha256(match.group(2).encode()).hexdigest()[:16]
        return f"{match.group(1)}<signed:{secret}>"

    return SECRET_PATH.sub(digest, text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (tracebacks are inside `exception`)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = _request_id_of(record)
        if request_id:
            entry["request_id"] = request_id
        if getattr(record, "task_id", None):
            entry["task_id"] = record.task_id
            entry["task_name"] = record.task_name
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value
        try:
            line = orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except (TypeError, orjson.JSONEncodeError):  # a logging call must never fail
            line = json.dumps(entry, default=repr)
        return redact_secret_paths(line)  # the message and any field (the request's repr)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [request or task id] message`, for people reading a terminal."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s%(context)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        context = _request_id_of(record) or getattr(record, "task_id", None)
        record.context = f" [{context}]" if context else ""
        return redact_secret_paths(super().format(record))


def formatter(kind: str | None = None) -> logging.Formatter:
    """The formatter `LOG_FORMAT` names: `json` (the default) or `text`."""
    kind = (kind or os.environ.get("LOG_FORMAT") or "json").lower()
    return TextFormatter() if kind == "text" else JsonFormatter()


def configure_celery_logging(**_kwargs) -> None:
    """Celery's `setup_logging` receiver: keep `settings.LOGGING` instead of Celery's own."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


def _gunicorn_logger_class():
    from gunicorn.glogging import Logger

    class GunicornLogger(Logger):
        """gunicorn's error and access logs through the same formatter (`LOG_FORMAT`)."""

        def setup(self, cfg):
            super().setup(cfg)
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(formatter())
                    handler.addFilter(ContextFilter())

    return GunicornLogger


def __getattr__(name: str):
    # `GunicornLogger` is built on first use, so that other processes never import gunicorn.
    if name == "GunicornLogger":
        cls = _gunicorn_logger_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)
