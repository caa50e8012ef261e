"""`Authorization: Token <key>`, as DRF's TokenAuthentication, but keys are stored hashed."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from functools import lru_cache

import orjson
from auditlog.context import auditlog_value
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from accounts.access import LIVE_GRANTS_SQL, remember_live_grants
from accounts.models import ApiToken, hash_key
from datalake.platform import piggyback
from datalake.platform.db import first_row

TOUCH_EVERY = timedelta(minutes=5)


class HashedTokenAuthentication(TokenAuthentication):
    """Looks the key up by its SHA-256; refuses expired tokens and inactive users."""

    keyword = "Token"
    model = ApiToken

    def authenticate_credentials(self, key):
        token = token_with_user(hash_key(key))
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.is_live:
            raise exceptions.AuthenticationFailed("Token expired; ask for a new one.")
        _set_audit_actor(token.user)
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token


def token_with_user(key_hash: str) -> ApiToken | None:
    """The token of this hash with its user, in one plain SQL statement.

    The same as `ApiToken.objects.select_related("user").filter(...).first()`, without
    building and compiling the ORM query on every request of every client. The same
    statement reads the user's live grants (not for staff, who hold every privilege),
    which the privilege checks of this request then use instead of a query each.
    The small reads the view asked to ride along (`datalake.platform.piggyback`: the
    current version of the resource in the URL) are more columns of it.
    """
    user_model = get_user_model()
    token_fields = [f.attname for f in ApiToken._meta.concrete_fields]
    user_fields = [f.attname for f in user_model._meta.concrete_fields]
    riders = piggyback.questions()
    params = [param for _key, _sql, rider in riders for param in rider]
    # The request's first statement, and its connection's health check (db.first_row).
    row = first_row(_token_sql(tuple(sql for _key, sql, _params in riders)), [*params, key_hash])
    if row is None:
        return None
    if riders:
        row, answers = row[: -len(riders)], row[-len(riders) :]
        for (key, _sql, _params), value in zip(riders, answers, strict=True):
            piggyback.answer(key, _json(value))
    token = ApiToken.from_db("default", token_fields, row[: len(token_fields)])
    user = user_model.from_db("default", user_fields, row[len(token_fields) : -1])
    ApiToken.user.field.set_cached_value(token, user)
    if row[-1] is not None:
        remember_live_grants(user, _json(row[-1]))
    return token


def _json(value):
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


@lru_cache(maxsize=16)
def _token_sql(riders: tuple[str, ...] = ()) -> str:
    user_model = get_user_model()
    tokens, users = ApiToken._meta.db_table, user_model._meta.db_table
    columns = [f"t.{f.column}" for f in ApiToken._meta.concrete_fields]
    columns += [f"u.{f.column}" for f in user_model._meta.concrete_fields]
    columns.append(f"CASE WHEN u.is_staff THEN NULL ELSE ({LIVE_GRANTS_SQL}) END")
    columns += riders
    return (
        f"SELECT {', '.join(columns)} FROM {tokens} t JOIN {users} u ON u.id = t.user_id "
        "WHERE t.key_hash = %s"
    )


def _set_audit_actor(user) -> None:
    """django-auditlog takes its actor from the session user when the request comes in;
    with token auth the user is known only here, so put it into auditlog's context."""
    with contextlib.suppress(LookupError):  # outside a request: no auditlog context
        auditlog_value.get()["actor"] = user


class BearerTokenAuthentication(HashedTokenAuthentication):
    """The same tokens sent as `Authorization: Bearer <key>`: what the Delta Sharing
    connectors send (a profile's `bearerToken`)."""

    keyword = "Bearer"


def token_is_live(token_id: int, user) -> bool:
    """Whether `user`'s token `token_id` still exists and has not expired (what a signed
    URL of `datalake.sharing` checks: it dies with the token it was signed for)."""
    token = ApiToken.objects.filter(pk=token_id, user=user).only("expires_at").first()
    return token is not None and token.is_live
