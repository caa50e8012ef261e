"""Grants of privileges on resources, API tokens stored as hashes, and quotas."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.access.querysets import GrantQuerySet


class Privilege(models.TextChoices):
    READ = "read", "read: query the resource's data"
    WRITE = "write", "write: re-push, ingest, create retail objects"
    GRANT = "grant", "grant: give/revoke privileges, see who accessed it"


class Grant(models.Model):
    """One privilege on one resource for one user or one group, optionally until a date."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="grants",
    )
    group = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="grants"
    )
    resource = models.ForeignKey(
        "datalake.Resource", on_delete=models.CASCADE, related_name="grants"
    )
    privilege = models.CharField(max_length=8, choices=Privilege.choices)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="The grant gives nothing from this time on."
    )
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="grants_given",
    )
    # Restrictions of a `read` grant (accounts/access/restrictions.py).
    columns = models.JSONField(
        null=True, blank=True, help_text='The only columns shown, e.g. ["country", "amount"].'
    )
    row_filter = models.JSONField(
        null=True, blank=True, help_text='Allowed values per column, e.g. {"country": ["FR"]}.'
    )
    masked = models.JSONField(
        default=list, blank=True, help_text='Columns shown as a pseudonym, e.g. ["user_id"].'
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = GrantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True)
                | Q(user__isnull=True, group__isnull=False),
                name="grant_user_xor_group",
            )
        ]
        indexes = [
            models.Index(fields=["user", "resource", "privilege"], name="grant_user_lookup"),
            models.Index(fields=["group", "resource", "privilege"], name="grant_group_lookup"),
        ]

    def __str__(self):
        who = f"user {self.user}" if self.user_id else f"group {self.group}"
        return f"{self.privilege} on {self.resource} for {who}"

    @property
    def is_live(self) -> bool:
        """As `accounts.access.grants.live_where`, for a grant already read."""
        return self.expires_at is None or self.expires_at > timezone.now()

    @property
    def restricted(self) -> bool:
        return self.columns is not None or self.row_filter is not None or bool(self.masked)

    def clean(self):
        from accounts.access.restrictions import validate_restriction

        validate_restriction(self)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    """An API token. Only the SHA-256 of the key is stored: a copy of the database
    yields no working token. The key is shown once, when the token is made."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=8, editable=False, help_text="First characters of the key."
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.prefix}… ({self.user})"

    @classmethod
    def issue(cls, user, expires_at=None) -> tuple[ApiToken, str]:
        """A new token for `user`; returns it with the clear key (never stored)."""
        key = secrets.token_hex(20)
        token = cls.objects.create(
            user=user, key_hash=hash_key(key), prefix=key[:8], expires_at=expires_at
        )
        return token, key

    @property
    def is_live(self) -> bool:
        return self.expires_at is None or self.expires_at > timezone.now()


class Quota(models.Model):
    """The limits of one user or one group (accounts/quotas/): requests a minute and rows
    a day, per token. An empty field is the default of settings; 0 is no limit."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="quota",
    )
    group = models.OneToOneField(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="quota"
    )
    requests_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests a token may make per minute. Empty: QUOTA_REQUESTS_PER_MINUTE; "
        "0: no limit.",
    )
    rows_per_day = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Rows of rows/ pages a token may read per UTC day. Empty: "
        "QUOTA_ROWS_PER_DAY; 0: no limit.",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True)
                | Q(user__isnull=True, group__isnull=False),
                name="quota_user_xor_group",
            )
        ]

    def __str__(self):
        who = f"user {self.user}" if self.user_id else f"group {self.group}"
        return f"quota of {who}"
