"""The scope of the per-request grant cache (accounts.access.grant_cache_scope) and of
the reads that ride on the token lookup (datalake.platform.piggyback)."""

from __future__ import annotations

from accounts.access import grant_cache_scope
from datalake.platform import piggyback


class GrantScopeMiddleware:
    """Grants read while serving a request, and what rode on its token lookup, are that
    request's only."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with grant_cache_scope(), piggyback.scope():
            return self.get_response(request)
