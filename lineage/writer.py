"""Writing request-log entries: the one write that every request makes.

Reads (GET, HEAD, OPTIONS) served outside a transaction, as the web serves them,
are handed to a writer thread of the process, which stores whatever has queued
up every `REQUEST_LOG_FLUSH_MS` (20 ms) in one statement (a JSON array of
entries, `jsonb_populate_recordset`), with a synchronous commit. One INSERT per
request was the most expensive part of a request after its own query: its
round trip, transaction and commit cost as much for one row as for fifty.

What that means for the trail:
- an entry is in the database at most ~20 ms (plus the commit) after its
  response; the audit endpoints flush the process's own queue before they read;
- a writer that cannot reach PostgreSQL keeps the entries and retries every
  second, up to `REQUEST_LOG_BUFFER` entries (then it drops the oldest, and says
  how many in the error log), so a database outage loses no entry that a
  running process holds;
- the queue is flushed when the process exits (gunicorn's graceful stops and
  restarts, worker timeouts, `sys.exit`); only a process killed outright
  (SIGKILL, the OOM killer) loses the entries of its last ~20 ms;
- writes (POST, PUT, PATCH, DELETE) are stored synchronously, before the
  response, like the change they record; so is everything inside a transaction
  (the tests, a caller's atomic block).
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time

import orjson
import psycopg
from django.conf import settings
from django.db import connection

from .models import RequestLog

logger = logging.getLogger(__name__)

COLUMNS = (
    "at", "user_id", "username", "method", "path", "query", "body", "status_code",
    "duration_ms", "resource", "ip", "restrictions", "request_id",
)  # fmt: skip
TABLE = RequestLog._meta.db_table
_SELECT = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM "
INSERT_ONE = _SELECT + f"jsonb_populate_record(NULL::{TABLE}, %s::jsonb)"
INSERT_MANY = _SELECT + f"jsonb_populate_recordset(NULL::{TABLE}, %s::jsonb)"
MAX_BATCH = 2_000


def _json(value) -> bytes:
    # PostgreSQL text and jsonb take no NUL character: keep the entry, mark the spot.
    return orjson.dumps(value, default=str).replace(b"\\u0000", b"\\ufffd")


def store_entry(entry: dict, *, asynchronous: bool) -> None:
    """Store one entry (keys: COLUMNS): queued for the writer thread, or right now.

    Raises DatabaseError when a synchronous insert fails.
    """
    if asynchronous and settings.REQUEST_LOG_FLUSH_MS > 0 and connection.get_autocommit():
        _writer().put(_json(entry))
        return
    with connection.cursor() as cursor:
        cursor.execute(INSERT_ONE, [_json(entry).decode()])


def flush(timeout: float = 5.0) -> bool:
    """Wait until this process's queued entries are stored; False if that timed out."""
    writer = _current
    return True if writer is None or writer.pid != os.getpid() else writer.flush(timeout)


class _Writer:
    """A thread with its own connection that stores queued entries in batches."""

    def __init__(self):
        self.pid = os.getpid()
        self.queue: collections.deque[bytes] = collections.deque()
        self.wakeup = threading.Condition()
        self.in_flight = 0
        self.dropped = 0
        self.conn: psycopg.Connection | None = None
        self.thread = threading.Thread(target=self._run, name="request-log-writer", daemon=True)
        self.thread.start()

    def put(self, entry: bytes) -> None:
        with self.wakeup:
            self.queue.append(entry)
            overflow = len(self.queue) - settings.REQUEST_LOG_BUFFER
            if overflow > 0:
                for _ in range(overflow):
                    self.queue.popleft()
                self.dropped += overflow

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.wakeup:
            self.wakeup.notify_all()
            while self.queue or self.in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.wakeup.wait(min(left, 0.05))
        return True

    def _run(self) -> None:
        interval = settings.REQUEST_LOG_FLUSH_MS / 1000
        while True:
            with self.wakeup:
                if not self.queue:
                    self.wakeup.wait(interval)
                batch = [self.queue.popleft() for _ in range(min(len(self.queue), MAX_BATCH))]
                self.in_flight = len(batch)
            if batch and not self._write(batch):
                with self.wakeup:  # keep them, in order, and try again in a second
                    self.queue.extendleft(reversed(batch))
                    self.in_flight = 0
                time.sleep(1.0)
                continue
            with self.wakeup:
                self.in_flight = 0
                self.wakeup.notify_all()
            time.sleep(interval)

    def _write(self, batch: list[bytes]) -> bool:
        try:
            if self.conn is None or self.conn.closed:
                self.conn = _connect()
            entries = (b"[" + b",".join(batch) + b"]").decode()
            self.conn.execute(INSERT_MANY, [entries], prepare=True)
        except Exception as exc:  # the thread must live on whatever happens: retry later
            logger.error("Request log: %d entries wait for the database: %s", len(batch), exc)
            if self.conn is not None and (self.conn.broken or self.conn.closed):
                self.conn = None
            return False
        if self.dropped:
            logger.error("Request log: %d entries dropped (buffer full)", self.dropped)
            self.dropped = 0
        return True


def _connect() -> psycopg.Connection:
    params = connection.get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    return psycopg.connect(**params, autocommit=True)


_current: _Writer | None = None
_lock = threading.Lock()


def _writer() -> _Writer:
    global _current
    writer = _current
    if writer is None or writer.pid != os.getpid():  # first use, or a forked child
        with _lock:
            if _current is None or _current.pid != os.getpid():
                _current = _Writer()
            writer = _current
    return writer


@atexit.register
def _flush_at_exit() -> None:
    if not flush(timeout=10.0):
        logger.error("Request log: entries still queued at exit")
