"""Quotas per token: requests a minute and rows a UTC day (issue 21; API.md "Reads for
clients and caches").

Every authenticated `/api/v1/` request is counted once, after authentication and
permission, by the DRF throttle `throttle.QuotaThrottle` (`check_request`): past the
caller's requests a minute it is refused, 429 `quota_exceeded` with `Retry-After`. Rows
are counted where they are served: a view whose action serves rows (`quota_row_actions`)
has a full page reserved in the same round trip; it calls `require_rows` before its query
(none left: 429) and `charge_rows` with what it served; the rows reserved and not served
go back when the response leaves (`settle`). The caller is its token (by the token's id,
never its key), or the user for a session login. Limits: `limits.py`; counters:
`counters.py`; headers: `Usage.headers`, written on every counted response by
`throttle.QuotaHeadersMiddleware`.

A page is served whole when any row is left, so a day's count may pass its limit by up
to a page. Redis unreachable (or slower than `counters.TIMEOUT_S`), requests are served
uncounted and logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from redis.exceptions import RedisError

from accounts.models import ApiToken
from accounts.quotas import counters
from accounts.quotas.limits import Limits, limits_of
from datalake.errors import QuotaExceeded

logger = logging.getLogger(__name__)

ATTRIBUTE = "quota_usage"  # on Django's request: the Usage of a counted request


@dataclass
class Usage:
    """A counted request: its caller's limits and counts."""

    limits: Limits
    counts: counters.Counts
    reserved: int = 0  # rows counted in advance and not charged yet

    @property
    def requests_left(self) -> int | None:
        limit = self.limits.requests_per_minute
        return None if limit is None else max(0, limit - self.counts.requests)

    @property
    def rows_left(self) -> int | None:
        """Rows this request may still serve (its reservation is its own)."""
        limit = self.limits.rows_per_day
        return None if limit is None else max(0, limit - self.counts.rows + self.reserved)

    def headers(self) -> dict[str, str]:
        """The IETF draft's `RateLimit-*` for requests; `X-RateLimit-Rows-*` for rows.
        A quota without a limit has no headers."""
        found = {}
        limit, counts = self.limits.requests_per_minute, self.counts
        if limit is not None:
            found["RateLimit-Limit"] = str(limit)
            found["RateLimit-Remaining"] = str(self.requests_left)
            found["RateLimit-Reset"] = str(counts.minute_reset)
            found["RateLimit-Policy"] = f"{limit};w={counters.MINUTE}"
        if self.limits.rows_per_day is not None:
            found["X-RateLimit-Rows-Limit"] = str(self.limits.rows_per_day)
            found["X-RateLimit-Rows-Remaining"] = str(self.rows_left)
            found["X-RateLimit-Rows-Reset"] = str(counts.day_reset)
        return found


def _django(request):
    """Django's request behind DRF's (the middleware sees only Django's)."""
    return getattr(request, "_request", request)


def usage_of(request) -> Usage | None:
    """The Usage of a counted request; None: not counted (anonymous, quotas off, no Redis)."""
    return getattr(_django(request), ATTRIBUTE, None)


def check_request(request, reserve_rows: int = 0) -> None:
    """Count this request of an authenticated caller, with `reserve_rows` rows of its day
    (those `charge_rows` does not take, `settle` gives back); QuotaExceeded past its
    requests a minute."""
    user = getattr(request, "user", None)
    if not settings.QUOTAS_ENABLED or user is None or not user.is_authenticated:
        return
    token = getattr(request, "auth", None)
    who = f"t{token.pk}" if isinstance(token, ApiToken) else f"u{user.pk}"
    try:
        counts = counters.count_request(who, reserve_rows)
    except RedisError:
        logger.warning("quotas: Redis unreachable, request served uncounted", exc_info=True)
        return
    usage = Usage(limits_of(user, counts.generation), counts, reserve_rows)
    if counts.tripped:  # the next trip's lease, by the limits as this one found them
        counters.size_leases(who, usage.limits.requests_per_minute, usage.limits.rows_per_day)
    setattr(_django(request), ATTRIBUTE, usage)
    limit = usage.limits.requests_per_minute
    if limit is not None and counts.requests > limit:
        raise QuotaExceeded(
            f"Request quota spent: {limit} requests a minute for these credentials; "
            f"retry in {counts.minute_reset} s.",
            retry_after=counts.minute_reset,
        )


def remaining_rows(request) -> int | None:
    """Rows the caller may still read today; None: no limit (or the request is not
    counted). For a whole-result export: serve at most this many, then `charge_rows`."""
    usage = usage_of(request)
    return None if usage is None else usage.rows_left


def require_rows(request) -> None:
    """Before a rows query: QuotaExceeded (429, Retry-After: the end of the UTC day) when
    the caller has no row left today."""
    if remaining_rows(request) == 0:
        usage = usage_of(request)
        reset = usage.counts.day_reset
        raise QuotaExceeded(
            f"Row quota spent: {usage.limits.rows_per_day} rows a day for these credentials; "
            f"retry after midnight UTC, in {reset} s.",
            retry_after=reset,
        )


def charge_rows(request, n: int) -> None:
    """After serving `n` more rows: count them against the caller's day. They come out of
    the request's reservation first (no Redis trip for a full page); beyond it, and for
    what is left of it (given back now), one INCRBY."""
    usage = usage_of(request)
    if usage is None:
        return
    extra, usage.reserved = n - usage.reserved, 0
    _add(usage, extra)


def export_meter(request):
    """The `on_batch` of an export (`datalake.query.export.Export`): each batch is counted
    against the caller's day before it is sent. A batch beyond what is left raises
    QuotaExceeded, which aborts the transfer: the client sees it truncated, never an
    export silently cut short."""

    def on_batch(n: int) -> None:
        left = remaining_rows(request)
        if left is not None and n > left:
            usage = usage_of(request)
            raise QuotaExceeded(
                f"Row quota spent during an export: {usage.limits.rows_per_day} rows a day.",
                retry_after=usage.counts.day_reset,
            )
        charge_rows(request, n)

    return on_batch


def settle(request) -> None:
    """The response leaves: the rows reserved and never charged go back to the day."""
    usage = usage_of(request)
    if usage is not None and usage.reserved:
        unused, usage.reserved = usage.reserved, 0
        _add(usage, -unused)


def _add(usage: Usage, n: int) -> None:
    if not n:
        return
    try:
        counters.add_rows(usage.counts, n)
    except RedisError:
        logger.warning("quotas: Redis unreachable, %d rows uncounted", n, exc_info=True)
