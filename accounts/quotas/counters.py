"""The quota counters in Redis (the cache's server): one round trip a request.

A request's counter is per caller and per minute of the clock (`...:req:<who>:<minute>`);
rows are counted per caller and per UTC day (`...:rows:<who>:<day>`). Both windows are
fixed: a counter is never reset, the next window simply has another key, and each key
expires soon after its window, so Redis holds at most two keys per active caller. The
request's pipeline (INCR, EXPIRE, GET of the day's rows, GET of the limits' generation)
costs the same whatever the traffic; a rows page adds one INCRBY + EXPIRE.

`clock` is read at each call (the tests move it past a window instead of sleeping).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.core.cache import caches

PREFIX = "datalake:quota"
GENERATION_KEY = f"{PREFIX}:generation"
MINUTE, DAY = 60, 86_400

clock = time.time


def redis():
    """The cache's Redis client (its connection pool): counters live beside the cache."""
    return caches["default"]._cache.get_client(write=True)


def _keys(who: str, now: float) -> tuple[str, str]:
    return f"{PREFIX}:req:{who}:{int(now // MINUTE)}", f"{PREFIX}:rows:{who}:{int(now // DAY)}"


@dataclass
class Counts:
    """What Redis said for one request: its caller's counts in their windows."""

    who: str
    now: float
    requests: int  # requests of this minute, this one included
    rows: int  # rows served today
    generation: bytes | None  # of the limits (limits.py): changed, the process reloads

    @property
    def minute_reset(self) -> int:
        """Seconds until this minute's window ends (at least 1)."""
        return max(1, math.ceil(MINUTE - self.now % MINUTE))

    @property
    def day_reset(self) -> int:
        """Seconds until the UTC day ends (at least 1)."""
        return max(1, math.ceil(DAY - self.now % DAY))


def count_request(who: str) -> Counts:
    """Count one request of `who`; its counts and the limits' generation, in one trip."""
    now = clock()
    request_key, rows_key = _keys(who, now)
    pipe = redis().pipeline(transaction=False)
    pipe.incr(request_key)
    pipe.expire(request_key, 2 * MINUTE)
    pipe.get(rows_key)
    pipe.get(GENERATION_KEY)
    requests, _, rows, generation = pipe.execute()
    return Counts(who, now, int(requests), int(rows or 0), generation)


def add_rows(counts: Counts, n: int) -> None:
    """Add `n` rows to today's count of `counts`' caller (one trip); updates `counts`."""
    rows_key = _keys(counts.who, counts.now)[1]
    pipe = redis().pipeline(transaction=False)
    pipe.incrby(rows_key, n)
    pipe.expire(rows_key, 2 * DAY)
    counts.rows = int(pipe.execute()[0])


def new_generation(value: str) -> None:
    """Every process's cached limits are stale from their next request on."""
    redis().set(GENERATION_KEY, value)
