"""The quota counters in Redis (the cache's server): one round trip a request at most.

A request's counter is per caller and per minute of the clock (`...:req:<who>:<minute>`);
rows are counted per caller and per UTC day (`...:rows:<who>:<day>`). Both windows are
fixed: a counter is never reset, the next window simply has another key, and each key
expires soon after its window, so Redis holds at most two keys per active caller.

One Lua script a trip (INCRBY + EXPIRE of the minute's key, by one request or a lease; on
a rows page, INCRBY of the page's rows reserved in advance, else GET; GET of the limits'
generation) costs the same whatever the traffic. A page shorter than its reservation, or
rows served beyond it (an export), cost one INCRBY more (none where a lease covers it).
Each thread keeps one connection (no pool to check out, no client to build): a round
trip is then ~0.13 ms of CPU, half the pool's.

Leases. A process takes more than one request (and rows beyond the page) in a trip when
the caller's limits allow: `QUOTA_LEASE_SHARE` (100) sets a lease to 1/100 of a limit, at
most `LEASE_REQUESTS` requests and `LEASE_ROWS` rows (no limit: those). The next
requests of that caller in this process, in the same minute, are counted from the lease
with no trip; unused rows given back go to it, and what a lease has left is netted
into the next trip (nothing is lost while the minute lasts). The counters in Redis hold
leases as spent, so the counts never pass a limit: a caller may be refused up to the
leases other processes hold before its last request (at most 1% of its limit each), and
`RateLimit-Remaining` counts them as spent; a caller that stops for the day leaves its
last lease's rows counted. Limits under 200 requests a minute and 100 rows a day, or
`QUOTA_LEASE_SHARE=0`, lease nothing: one trip a request, exact. A changed limit is seen
at the next trip (the lease's end: within the minute, or its size in requests); the
process that changes one drops its leases at once (what they had left stays spent).
Two threads of one caller tripping at once get two leases, merged (none is lost).

`clock` is read at each call (the tests move it past a window instead of sleeping).
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

PREFIX = "datalake:quota"
GENERATION_KEY = f"{PREFIX}:generation"
MINUTE, DAY = 60, 86_400
LEASE_REQUESTS, LEASE_ROWS = 50, 1_000  # the most a lease takes
TIMEOUT_S = 1.0  # Redis slower than this (no retry): the request is served uncounted

COUNT = """
local n = redis.call('INCRBY', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[1])
local rows
if ARGV[2] ~= '0' then
  rows = redis.call('INCRBY', KEYS[2], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
else
  rows = tonumber(redis.call('GET', KEYS[2]) or '0')
end
return {n, rows, redis.call('GET', KEYS[3]) or ''}
"""

clock = time.time
_local = threading.local()


def client() -> redis.Redis:
    """This thread's connection to the cache's Redis (made again in a forked child)."""
    if getattr(_local, "pid", None) != os.getpid():
        _local.client = redis.Redis.from_url(
            settings.CACHES["default"]["LOCATION"],
            single_connection_client=True,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        _local.count = _local.client.register_script(COUNT)
        _local.pid = os.getpid()
    return _local.client


@dataclass
class Counts:
    """What Redis said for one request: its caller's counts in their windows."""

    who: str
    now: float
    requests: int  # requests of this minute, this one included
    rows: int  # rows of today, this request's reservation included
    generation: bytes  # of the limits (limits.py): changed, the process reloads them
    tripped: bool = True  # counted in Redis by this request (else from a lease)

    @property
    def rows_key(self) -> str:
        return f"{PREFIX}:rows:{self.who}:{int(self.now // DAY)}"

    @property
    def minute_reset(self) -> int:
        """Seconds until this minute's window ends (at least 1)."""
        return max(1, math.ceil(MINUTE - self.now % MINUTE))

    @property
    def day_reset(self) -> int:
        """Seconds until the UTC day ends (at least 1)."""
        return max(1, math.ceil(DAY - self.now % DAY))


@dataclass
class _Lease:
    """What one trip took for a caller beyond its request, in this process."""

    window: tuple[int, int]  # (minute, day) of the trip
    requests: int  # the minute's count after the trip (the lease counted as spent)
    free: int  # requests of the lease not handed out yet
    rows: int  # the day's rows after the trip
    free_rows: int  # rows of the lease not handed out yet
    generation: bytes


_leases: dict[str, _Lease] = {}
_sizes: dict[str, tuple[int, int]] = {}  # who -> (requests, rows) its next trip leases
_lease_lock = threading.Lock()
CALLERS_KEPT = 10_000  # past that, the leases and sizes start over (theirs stay spent)


def _forked() -> None:
    """A forked child holds none of its parent's leases, and a lock of its own."""
    global _lease_lock
    _lease_lock = threading.Lock()
    _leases.clear()
    _sizes.clear()


os.register_at_fork(after_in_child=_forked)


def _window(now: float) -> tuple[int, int]:
    return int(now // MINUTE), int(now // DAY)


def _install(who: str, lease: _Lease) -> None:
    """Keep `lease` for `who` (under _lease_lock). Another thread of the same caller may
    have tripped meanwhile: leases of one window are merged, so none is lost."""
    held = _leases.get(who)
    if held is not None and held.window == lease.window:
        lease.requests = max(lease.requests, held.requests)
        lease.rows = max(lease.rows, held.rows)
        lease.free += held.free
        lease.free_rows += held.free_rows
    elif held is None and len(_leases) >= CALLERS_KEPT:
        _leases.clear()
    _leases[who] = lease


def size_leases(who: str, requests_per_minute: int | None, rows_per_day: int | None) -> None:
    """Size the leases of `who`'s next trips by its limits (None: no limit)."""
    share = settings.QUOTA_LEASE_SHARE
    if not share:
        sizes = (1, 0)
    else:
        minute = LEASE_REQUESTS if requests_per_minute is None else requests_per_minute // share
        day = LEASE_ROWS if rows_per_day is None else rows_per_day // share
        sizes = (max(1, min(LEASE_REQUESTS, minute)), max(0, min(LEASE_ROWS, day)))
    with _lease_lock:
        if len(_sizes) >= CALLERS_KEPT:
            _sizes.clear()
        _sizes[who] = sizes


def count_request(who: str, reserve_rows: int = 0) -> Counts:
    """Count one request of `who` and reserve `reserve_rows` rows of its day: from its
    lease in this process, or in one trip (which takes the next lease)."""
    now = clock()
    window = _window(now)
    with _lease_lock:
        lease = _leases.pop(who, None)
        left = left_rows = 0  # what the lease has left counts toward this trip
        if lease is not None and lease.window == window:
            if lease.free >= 1 and lease.free_rows >= reserve_rows:
                lease.free -= 1
                lease.free_rows -= reserve_rows
                _leases[who] = lease
                rows = lease.rows - lease.free_rows
                requests = lease.requests - lease.free
                return Counts(who, now, requests, rows, lease.generation, tripped=False)
            left, left_rows = lease.free, lease.free_rows
        elif lease is not None and lease.window[1] == window[1]:
            left_rows = lease.free_rows  # a past minute's requests are spent; not today's rows
        size, rows_size = _sizes.get(who, (1, 0))
    counts = Counts(who, now, 0, 0, b"")
    request_key = f"{PREFIX}:req:{who}:{window[0]}"
    client()
    keys = [request_key, counts.rows_key, GENERATION_KEY]
    take_rows = reserve_rows + rows_size - left_rows
    args = [2 * MINUTE, take_rows, 2 * DAY, size - left]
    try:
        requests, rows, generation = _local.count(keys=keys, args=args)
    except BaseException:
        if lease is not None:  # nothing was counted: the lease is still what it was
            with _lease_lock:
                _install(who, lease)
        raise
    requests, rows = int(requests), int(rows)
    counts.requests, counts.rows = requests - (size - 1), rows - rows_size
    counts.generation = generation
    if size > 1 or rows_size:
        with _lease_lock:
            _install(who, _Lease(window, requests, size - 1, rows, rows_size, generation))
    return counts


def add_rows(counts: Counts, n: int) -> None:
    """Add `n` (negative: give back) rows to the day of `counts`; `counts.rows` follows.
    From or to the caller's lease in this process when it can, else one INCRBY (the
    request's trip set the key's expiry)."""
    with _lease_lock:
        lease = _leases.get(counts.who)
        if lease is not None and lease.window == _window(counts.now) and lease.free_rows >= n:
            lease.free_rows -= n
            counts.rows = lease.rows - lease.free_rows
            return
    counts.rows = int(client().incrby(counts.rows_key, n))


def new_generation(value: str) -> None:
    """Every process's cached limits are stale from their next trip on (this one's at
    once: its leases are dropped)."""
    with _lease_lock:
        _leases.clear()
        _sizes.clear()
    client().set(GENERATION_KEY, value)
