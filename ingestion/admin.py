from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from .models import IngestionRun, Reject


@admin.register(IngestionRun)
class IngestionRunAdmin(admin.ModelAdmin):
    """Runs with their counts and a link to their rejects; read only (the API and beat
    start runs)."""

    list_display = (
        "id",
        "source",
        "path",
        "status",
        "rows_read",
        "rows_loaded",
        "rows_rejected",
        "version",
        "started_at",
        "finished_at",
        "rejects_link",
    )
    list_filter = ("source", "status")
    search_fields = ("path", "checksum")
    readonly_fields = [f.name for f in IngestionRun._meta.fields] + ["rejects_link"]

    def has_add_permission(self, request):
        return False

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
