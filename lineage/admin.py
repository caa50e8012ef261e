from django.contrib import admin

from lineage.models import RequestLog


@admin.register(RequestLog)
class RequestLogAdmin(admin.ModelAdmin):
    """Read only: the log is append-only (the database refuses changes)."""

    list_display = ("at", "username", "method", "path", "status_code", "duration_ms", "resource")
    list_filter = ("method", "status_code", "resource")
    search_fields = ("username", "path", "resource")
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
