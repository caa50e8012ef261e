"""The failed-login throttle: django-axes on every login path, one limit per count.

Every login goes through `django.contrib.auth.authenticate` (the token endpoint, the
browsable API's `/api-auth/login/`, the admin's `/admin/login/`), where axes' backend
refuses a locked-out client and its signal handler counts each failure. Two counts,
in the cache (Redis), for `LOGIN_FAILURE_WINDOW` seconds from the last failure:

- per (username, IP): `LOGIN_FAILURE_LIMIT` failures lock that username out from that
  IP only, so no one can lock a user out from elsewhere; a success clears this count;
- per IP: `LOGIN_FAILURE_IP_LIMIT` failures of any usernames lock that IP out, so that
  one client cannot try a password on many users. A success does not clear it.

The client's IP is `REMOTE_ADDR`, the rule of the request log (a forwarded header is
the client's own words).
"""

from __future__ import annotations

import datetime as dt

from axes.handlers.cache import AxesCacheHandler
from axes.helpers import get_client_cache_keys, get_credentials
from django.conf import settings
from django.http import HttpResponse, JsonResponse

LOCKED_OUT = "Too many failed logins; wait before trying again."


def client_ip(request) -> str | None:
    """AXES_CLIENT_IP_CALLABLE: the address the request log records."""
    return request.META.get("REMOTE_ADDR") or None


def failure_limit(request, credentials) -> int:
    """AXES_FAILURE_LIMIT, read at each try (the per-(username, IP) limit)."""
    return settings.LOGIN_FAILURE_LIMIT


def cool_off(request) -> dt.timedelta:
    """AXES_COOLOFF_TIME: how long failures are remembered after the last one."""
    return dt.timedelta(seconds=settings.LOGIN_FAILURE_WINDOW)


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: 429 with Retry-After; the JSON error envelope under /api/."""
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": LOCKED_OUT, "code": "throttled"}, status=429)
    else:
        response = HttpResponse(LOCKED_OUT, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(settings.LOGIN_FAILURE_WINDOW)
    return response


class LoginThrottleHandler(AxesCacheHandler):
    """axes' cache handler, each count judged against its own limit.

    AXES_LOCKOUT_PARAMETERS is `[["username", "ip_address"], "ip_address"]`, so axes
    keeps the two counts under these two cache keys, in this order. Axes itself
    compares the larger count with one limit; here the IP's count has a higher one.
    """

    def _counts(self, request, credentials) -> tuple[int, int]:
        pair_key, ip_key = get_client_cache_keys(request, credentials)
        return self.cache.get(pair_key, 0), self.cache.get(ip_key, 0)

    def get_failures(self, request, credentials=None) -> int:
        pair, ip = self._counts(request, credentials)
        # axes compares this one number with LOGIN_FAILURE_LIMIT: the IP's cap reached
        # must read as that limit reached.
        if ip >= settings.LOGIN_FAILURE_IP_LIMIT:
            return max(pair, settings.LOGIN_FAILURE_LIMIT)
        return pair

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is not None and getattr(request, "axes_locked_out", False):
            # axes judged the larger count (perhaps the IP's) against the pair's limit.
            request.axes_locked_out = self.is_locked(request, credentials)

    def user_logged_in(self, sender, request, user, **kwargs):
        """A success clears the (username, IP) count only: the IP's cap still holds for
        a client that owns one account and guesses at the others."""
        super().user_logged_in(sender, request, user, **kwargs)
        pair_key = get_client_cache_keys(request, get_credentials(user.get_username()))[0]
        self.cache.delete(pair_key)
