"""Throttling of failed logins on the token endpoint (429), per client IP and per username."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import Throttled


def _keys(request, username: str) -> list[str]:
    ip = request.META.get("REMOTE_ADDR", "unknown")
    return [f"login-fail:ip:{ip}", f"login-fail:user:{username.lower()[:150]}"]


def check_login_allowed(request, username: str) -> None:
    """429 once LOGIN_FAILURE_LIMIT failures happened within LOGIN_FAILURE_WINDOW seconds."""
    counts = cache.get_many(_keys(request, username))
    if any(n >= settings.LOGIN_FAILURE_LIMIT for n in counts.values()):
        raise Throttled(
            wait=settings.LOGIN_FAILURE_WINDOW,
            detail="Too many failed logins; wait before trying again.",
        )


def record_login_failure(request, username: str) -> None:
    for key in _keys(request, username):
        cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW)
        cache.incr(key)


def clear_login_failures(request, username: str) -> None:
    cache.delete(_keys(request, username)[1])
