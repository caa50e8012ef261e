"""Domain errors: what services, selectors and the access layer raise.

They say what went wrong in the domain's words and carry a stable `code`; they know
nothing of HTTP. The API layer maps each class to its status in one place
(`datalake.api.errors.exception_handler`): NotFound 404, AccessDenied 403, Invalid
400, Conflict 409, Gone 410, TooManyJobs 429, QuotaExceeded 429 (with Retry-After),
Unavailable 503. Management commands, Celery tasks and the shell catch them as plain
exceptions.
"""

from __future__ import annotations


class DomainError(Exception):
    """A refusal or failure a caller can act on. `detail` is a sentence (or, for
    `Invalid`, {field: [messages]}); `code` a stable machine string; `extra` more fields
    of the error body (figures a client can act on, e.g. a cost and its limit)."""

    default_detail = "The request could not be carried out."
    default_code = "error"

    def __init__(self, detail=None, code: str | None = None, extra: dict | None = None):
        self.detail = self.default_detail if detail is None else detail
        self.code = code or self.default_code
        self.extra = extra or {}
        super().__init__(self.detail if isinstance(self.detail, str) else repr(self.detail))


class NotFound(DomainError):
    default_detail = "No such object, or not one you may see."
    default_code = "not_found"


class AccessDenied(DomainError):
    """The caller lacks a privilege, or a restriction of its grant forbids the action."""

    default_detail = "You do not have permission to perform this action."
    default_code = "permission_denied"


class Invalid(DomainError):
    """Input the domain refuses; `detail` may be {field: [messages]}."""

    default_detail = "Invalid input."
    default_code = "invalid"


class Conflict(DomainError):
    default_detail = "The request conflicts with the state of the resource."
    default_code = "conflict"


class Gone(DomainError):
    """What the request names existed and is no longer kept (a walk's snapshot)."""

    default_detail = "What this request names is no longer kept."
    default_code = "gone"


class TooManyJobs(DomainError):
    default_detail = "You have too many jobs running; wait for one to end."
    default_code = "too_many_jobs"


class QuotaExceeded(DomainError):
    """The caller's quota (accounts/quotas/) is spent until `retry_after` seconds from now."""

    default_detail = "Your quota is spent; retry later."
    default_code = "quota_exceeded"

    def __init__(self, detail=None, code: str | None = None, retry_after: int = 1):
        super().__init__(detail, code)
        self.retry_after = max(1, int(retry_after))


class Unavailable(DomainError):
    """A dependency (the broker, a source, a follower) cannot serve now; retry later
    (after `retry_after` seconds, when given: the answer's Retry-After)."""

    default_detail = "A service this needs is unavailable; retry in a few seconds."
    default_code = "unavailable"

    def __init__(self, detail=None, code=None, extra=None, retry_after: int | None = None):
        super().__init__(detail, code, extra)
        self.retry_after = None if retry_after is None else max(1, int(retry_after))
