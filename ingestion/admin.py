from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from datalake.runs.admin import RunAdmin
from ingestion.models import HttpPull, HttpSource, IngestionRun, Reject, RepushJob, RepushRequest


@admin.register(IngestionRun)
class IngestionRunAdmin(RunAdmin):
    """Runs with their counts and a link to their rejects; read only (the API and beat
    start runs)."""

    extra_columns = ("rows_read", "rows_loaded", "rows_rejected", "version", "rejects_link")
    extra_filters = ("source",)
    search_fields = ("path", "checksum")
    readonly_fields = ("rejects_link",)

    @admin.display(description="rejects")
    def rejects_link(self, obj):
        url = reverse("admin:ingestion_reject_changelist") + f"?run__id__exact={obj.pk}"
        return format_html('<a href="{}">{} rejected lines</a>', url, obj.rows_rejected or 0)


@admin.register(Reject)
class RejectAdmin(admin.ModelAdmin):
    list_display = ("run", "line", "reason")
    list_filter = ("run__source",)
    search_fields = ("reason", "raw")
    readonly_fields = ("run", "line", "raw", "reason")

    def has_add_permission(self, request):
        return False


@admin.register(HttpSource)
class HttpSourceAdmin(admin.ModelAdmin):
    """HTTP APIs pulled into the lake; `Pull now` queues a pull (and its ingestion)."""

    list_display = ("name", "base_url", "path", "pagination", "enabled", "updated_at")
    list_filter = ("enabled", "pagination")
    search_fields = ("name", "base_url")
    readonly_fields = ("created_at", "updated_at")
    actions = ["pull_now"]
    fieldsets = (
        (None, {"fields": ("name", "enabled", "base_url", "path", "field_map")}),
        ("Paging", {"fields": ("pagination", "page_size", "items_key", "next_key")}),
        (
            "Authentication",
            {
                "fields": (
                    "token_url",
                    "refresh_url",
                    "username_field",
                    "refresh_field",
                    "username",
                    "password",
                ),
                "description": "Write `env:VAR` to read a credential from the environment "
                "(VAR must be listed in HTTP_SOURCE_SECRET_NAMES). The password is never "
                "shown back: leave it blank to keep the stored one.",
            },
        ),
        ("Retries", {"fields": ("max_retries", "backoff_seconds", "timeout_seconds")}),
        (None, {"fields": ("created_at", "updated_at")}),
    )

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "password":
            # Write-only: the stored value is never rendered into the page.
            kwargs["widget"] = forms.PasswordInput(render_value=False)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None:
            form.base_fields["password"].required = False
        return form

    def save_model(self, request, obj, form, change):
        if change and not form.cleaned_data.get("password"):
            # A blank password on a change keeps the stored one (the form never shows it).
            obj.password = type(obj).objects.only("password").get(pk=obj.pk).password
        super().save_model(request, obj, form, change)

    @admin.action(description="Pull now (then ingest)")
    def pull_now(self, request, queryset):
        from ingestion.pull.http import http_pull_start

        for source in queryset:
            http_pull_start(source=source.name, requested_by=request.user)
        self.message_user(request, f"{queryset.count()} pull(s) queued.")


@admin.register(HttpPull)
class HttpPullAdmin(RunAdmin):
    """Pulls with their counts; read only."""

    extra_columns = ("pages", "records", "requests", "retries", "run")
    extra_filters = ("source",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("source")


@admin.register(RepushRequest)
class RepushRequestAdmin(RunAdmin):
    """Single re-pushes: `running` while on the topic (the API says `pushed`)."""

    extra_columns = ("version", "resent_at")
    search_fields = ("transaction_id",)


@admin.register(RepushJob)
class RepushJobAdmin(RunAdmin):
    """Re-push-all jobs and their counts."""

    extra_columns = ("total", "pushed", "processed", "failed")
