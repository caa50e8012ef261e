"""`Authorization: Token <key>`, as DRF's TokenAuthentication, but keys are stored hashed."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from auditlog.context import auditlog_value
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from .models import ApiToken, hash_key

TOUCH_EVERY = timedelta(minutes=5)


class HashedTokenAuthentication(TokenAuthentication):
    """Looks the key up by its SHA-256; refuses expired tokens and inactive users."""

    keyword = "Token"
    model = ApiToken

    def authenticate_credentials(self, key):
        token = ApiToken.objects.select_related("user").filter(key_hash=hash_key(key)).first()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.is_live:
            raise exceptions.AuthenticationFailed("Token expired; ask for a new one.")
        _set_audit_actor(token.user)
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token


def _set_audit_actor(user) -> None:
    """django-auditlog takes its actor from the session user when the request comes in;
    with token auth the user is known only here, so put it into auditlog's context."""
    with contextlib.suppress(LookupError):  # outside a request: no auditlog context
        auditlog_value.get()["actor"] = user
