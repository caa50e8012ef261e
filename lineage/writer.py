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

from lineage.models import RequestLog

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
    try:
        data = orjson.dumps(value, default=str)
    except orjson.JSONEncodeError:  # nested past orjson's 254 levels: keep the entry
        data = orjson.dumps({**value, "body": {"_unencodable": True}}, default=str)
    return data.replace(b"\\u0000", b"\\ufffd")


def store_entry(entry: dict, *, asynchronous: bool) -> None:
    """Store one entry (keys: COLUMNS): queued for the writer thread, or right now.

    Raises DatabaseError when a synchronous insert fails.
    """
    # `in_atomic_block` needs no connection: with the database down, reads still queue.
    if asynchronous and settings.REQUEST_LOG_FLUSH_MS > 0 and not connection.in_atomic_block:
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
        """Store the batch; False (keep it, retry) only when the database cannot be reached."""
        try:
            if self.conn is None or self.conn.closed:
                self.conn = _connect()
            self._insert(batch)
        except psycopg.OperationalError as exc:  # down, restarting, unreachable: retry later
            logger.error("Request log: %d entries wait for the database: %s", len(batch), exc)
            self._reset()
            return False
        except Exception:  # an entry the table refuses: store the others, one by one
            logger.exception("Request log: a batch of %d failed; storing one by one", len(batch))
            self._reset()
            return self._one_by_one(batch)
        if self.dropped:
            logger.error("Request log: %d entries dropped (buffer full)", self.dropped)
            self.dropped = 0
        return True

    def _insert(self, batch: list[bytes]) -> None:
        entries = (b"[" + b",".join(batch) + b"]").decode()
        self.conn.execute(INSERT_MANY, [entries], prepare=settings.DB_PREPARED_STATEMENTS)

    def _one_by_one(self, batch: list[bytes]) -> bool:
        for entry in batch:
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = _connect()
                self._insert([entry])
            except psycopg.OperationalError:
                self._reset()
                return False  # the database went away meanwhile: the whole batch again
            except Exception:
                logger.exception("Request log: an entry the table refuses, dropped: %.500s", entry)
                self._reset()
        return True

    def _reset(self) -> None:
        """Drop a broken connection (an autocommit one has no transaction to roll back)."""
        if self.conn is not None and (self.conn.broken or self.conn.closed):
            self.conn = None


def _connect() -> psycopg.Connection:
    params = connection.get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    # Prepared only when allowed (DB_PREPARED_STATEMENTS), and then only what asks to be.
    threshold = 2**31 - 1 if settings.DB_PREPARED_STATEMENTS else None
    return psycopg.connect(**params, autocommit=True, prepare_threshold=threshold)


_current: _Writer | None = None
_lock = threading.Lock()


def _writer() -> _Writer:
    global _current
    writer = _current
    if writer is None or writer.pid != os.getpid() or not writer.thread.is_alive():
        with _lock:  # first use, a forked child, or a thread that died: a new writer
            current = _current
            if current is None or current.pid != os.getpid() or not current.thread.is_alive():
                fresh = _Writer()
                if current is not None and current.pid == os.getpid():
                    fresh.queue.extend(current.queue)  # what the dead thread still held
                _current = current = fresh
            writer = current
    return writer


def _after_fork_in_child() -> None:
    global _current, _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    _current = None  # the parent's thread does not exist here


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _flush_at_exit() -> None:
    if not flush(timeout=10.0):
        logger.error("Request log: entries still queued at exit")
