"""Where requests meet quotas: a DRF throttle and a middleware, no DRF import.

`QuotaThrottle` is in `REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]`: DRF asks it after
authentication and permission on every API view, so a 401 or a 403 counts nothing. It
raises the domain `QuotaExceeded`, which the API's exception handler answers 429 with
`Retry-After` in the error envelope. `QuotaHeadersMiddleware` writes the caller's
remaining quota on every counted response, 429s included.
"""

from __future__ import annotations

from django.conf import settings

from accounts.quotas import check_request, settle, usage_of


class QuotaThrottle:
    """DRF's throttle interface: `allow_request` (refusals raise) and `wait`. A view
    action named in the view's `quota_row_actions` serves rows: a full page of them is
    reserved with the request's count (one Redis trip for both). A conditional request
    (`If-None-Match`) reserves none: it mostly ends in a 304 with no rows, which then
    costs that one trip and no give-back; a page it does serve is charged after it."""

    def allow_request(self, request, view) -> bool:
        serves_rows = getattr(view, "action", None) in getattr(view, "quota_row_actions", ())
        conditional = "HTTP_IF_NONE_MATCH" in request.META
        reserve = settings.LAKE_MAX_PAGE_SIZE if serves_rows and not conditional else 0
        check_request(request, reserve)
        return True

    def wait(self) -> None:
        return None


class QuotaHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        settle(request)
        usage = usage_of(request)
        if usage is not None:
            for name, value in usage.headers().items():
                response[name] = value
        return response
