"""Where requests meet quotas: a DRF throttle and a middleware, no DRF import.

`QuotaThrottle` is in `REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]`: DRF asks it after
authentication and permission on every API view, so a 401 or a 403 counts nothing. It
raises the domain `QuotaExceeded`, which the API's exception handler answers 429 with
`Retry-After` in the error envelope. `QuotaHeadersMiddleware` writes the caller's
remaining quota on every counted response, 429s included.
"""

from __future__ import annotations

from accounts.quotas import check_request, usage_of


class QuotaThrottle:
    """DRF's throttle interface: `allow_request` (refusals raise) and `wait`."""

    def allow_request(self, request, view) -> bool:
        check_request(request)
        return True

    def wait(self) -> None:
        return None


class QuotaHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        usage = usage_of(request)
        if usage is not None:
            for name, value in usage.headers().items():
                response[name] = value
        return response
