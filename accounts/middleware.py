"""The scope of the per-request grant cache (accounts.access.grant_cache_scope)."""

from __future__ import annotations

from accounts.access import grant_cache_scope


class GrantScopeMiddleware:
    """Grants read while serving a request are shared by that request only."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with grant_cache_scope():
            return self.get_response(request)
